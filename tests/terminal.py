"""Run a command in a pseudo-terminal of a given width: what a person sees, ANSI codes removed.

Used by the table tests (tests/cli/test_tables.py) and by docs/generate_cli.py.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import termios
from collections.abc import Mapping
from pathlib import Path

__all__ = ["in_terminal"]

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def in_terminal(
    argv: list[str], width: int, *, env: Mapping[str, str], cwd: Path, timeout: float = 300
) -> tuple[str, int]:
    """(everything `argv` wrote to the terminal, its exit code), with the terminal `width`
    columns wide and 50 lines high."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, width, 0, 0))
    clean = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    process = subprocess.Popen(
        argv, stdin=follower, stdout=follower, stderr=follower, env=clean, cwd=cwd
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the other side closed: the process ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    code = process.wait(timeout=timeout)
    return ANSI.sub("", b"".join(chunks).decode()).replace("\r\n", "\n"), code
