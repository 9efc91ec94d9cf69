"""A crash of the embedded server, as tests make it: SIGKILL of the postmaster and of all
its children at once, so that no process of the server gets to write anything more.

Only the processes of a server the test started itself, found by their parent's pid."""

from __future__ import annotations

import os
import signal


def children(pid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                parent = fh.read().rsplit(")", 1)[1].split()[1]
        except OSError:  # gone meanwhile
            continue
        if parent == str(pid):
            found.append(int(name))
    return found


def crash(postmaster: int) -> None:
    """SIGKILL the postmaster and its children."""
    for pid in [postmaster, *children(postmaster)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
