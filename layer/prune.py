"""Remove distributions that the Lambda Python runtime already provides.

Usage: python prune.py SITE_DIR DIST [DIST ...]

Deletes every file listed in each distribution's RECORD (package, scripts and
the .dist-info folder itself), then any directory left empty. Works on a
``pip install --target`` tree, where ``pip uninstall`` cannot.
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def prune(site: Path, dists: list[str]) -> list[str]:
    wanted = {_normalize(d) for d in dists}
    removed: list[str] = []
    for info in sorted(site.glob("*.dist-info")):
        name = _normalize(info.name[: -len(".dist-info")].rsplit("-", 1)[0])
        if name not in wanted:
            continue
        root = site.resolve()
        dirs: set[Path] = {info.resolve()}
        with (info / "RECORD").open(newline="") as fh:
            for row in csv.reader(fh):
                if not row:
                    continue
                path = (site / row[0]).resolve()
                if root not in path.parents:
                    continue  # never touch anything outside the target
                # Every folder between the file and the target may empty out.
                dirs.update(p for p in path.parents if root in p.parents)
                if path.is_file() or path.is_symlink():
                    path.unlink()
        # Deepest first, so parents empty out after their children.
        for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
            for pycache in d.glob("__pycache__"):
                for f in pycache.iterdir():
                    f.unlink()
                pycache.rmdir()
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
        removed.append(info.name)
    return removed


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    site = Path(argv[1])
    for name in prune(site, argv[2:]):
        print(f"pruned {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
