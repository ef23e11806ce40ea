"""Running other programs (ssh, ssh-add, clipboard tools): one helper, one error shape.

Never through a shell, always with a timeout and stdin closed or given; a failure names the
command, its exit code and what it printed. No secret is ever passed as an argument.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from rescale_ssh.errors import ProgramError


@dataclass(frozen=True)
class Completed:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        """``$ cmd`` / exit code / the last lines of output, for an error message."""
        output = (self.stderr.strip() or self.stdout.strip()).splitlines()[-3:]
        shown = " | ".join(output) if output else "no output"
        return f"`{' '.join(self.args)}` exited with {self.returncode}: {shown}"


def which(name: str) -> str | None:
    return shutil.which(name)


def run(args: list[str], *, timeout: float = 20.0, input: str | None = None,
        env: dict[str, str] | None = None) -> Completed:
    """Run ``args`` and capture its output; a non-zero exit is returned, not raised."""
    try:
        proc = subprocess.run(
            args, input=input, capture_output=True, text=True, timeout=timeout, env=env,
            stdin=subprocess.DEVNULL if input is None else None, errors="replace",
        )
    except FileNotFoundError:
        raise ProgramError(f"`{args[0]}` is not installed or not on PATH") from None
    except subprocess.TimeoutExpired:
        raise ProgramError(f"`{' '.join(args)}` did not finish within {timeout:.0f} s") from None
    except OSError as exc:
        raise ProgramError(f"cannot run `{args[0]}`: {exc.strerror or exc}") from None
    return Completed(list(args), proc.returncode, proc.stdout, proc.stderr)


def feed(args: list[str], data: str, *, timeout: float = 5.0) -> int:
    """Give ``data`` on stdin to a program that may leave a child running (clipboard tools
    fork to keep the selection alive): its output goes to /dev/null, so no pipe stays open."""
    try:
        proc = subprocess.run(args, input=data.encode("utf-8"), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ProgramError(f"`{' '.join(args)}` did not finish within {timeout:.0f} s") from None
    except OSError as exc:
        raise ProgramError(f"cannot run `{args[0]}`: {exc.strerror or exc}") from None
    return proc.returncode
