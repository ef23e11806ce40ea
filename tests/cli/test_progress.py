"""What the user sees while waiting: `wait`'s live line on a terminal (redrawn between polls,
erased at the end, one line on Ctrl-C), plain lines in logs, and a spinner for a slow
platform, on a terminal only.

The terminal is a real pseudo-terminal (pty.fork); what it shows is replayed by
:func:`screen` the way a terminal does (carriage return, erase to the end of the line).
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from tests.fakeplatform import FakePlatform
from tests.helpers import Cli

JOB = "Fotxeb"
ELAPSED = re.compile(r"(\d+(?:m \d+)?)s elapsed")


@dataclass
class Terminal:
    pid: int
    fd: int
    shown: list[tuple[float, bytes]] = field(default_factory=list)  # (when, bytes)
    returncode: int | None = None

    @property
    def text(self) -> str:
        return b"".join(chunk for _, chunk in self.shown).decode(errors="replace")

    def read_until(self, done: Callable[[str], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not done(self.text):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"not seen in time; the terminal showed:\n{self.text!r}")
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if not ready:
                continue
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                raise AssertionError(f"the program ended; the terminal showed:\n{self.text!r}")
            self.shown.append((time.monotonic(), chunk))

    def finish(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                self.shown.append((time.monotonic(), chunk))
        os.close(self.fd)
        _, status = os.waitpid(self.pid, 0)
        self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


def spawn(args: list[str], env: dict[str, str]) -> Terminal:
    merged = {**os.environ, **env, "TERM": "dumb", "COLUMNS": "200", "LANG": "C.UTF-8"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: only exec
        try:
            os.execve(sys.executable, [sys.executable, "-m", "rescale_ssh", *args],  # noqa: S606
                      merged)
        finally:
            os._exit(127)
    return Terminal(pid, fd)


def screen(text: str) -> list[str]:
    """The lines a terminal shows after ``text``: \\r goes back to the line's start, ESC [K
    erases to its end, \\n starts the next line."""
    lines = [""]
    col = 0
    i = 0
    while i < len(text):
        if text.startswith("\033[K", i):
            lines[-1] = lines[-1][:col]
            i += 3
            continue
        char = text[i]
        if char == "\r":
            col = 0
        elif char == "\n":
            lines.append("")
            col = 0
        else:
            current = lines[-1]
            lines[-1] = current[:col] + char + current[col + 1:]
            col += 1
        i += 1
    return [line for line in lines if line.strip()]


def elapsed_values(text: str) -> list[str]:
    return [m.group(1) for m in ELAPSED.finditer(text)]


def test_wait_on_a_terminal_redraws_its_line_between_polls(platform: FakePlatform) -> None:
    platform.add_job(JOB, status="Queued", cluster_status="Not Started")
    term = spawn(["wait", JOB, "--timeout", "60"], {"RESCALE_SSH_POLL_INTERVAL": "4"})
    try:
        term.read_until(lambda text: "next check in" in text)
        polls = platform.count(f"/api/v2/jobs/{JOB}/instances/")
        term.read_until(lambda text: len(set(elapsed_values(text))) >= 3, timeout=10)
        assert platform.count(f"/api/v2/jobs/{JOB}/instances/") <= polls + 1, \
            "the line moved because of polls, not between them"
    finally:
        os.kill(term.pid, signal.SIGINT)
        term.finish()
    text = term.text
    assert f"{JOB}: Queued" in text, text
    assert re.search(r"next check in \d+s", text), text
    assert not re.search(r"\033\[[0-9;]*[A-JL-Za-z]", text), "only \\r and ESC [K are used"


def test_ctrl_c_during_wait_says_one_line_and_exits_130(platform: FakePlatform) -> None:
    platform.add_job(JOB, status="Queued", cluster_status="Not Started")
    term = spawn(["wait", JOB, "--timeout", "60"], {"RESCALE_SSH_POLL_INTERVAL": "5"})
    term.read_until(lambda text: f"{JOB}: Queued" in text)
    os.kill(term.pid, signal.SIGINT)
    assert term.finish() == 130, term.text
    shown = screen(term.text)
    assert len(shown) == 1, shown
    assert re.fullmatch(rf"rescale-ssh: interrupted: still waiting for {JOB} after \d+s "
                        r"\(Queued\)", shown[0]), shown


def test_wait_without_a_terminal_prints_plain_lines_and_one_on_ctrl_c(
    platform: FakePlatform,
) -> None:
    platform.add_job(JOB, status="Queued", cluster_status="Not Started",
                     timeline=[(1.5, "Started", "Starting")])
    proc = subprocess.Popen([sys.executable, "-m", "rescale_ssh", "wait", JOB, "--timeout", "60"],
                            env={**os.environ, "RESCALE_SSH_POLL_INTERVAL": "0.3"},
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while platform.count(f"/api/v2/jobs/{JOB}/instances/") < 6:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "\r" not in err and "\033" not in err, repr(err)
    lines = err.splitlines()
    # One line per status change (six polls, two statuses), then the one for ^C.
    assert lines[0].startswith(f"waiting (0:00): job {JOB} is Queued"), lines
    assert len(lines) == 3, lines
    assert "Started" in lines[1], lines
    assert re.fullmatch(rf"rescale-ssh: interrupted: still waiting for {JOB} after \d+s "
                        r"\(Started\)", lines[2]), lines


def test_a_slow_platform_shows_a_spinner_on_a_terminal_only(
    cli: Cli, platform: FakePlatform
) -> None:
    platform.latency = 2.6  # every answer: slower than progress.SLOW
    term = spawn(["jobs"], {})
    term.read_until(lambda text: "asking 127.0.0.1 for" in text)
    assert term.finish(timeout=60) == 0, term.text
    assert re.search(r"asking 127\.0\.0\.1 for [a-z ]+(…|\.\.\.) 2s", term.text), term.text
    assert screen(term.text) == ["No jobs on the platform."], screen(term.text)
    plain = cli("jobs")
    assert plain.stderr == "No jobs on the platform.\n", repr(plain.stderr)


@pytest.mark.parametrize("command", [["hook", f"rescale-{JOB}"]])
def test_the_hook_never_draws_progress(
    command: list[str], cli: Cli, platform: FakePlatform
) -> None:
    """The hook (run by ssh, whose stderr is the user's terminal) prints no spinner however
    slow the platform: progress is the CLI's, never the hook path's."""
    platform.add_job(JOB)
    platform.latency = 2.4
    cli("install", "--yes")
    term = spawn(command, {})
    term.finish(timeout=60)
    assert "asking" not in term.text and "\r" not in term.text.replace("\r\n", ""), term.text


def test_ctrl_c_in_any_command_says_so(platform: FakePlatform) -> None:
    """Typer turned ^C into a silent exit 130: the user saw nothing at all."""
    platform.latency = 5.0
    proc = subprocess.Popen([sys.executable, "-m", "rescale_ssh", "jobs"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while platform.count() == 0:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert (out, err) == ("", "rescale-ssh: interrupted\n")
