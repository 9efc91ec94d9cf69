"""A local Aurora DSQL endpoint: the application's DSQL code path, run on a laptop.

``bank endpoint`` (or ``Endpoint(...).start()``) listens on 127.0.0.1 and answers as a DSQL
cluster would, in front of the embedded PostgreSQL in strict mode:

- TLS with a certificate for a DSQL-style host name
  (``aaaaaaaaaaaaaaaaaaaaaaaaaa.dsql.us-east-1.on.aws`` by default) signed by a local CA,
  made once in ``.bank/endpoint/`` (``ca.pem``; its key ``ca-key.pem``, 0600); both TLS
  starts libpq knows (an SSLRequest, and libpq 17's direct TLS with ALPN ``postgresql``);
- the password must be an IAM auth token (a SigV4 presigned URL) for that host and region,
  ``DbConnectAdmin`` for ``admin`` and ``DbConnect`` for other roles, not expired and not
  valid for more than a week;
- ``admin`` is the embedded server's owner; another role needs a mapping made by ``AWS IAM
  GRANT <role> TO '<arn>'``;
- every client's ``CREATE INDEX ASYNC``, ``ALTER TABLE ASYNC ... VALIDATE CONSTRAINT`` and
  ``AWS IAM GRANT/REVOKE`` are rewritten for PostgreSQL, with DSQL's command tags.

What it cannot check: **the token's signature**, and so which IAM identity signed it. Both
need AWS (the secret key behind the access key): a token minted with fake credentials is
accepted here. Offline the identity is unknown, so a role is accepted when any IAM ARN is
mapped to it, or, when the endpoint is given ``iam_arn`` (``bank endpoint --iam-arn``),
when that ARN is.

The application reaches it unchanged through its DSQL branch: ``CLUSTER_ENDPOINT=<the host
name>`` and one setting, ``BANK_DSQL_LOCAL=<folder>`` (the folder holding the endpoint's
``ca.pem`` and ``address``: ``bank.adapters.database``). See docs/endpoint.md.

Refusals (SQLSTATE, message, HINT), and where each text comes from:

======================================  =====  =============================================
no TLS                                  28000  ``unable to accept connection, ssl is
                                               required`` (ours: no source records it)
no SNI in the handshake                 08006  ``unable to accept connection, sni was not
                                               received`` (the DSQL user guide; SQLSTATE ours)
a password that is not a token, or a    08006  ``unable to accept connection, access denied``
token for another host or region               HINT ``The security token included in the
                                               request is invalid.`` (reported from a cluster)
an expired token                        08006  same, HINT ``Signature expired: ...`` (the
                                               prefix reported from a cluster)
``DbConnect`` for admin (or the         08006  same, HINT ``Wrong user to action mapping.
reverse)                                       user: admin, action: DbConnect`` (user guide)
valid for more than a week              08006  same, HINT AWS's presigned-URL text (ours)
an unmapped role                        28000  ``unable to accept connection, access denied``,
                                               no hint (reported from a cluster)
a database other than ``postgres``      3D000  PostgreSQL's ``database "x" does not exist``
======================================  =====  =============================================

DSQL adds ``DETAIL: Session Id: <26 letters>`` to an access-denied error; so does this.
"""

from bank.kit.endpoint.server import (
    DEFAULT_CLUSTER_ID,
    DEFAULT_REGION,
    Endpoint,
    Upstream,
    dsql_host,
)

__all__ = ["DEFAULT_CLUSTER_ID", "DEFAULT_REGION", "Endpoint", "Upstream", "dsql_host",
           "endpoint_folder"]


def endpoint_folder():
    """Where the endpoint keeps its CA and publishes its address: ``<BANK_DATA_DIR>/endpoint``
    (``.bank/endpoint``)."""
    from bank.kit.settings import get_kit_settings

    return get_kit_settings().data_dir / "endpoint"
