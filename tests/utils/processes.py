"""Process look-ups for tests that start and stop whole process trees."""

from __future__ import annotations

import os
from pathlib import Path


def session_alive(sid: int) -> bool:
    """Whether a live (not zombie) process of session ``sid`` is left."""
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # Fields after "(comm)": state ppid pgrp session ...; comm itself may hold spaces.
        state, _ppid, _pgrp, session = stat[stat.rindex(")") + 2 :].split()[:4]
        if int(session) == sid and state not in {"Z", "X"}:
            return True
    return False
