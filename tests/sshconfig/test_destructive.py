"""Commands that remove something (uninstall, remove, prune, sync dropping jobs) never act on
a question nobody answered: without a terminal they refuse unless --yes (exit 2, the config
and the tool's files byte-for-byte as they were); --dry-run shows the change and writes
nothing; on a real terminal they show the change and ask, `n` keeping everything (exit 1).

`echo n | rescale-ssh uninstall` used to remove everything: confirm() went on whenever stdin
was not a terminal.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fakeplatform import FakePlatform
from tests.helpers import Cli, require
from tests.terminal import run_in_terminal

LINE = "Command: ssh uprod_{job}@192.0.2.{n}"
ANSWER = "[y/N]"  # typer.confirm's prompt ends so (Enter alone: no)


def state_dir(home: Path) -> Path:
    return home / ".local/state/rescale-ssh"


def snapshot(home: Path) -> dict[str, bytes | None]:
    """Every file under HOME (the config, the state folder), by path: bytes, None a folder."""
    found: dict[str, bytes | None] = {}
    for item in sorted(home.rglob("*")):
        if item.is_dir():
            found[str(item.relative_to(home))] = None
        elif item.is_file():
            found[str(item.relative_to(home))] = item.read_bytes()
    return found


def added(cli: Cli, *jobs: str) -> None:
    for n, job in enumerate(jobs, 1):
        cli("add", job, "--from-log", LINE.format(job=job, n=n))


def blocks(ssh_config: Path) -> set[str]:
    text = ssh_config.read_text() if ssh_config.exists() else ""
    return {line.split()[1] for line in text.splitlines() if line.startswith("Host rescale-")}


# Each destructive command: how to set it up, its arguments, and whether it was done.
Setup = Callable[[Cli, FakePlatform], None]


def setup_uninstall(cli: Cli, platform: FakePlatform) -> None:
    added(cli, "Fotxeb")
    cli("install", "--yes")


def setup_remove(cli: Cli, platform: FakePlatform) -> None:
    added(cli, "Fotxeb", "Ptczhb")


def setup_stopped(cli: Cli, platform: FakePlatform) -> None:
    added(cli, "Fotxeb", "Ptczhb")
    platform.add_job("Fotxeb", status="Completed", cluster_status="Stopped")
    platform.add_job("Ptczhb")  # running: kept (sync also keeps its block)


COMMANDS: dict[str, tuple[Setup, list[str], set[str]]] = {
    # command: (setup, arguments, the blocks left once it is done)
    "uninstall": (setup_uninstall, ["uninstall"], set()),
    "remove": (setup_remove, ["remove", "Fotxeb"], {"rescale-Ptczhb"}),
    "prune": (setup_stopped, ["prune"], {"rescale-Ptczhb"}),
    "sync": (setup_stopped, ["sync"], {"rescale-Ptczhb"}),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_without_a_terminal_a_destructive_command_refuses_unless_yes(
    command: str, cli: Cli, platform: FakePlatform, isolated_home: Path, ssh_config: Path
) -> None:
    setup, args, left = COMMANDS[command]
    setup(cli, platform)
    before = snapshot(isolated_home)
    for stdin in ("", "n\n", "y\n"):  # `echo n | rescale-ssh uninstall` removed everything
        refused = cli(*args, input=stdin, expect=2)
        assert refused.stderr.splitlines() == [
            refused.stderr.splitlines()[0],
            "hint: run it again with --yes (or --dry-run to see the change)",
        ], str(refused)
        first = refused.stderr.splitlines()[0]
        assert first.startswith(f"rescale-ssh: error: {command} would remove "), first
        assert first.endswith("; refusing without a terminal"), first
        assert "Fotxeb" in first or command == "uninstall", first
        assert snapshot(isolated_home) == before, f"{command} changed files when it refused"

    dry = cli(*args, "--dry-run")
    assert "-Host rescale-Fotxeb" in dry.stdout, str(dry)
    assert snapshot(isolated_home) == before, f"{command} --dry-run changed files"

    done = cli(*args, "--yes")
    assert blocks(ssh_config) == left, str(done)
    assert snapshot(isolated_home) != before


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_on_a_terminal_n_keeps_everything_and_y_goes_on(
    command: str, cli: Cli, platform: FakePlatform, isolated_home: Path, ssh_config: Path
) -> None:
    setup, args, left = COMMANDS[command]
    setup(cli, platform)
    before = snapshot(isolated_home)
    declined = run_in_terminal(args, [(ANSWER, "n")])
    assert declined.returncode == 1, declined.output
    assert "-Host rescale-Fotxeb" in declined.output, "the diff is shown before the question"
    assert f"{args[0]} removes " in declined.output, "what goes is said, files included"
    assert "[y/N]" in declined.output and "Nothing changed." in declined.output
    assert snapshot(isolated_home) == before, f"{command} changed files after `n`"
    # Enter alone keeps everything (it removed everything: [Y/n], found by issue 15's walk).
    entered = run_in_terminal(args, [(ANSWER, "")])
    assert entered.returncode == 1, entered.output
    assert snapshot(isolated_home) == before, f"{command} changed files after Enter"
    accepted = run_in_terminal(args, [(ANSWER, "y")])
    assert accepted.returncode == 0, accepted.output
    assert blocks(ssh_config) == left, accepted.output


def test_what_removes_nothing_needs_no_yes(
    cli: Cli, platform: FakePlatform, ssh_config: Path
) -> None:
    """Adding alone (sync), nothing to drop (prune), no block (remove), nothing installed
    (uninstall): nothing is lost, so nothing is asked or refused."""
    platform.add_job("Run1", host="203.0.113.11")
    assert "Added rescale-Run1" in cli("sync").stdout
    assert cli("prune").stdout.strip() == "Nothing to change."
    assert "nothing to remove" in cli("remove", "Other1").stdout
    cli("remove", "Run1", "--yes")
    cli("uninstall", "--yes")
    assert "Nothing of rescale-ssh" in cli("uninstall").stdout


def test_uninstall_leaves_no_state_folder(
    cli: Cli, platform: FakePlatform, isolated_home: Path, ssh_config: Path
) -> None:
    """Everything the tool made in its state folder goes, the locks too, and the folder with
    them: nothing of ours is left behind."""
    platform.add_job("Hooked1")
    added(cli, "Fotxeb")
    cli("install", "--yes")
    ssh = require("ssh")
    subprocess.run([ssh, "-G", "-F", str(ssh_config), "rescale-Hooked1"], check=True,
                   capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert (state_dir(isolated_home) / "locks").is_dir()
    cli("uninstall", "--yes")
    assert not state_dir(isolated_home).exists(), sorted(
        str(p) for p in state_dir(isolated_home).rglob("*"))
    # A folder holding a file that is not ours stays, with the file.
    cli("install", "--yes")
    mine = state_dir(isolated_home) / "notes.txt"
    mine.write_text("mine\n")
    cli("uninstall", "--yes")
    assert sorted(p.name for p in state_dir(isolated_home).iterdir()) == ["notes.txt"]


def test_uninstall_while_ssh_runs_the_hook(
    cli: Cli, platform: FakePlatform, isolated_home: Path, ssh_config: Path
) -> None:
    """ssh runs the hook for a job and for a host of the user's while uninstall removes the
    tool's files: uninstall succeeds, and no ssh run fails or shows a traceback."""
    ssh_config.parent.mkdir(mode=0o700, exist_ok=True)
    ssh_config.write_text("Host mybox\n    HostName 192.0.2.10\n")
    platform.add_job("Hooked1")
    cli("install", "--yes")
    ssh = require("ssh")
    failures: list[str] = []
    stop = threading.Event()

    def hammer(host: str) -> None:
        while not stop.is_set():
            proc = subprocess.run([ssh, "-G", "-F", str(ssh_config), host],
                                  capture_output=True, text=True, timeout=60,
                                  stdin=subprocess.DEVNULL)
            if proc.returncode != 0 or "Traceback" in proc.stderr:
                failures.append(f"{host}: exit {proc.returncode}: {proc.stderr}")

    threads = [threading.Thread(target=hammer, args=(host,))
               for host in ("rescale-Hooked1", "rescale-Hooked1", "mybox")]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        cli("uninstall", "--yes")
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert not failures, failures[:3]
    assert ssh_config.read_text() == "Host mybox\n    HostName 192.0.2.10\n"


def test_prune_names_a_reason_without_nested_brackets(
    cli: Cli, platform: FakePlatform
) -> None:
    """A status word the platform writes with brackets of its own was shown inside ours:
    `Dropped rescale-X (Stopped (Manual), cluster stopped)`."""
    added(cli, "Odd1", "Plain1")
    platform.add_job("Odd1", status="Stopped (Manual)", cluster_status="Stopped")
    platform.add_job("Plain1", status="Completed", cluster_status="Stopped")
    lines = sorted(cli("prune", "--yes").stdout.splitlines())
    assert lines == ["Dropped rescale-Odd1: Stopped (Manual), cluster stopped",
                     "Dropped rescale-Plain1 (Completed, cluster stopped)"]
    for line in lines:
        depth = deepest = 0
        for char in line:
            depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(char, 0)
            deepest = max(deepest, depth)
        assert deepest <= 1, line


def test_uninstall_leaves_no_config_where_there_was_none(
    cli: Cli, isolated_home: Path, ssh_config: Path
) -> None:
    """Issue 15's walk: with no ~/.ssh/config before, uninstall left an empty file. Before
    install there was none; after uninstall there is none (a file of the user's stays)."""
    assert not ssh_config.exists()
    cli("install", "--yes")
    cli("add", "Fotxeb", "--from-log", LINE.format(job="Fotxeb", n=1))
    assert ssh_config.read_bytes()
    cli("uninstall", "--yes")
    assert not ssh_config.exists()
    ssh_config.write_text("Host mybox\n    HostName 192.0.2.10\n")
    cli("install", "--yes")
    cli("uninstall", "--yes")
    assert ssh_config.read_text() == "Host mybox\n    HostName 192.0.2.10\n"
