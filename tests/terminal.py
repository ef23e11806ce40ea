"""Running ``rescale-ssh`` on a real pseudo-terminal, to test its prompts as a person meets them.

The child gets the pty as its controlling terminal (``pty.fork``), so getpass turns echo off
exactly as it does for a user: whatever the tests type and then find in the output was echoed.
"""

from __future__ import annotations

import os
import pty
import select
import sys
import time
from dataclasses import dataclass

TIMEOUT = 60.0


@dataclass
class Session:
    returncode: int
    output: str


def _read(fd: int, deadline: float) -> bytes:
    """What the terminal shows next; b"" at the end (EIO once the child closed it)."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("the program did not answer in time")
    ready, _, _ = select.select([fd], [], [], remaining)
    if not ready:
        raise TimeoutError("the program did not answer in time")
    try:
        return os.read(fd, 4096)
    except OSError:
        return b""


def _prompted(shown: bytes, seen: int, prompt: str) -> bool:
    at = shown.find(prompt.encode(), seen)
    return at >= 0 and shown.find(b": ", at) >= 0


def run_in_terminal(args: list[str], answers: list[tuple[str, str]],
                    env: dict[str, str] | None = None, timeout: float = TIMEOUT) -> Session:
    """Run ``rescale-ssh ARGS``; each time the output shows the next prompt text, type its
    answer and Enter. Returns the exit code and everything the terminal showed."""
    merged = {**os.environ, **(env or {}), "TERM": "dumb", "COLUMNS": "200"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: only exec, nothing that could touch the parent's state
        try:
            os.execve(sys.executable, [sys.executable, "-m", "rescale_ssh", *args],  # noqa: S606
                      merged)
        finally:
            os._exit(127)
    deadline = time.monotonic() + timeout
    shown = b""
    seen = 0
    try:
        for prompt, answer in answers:
            # Click writes the prompt's last character (": " -> " ") only after getpass turned
            # echo off: typing before that would be echoed by the terminal, not by us.
            while not _prompted(shown, seen, prompt):
                chunk = _read(fd, deadline)
                if not chunk:
                    raise AssertionError(f"no prompt {prompt!r}; the terminal showed:\n"
                                         f"{shown.decode(errors='replace')}")
                shown += chunk
            seen = shown.index(b": ", shown.index(prompt.encode(), seen)) + 2
            os.write(fd, answer.encode() + b"\r")
        while chunk := _read(fd, deadline):
            shown += chunk
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    return Session(os.waitstatus_to_exitcode(status), shown.decode(errors="replace"))
