"""Shared pieces of the hostile-input tests (issue 7): nothing reaches a config, nothing runs.

Every value that could end up in an ssh config - from the platform (instances, logs, the job
list), a pasted log line, the command line, the environment, the Rescale CLI's profile file, and
the hook's own files on disk - is fed newlines, carriage returns, NUL, quotes, %-tokens, ${...},
leading dashes, spaces, look-alike letters, line separators and over-long strings, most of them
carrying a command that creates a canary file if ssh ever runs it. Each must fail with one line
naming the field (and a hint) and a documented exit code, leave the config byte-for-byte as it
was, and create no canary.

The large matrices call the real entry point in this process (hundreds of runs a second); each
entry point is also run as the installed program, and under the real ssh wherever ssh is the
caller. ssh never connects beyond 127.0.0.1 here: every address in these tests is a closed
loopback port, and real ssh runs get ``-o HostName=127.0.0.1`` as well.

The tests are split by entry point: test_hostile_platform.py (the platform's answers),
test_hostile_log_lines.py (the Job Logs line, from the platform or pasted),
test_hostile_cli.py (job IDs, environment and profile of a command), test_hostile_hook.py
(the hook and proxy ssh runs, and their files on disk) and test_hostile_writer.py (what the
config writer renders). This module is also a fixture plugin (conftest.py names it):
the ``world`` fixture they share is here.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from rescale_ssh import entry
from tests.fakeplatform import FakePlatform
from tests.helpers import Cli, Result, require
from tests.sshd import free_port

USER_CONFIG = b"# my own hosts\nHost mine\n    HostName 192.0.2.10\n    User me\n"
Figures = Callable[[str, int], None]


# -- the payloads -----------------------------------------------------------------------------


def payloads(canary: Path) -> dict[str, str]:
    """Suffixes that try to end the value and start an ssh_config line, an option or a
    shell command; each that could run something would create ``canary``."""
    touch = f"touch {canary}"
    return {
        "newline": f"\nProxyCommand {touch}",
        "carriage return": f"\rProxyCommand {touch}",
        "crlf local command": f"\r\nPermitLocalCommand yes\r\nLocalCommand {touch}",
        "match exec": f'\nMatch exec "{touch}"',
        "include": "\nInclude /etc/passwd",
        "nul": "\x00",
        "line separator": f"\u2028ProxyCommand {touch}",
        "paragraph separator": "\u2029",
        "next line": f"\x85ProxyCommand {touch}",
        "vertical tab": "\x0b",
        "double quote": f'" ProxyCommand "{touch}',
        "single quote": "'",
        "percent tokens": "%h%n%d",
        "environment": "${HOME}",
        "option": f" -oProxyCommand={touch}",
        "tab option": f"\t-oLocalCommand={touch}",
        "semicolon": f";{touch}",
        "command substitution": f"$({touch})",
        "backticks": f"`{touch}`",
        "escape sequence": "\x1b]0;owned\x07",
        "zero width": "\u200b",
        "backslash": "\\",
        "hash": "#",
    }


def hostile(base: str, canary: Path, *, alone: tuple[str, ...] = ()) -> dict[str, str]:
    """``base`` with each payload appended, plus values that are hostile on their own."""
    values = {name: base + suffix for name, suffix in payloads(canary).items()}
    values.update({
        "leading dash": f"-oProxyCommand=touch {canary}",
        "space": f"{base} {base}",
        "cyrillic look-alike": base.replace("a", "\u0430").replace("e", "\u0435")
        .replace("o", "\u043e").replace("1", "\uff11"),
        "fullwidth digits": "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in base),
        "over-long": base + "a" * 5000,
    })
    values.update({f"alone {i}": value for i, value in enumerate(alone)})
    # A look-alike that changed nothing (a base with no such letter) is not hostile.
    return {name: value for name, value in values.items() if value != base}


# -- running the program ----------------------------------------------------------------------


def run_here(*args: str, stdin: str = "") -> Result:
    """The real entry point, in this process (for the large matrices)."""
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = entry.main(list(args))
    finally:
        sys.stdin = saved
    return Result(["rescale-ssh", *args], code, out.getvalue(), err.getvalue())


def ssh(config: Path, alias: str, *command: str, closed: int,
        get: bool = False) -> subprocess.CompletedProcess[str]:
    """The real ssh, its Port forced to a closed loopback port. HostName is not forced: a
    HostName from the command line would keep the hook from running (its Match asks that no
    HostName is set yet); every address the fake platform serves is 127.0.0.1 or refused, and
    a name that got through would find no DNS here (a ProxyCommand would run: the canary)."""
    options = ["-o", f"Port={closed}", "-o", "BatchMode=yes", "-o", "ConnectTimeout=3"]
    args = [require("ssh"), "-F", str(config), *options, *(["-G"] if get else []), alias,
            *command]
    return subprocess.run(args, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


# -- the world each test starts from ----------------------------------------------------------


@dataclass
class World:
    """A config with the user's lines, one added job and the hook; a platform; a canary."""

    config: Path
    state: Path
    canary: Path
    closed: int
    platform: FakePlatform
    figures: Figures

    def before(self) -> bytes:
        return self.config.read_bytes()

    def refused(self, result: Result, before: bytes, *, fields: tuple[str, ...],
                codes: tuple[int, ...], family: str) -> None:
        """One line naming the field, a hint, a documented code; nothing changed, nothing ran."""
        lines = result.stderr.splitlines()
        shown = str(result)
        assert result.returncode in codes, shown
        assert "Traceback" not in result.stderr, shown
        assert lines and lines[0].startswith("rescale-ssh: error: "), shown
        assert any(field in lines[0] for field in fields), shown
        assert all(line.startswith("hint: ") for line in lines[1:]) and len(lines) <= 2, shown
        assert result.stdout == "", shown
        assert self.config.read_bytes() == before, shown
        assert not self.canary.exists(), shown
        self.figures("hostile inputs refused", 1)
        self.figures(f"hostile inputs refused: {family}", 1)

    def nothing_ran(self, *aliases: str) -> None:
        """ssh -G for the aliases (it runs Match exec, so the hook too): no canary."""
        for alias in aliases:
            ssh(self.config, alias, closed=self.closed, get=True)
        assert not self.canary.exists()


@pytest.fixture
def world(cli: Cli, ssh_config: Path, platform: FakePlatform, isolated_home: Path,
          tmp_path: Path, figures: Figures, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.chdir(tmp_path)  # a relative path that slipped through lands here, not in the repo
    monkeypatch.setenv("RESCALE_SSH_TIMEOUT", "3")  # a value that slipped through fails fast
    ssh_config.parent.mkdir(mode=0o700)
    ssh_config.write_bytes(USER_CONFIG)
    closed = free_port()
    cli("add", "Static1", "--from-log", f"Command: ssh -p {closed} u_Static1@127.0.0.1")
    cli("install", "--yes", "--timeout", "5")
    return World(ssh_config, isolated_home / ".local" / "state" / "rescale-ssh",
                 tmp_path / "CANARY", closed, platform, figures)


# -- values more than one entry point refuses -------------------------------------------------

# Refused in a local path (spaces, %, ;, $(...) and backticks are fine there: quoted, see
# test_odd_state_and_identity_paths_run_nothing and the property tests in
# test_hostile_writer.py).
PATH_HOSTILE = ("newline", "carriage return", "line separator", "next line", "double quote",
                "single quote", "environment", "backslash", "hash", "escape sequence",
                "zero width", "leading dash", "over-long", "vertical tab", "match exec",
                "crlf local command")

PLATFORM_VALUES = (
    "http://127.0.0.1:1/${HOME}", "http://127.0.0.1:1 -oProxyCommand=x", "http://12\uff17.0.0.1:1",
    "http://pl\u0430tform.rescale.com", "javascript:alert(1)", "file:///etc/passwd",
    "http://user@127.0.0.1:1", "http://127.0.0.1:99999", "http://127.0.0.1:1/`touch x`",
    "http://127.0.0.1:1/$(touch x)", "http://127.0.0.1:1/\u2028", "http://127.0.0.1:1/'",
    "http://127.0.0.1:1/\"", "-oProxyCommand=x", "http://127.0.0.1:1/\x1b[2J",
    "http://" + "a" * 3000 + ".example.org",
)
PROFILE_VALUES = ("prod;touch x", "-x", "a b", "${HOME}", "pr\u043ed", "x" * 65, "a\u2028b",
                  "prod'", "prod]\n[x", "%h", "\x1b[2J", "a\\b", "$(touch x)")
