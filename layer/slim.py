"""Trim the layer to what its code uses, so that it stays under 15 MB zipped.

Usage: python slim.py SITE_DIR SERVICE [SERVICE ...]

- botocore ships the JSON model of every AWS service under ``botocore/data/`` (about
  25 MB). Token minting needs the ``dsql`` model; the credential providers create ``sts``
  (assume role, web identity), ``sso``, ``sso-oidc`` (SSO tokens) and ``signin`` (``aws
  login``) clients: the SERVICEs to keep. Every other service model goes, not the
  top-level files (endpoints, partitions, retry and default configuration); so do the
  kept services' ``examples-1.json`` (documentation only) and boto3's resource models
  (``boto3.resource`` is not used).
- ``sqlalchemy.testing``, ``alembic.testing`` and ``mako.testing`` support those
  projects' own test suites; nothing at run time imports them.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

TEST_SUPPORT = ("sqlalchemy", "alembic", "mako")


def slim(site: Path, keep: set[str]) -> list[str]:
    """Remove every botocore service model not in ``keep``; return the removed names."""
    data = site / "botocore" / "data"
    if not data.is_dir():
        raise SystemExit(f"{data} not found: is botocore installed in {site}?")
    missing = sorted(name for name in keep if not (data / name).is_dir())
    if missing:
        raise SystemExit(f"botocore has no model for {', '.join(missing)}")
    removed = []
    for service in sorted(p for p in data.iterdir() if p.is_dir()):
        if service.name in keep:
            for example in service.glob("*/examples-1.json"):
                example.unlink()
        else:
            shutil.rmtree(service)
            removed.append(service.name)
    shutil.rmtree(site / "boto3" / "data", ignore_errors=True)
    for package in TEST_SUPPORT:
        shutil.rmtree(site / package / "testing", ignore_errors=True)
    return removed


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    removed = slim(Path(argv[1]), set(argv[2:]))
    print(f"botocore: kept {' '.join(sorted(argv[2:]))}; removed {len(removed)} service models")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
