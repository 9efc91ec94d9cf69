"""What the local endpoint can check of a DSQL IAM authentication token, offline.

A token is a SigV4 presigned URL without its scheme, as boto3's ``dsql`` client mints it::

    <host>/?Action=DbConnectAdmin&X-Amz-Algorithm=AWS4-HMAC-SHA256
        &X-Amz-Credential=<access key>/<yyyymmdd>/<region>/dsql/aws4_request
        &X-Amz-Date=<yyyymmddThhmmssZ>&X-Amz-Expires=<seconds>&X-Amz-SignedHeaders=host
        [&X-Amz-Security-Token=...]&X-Amz-Signature=<64 hex digits>

Checked here: its shape, the host and region it was signed for, the action for the user
(``DbConnectAdmin`` for ``admin``, ``DbConnect`` for any other role), that it has not
expired (``X-Amz-Date`` + ``X-Amz-Expires``), that it is not dated in the future and that
it was not minted for more than a week (604,800 s, DSQL's maximum).

**Not checked: the signature.** Verifying it needs the secret key of the access key that
signed it, which only AWS holds; so does knowing which IAM identity that key belongs to.
A token signed with fake credentials passes here, and DSQL would refuse it.

A refusal is a ``TokenRefused`` carrying the hint DSQL gives (``refusal.hint``) and the
reason in our words for the endpoint's log (``refusal.reason``). Neither holds the token.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

#: DSQL's longest token lifetime (the user guide: 604,800 seconds, one week).
MAX_EXPIRES_S = 604_800
#: How far a token's date may lie ahead of this machine's clock (AWS allows 15 minutes).
CLOCK_SKEW_S = 900
ADMIN = "admin"

#: The hint DSQL gives when it cannot accept the token's credentials (recorded).
INVALID = "The security token included in the request is invalid."

_DATE = "%Y%m%dT%H%M%SZ"
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_REQUIRED = ("Action", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
             "X-Amz-SignedHeaders", "X-Amz-Signature")


class TokenRefused(Exception):
    """The password is not a token this endpoint accepts. ``hint``: DSQL's HINT line;
    ``reason``: what was wrong, for the endpoint's log (never the token itself)."""

    def __init__(self, hint: str | None, reason: str):
        super().__init__(reason)
        self.hint = hint
        self.reason = reason


@dataclass(frozen=True)
class Token:
    host: str
    action: str
    access_key_id: str
    region: str
    signed_at: dt.datetime
    expires_s: int

    @property
    def expires_at(self) -> dt.datetime:
        return self.signed_at + dt.timedelta(seconds=self.expires_s)


def parse(password: str) -> Token:
    """The token's parts, or ``TokenRefused`` if ``password`` is not shaped like one."""
    if "/?" not in password or password.startswith(("http://", "https://")):
        raise TokenRefused(INVALID, "the password is not a DSQL IAM auth token")
    try:
        parts = urlsplit("https://" + password)
        host = (parts.hostname or "").lower()
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise TokenRefused(INVALID, "the password is not a DSQL IAM auth token") from None
    missing = [name for name in _REQUIRED if name not in query]
    if not host or missing or parts.path != "/":
        raise TokenRefused(INVALID, "the password is not a DSQL IAM auth token"
                           + (f" (no {', '.join(missing)})" if missing else ""))
    values = {name: query[name][0] for name in query}
    if any(len(v) != 1 for v in query.values()):
        raise TokenRefused(INVALID, "the token repeats a parameter")
    if values["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256":
        raise TokenRefused(INVALID, "the token is not signed with AWS4-HMAC-SHA256")
    if "host" not in values["X-Amz-SignedHeaders"].split(";"):
        raise TokenRefused(INVALID, "the token does not sign the host header")
    if not _SIGNATURE.fullmatch(values["X-Amz-Signature"]):
        raise TokenRefused(INVALID, "the token's signature is not 64 hex digits")
    scope = values["X-Amz-Credential"].split("/")
    if len(scope) != 5 or scope[3] != "dsql" or scope[4] != "aws4_request" or not scope[0]:
        raise TokenRefused(INVALID, "the token's credential scope is not <key>/<date>/"
                                    "<region>/dsql/aws4_request")
    try:
        signed_at = dt.datetime.strptime(values["X-Amz-Date"], _DATE).replace(tzinfo=dt.UTC)
        expires_s = int(values["X-Amz-Expires"])
    except ValueError:
        raise TokenRefused(INVALID, "the token's X-Amz-Date or X-Amz-Expires is malformed"
                           ) from None
    if scope[1] != signed_at.strftime("%Y%m%d"):
        raise TokenRefused(INVALID, "the token's credential date is not its X-Amz-Date")
    if expires_s <= 0:
        raise TokenRefused(INVALID, "the token's X-Amz-Expires is not a positive number")
    return Token(host=host, action=values["Action"], access_key_id=scope[0], region=scope[2],
                 signed_at=signed_at, expires_s=expires_s)


def check(password: str, *, host: str, region: str, user: str, now: dt.datetime) -> Token:
    """The token in ``password``, if this endpoint (``host``, ``region``) accepts it for
    ``user`` at ``now``; else ``TokenRefused``, checked in this order: shape, host, region,
    lifetime, dates, action."""
    token = parse(password)
    if token.host != host.lower():
        raise TokenRefused(INVALID, f"the token was signed for host {token.host}, not {host}")
    if token.region != region:
        raise TokenRefused(INVALID, f"the token was signed for region {token.region}, "
                                    f"not {region}")
    if token.expires_s > MAX_EXPIRES_S:
        # AWS's text for a presigned URL valid for more than a week (not recorded on DSQL).
        raise TokenRefused("X-Amz-Expires must be less than a week (in seconds) that is "
                           f"{MAX_EXPIRES_S}",
                           f"the token is valid for {token.expires_s} s, more than a week")
    if token.expires_at < now:
        # "Signature expired:" is DSQL's (reported from a cluster); the rest is ours.
        raise TokenRefused(f"Signature expired: {token.expires_at.strftime(_DATE)} is now "
                           f"earlier than {now.strftime(_DATE)}",
                           f"the token expired at {token.expires_at.isoformat()}")
    if token.signed_at > now + dt.timedelta(seconds=CLOCK_SKEW_S):
        raise TokenRefused(f"Signature not yet current: {token.signed_at.strftime(_DATE)} is "
                           f"still later than {now.strftime(_DATE)}",
                           "the token is dated in the future")
    wanted = "DbConnectAdmin" if user == ADMIN else "DbConnect"
    if token.action != wanted:
        # DSQL's text (the user guide's troubleshooting page).
        raise TokenRefused(f"Wrong user to action mapping. user: {user}, action: "
                           f"{token.action}", f"{token.action} is not the action for {user}")
    return token
