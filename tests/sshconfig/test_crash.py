"""Concurrency and crashes (issue 7): twenty processes at once, SIGKILL mid-write, stale locks.

The writer's promise (configfile.py): under the lock, a temp file in the config's folder, fsync,
rename. So a process killed at any point leaves the old file or the new one, never a mix and
never an empty one, and the next writer removes the temp file the dead one left.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rescale_ssh import configfile, store
from rescale_ssh.settings import Settings
from rescale_ssh.sshconfig import hosts, section
from rescale_ssh.target import Target
from tests.fakeplatform import FakePlatform
from tests.helpers import Cli, require, ssh_config_of
from tests.sshd import free_port

USER_CONFIG = b"# mine\r\nHost mine\r\n\tUser me\r\n\tHostName=192.0.2.10\r\nServerAliveInterval 7"
Figures = Callable[[str, int], None]


def settings(config: Path) -> Settings:
    return Settings(ssh_config_flag=str(config), identity_flag="/keys/rescale id")


def temps(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.endswith(configfile.TEMP_SUFFIX)]


# -- twenty at once ---------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.slow
def test_twenty_processes_add_remove_and_resolve_at_once(
    cli: Cli, ssh_config: Path, platform: FakePlatform, figures: Figures
) -> None:
    """7 static adds, 3 adds through the platform, 5 removes and 5 first connections through
    the hook (ssh -G), all started together, twice over: every block that should be there is,
    every one removed is gone, the user's bytes are untouched, the hook resolves each job."""
    ssh_config.parent.mkdir(mode=0o700)
    ssh_config.write_bytes(USER_CONFIG)
    cli("install", "--yes")
    closed = free_port()
    for round_ in range(2):
        added = [f"A{round_}x{i}" for i in range(7)]
        fetched = [f"P{round_}x{i}" for i in range(3)]
        removed = [f"R{round_}x{i}" for i in range(5)]
        hooked = [f"H{round_}x{i}" for i in range(5)]
        for job in removed:
            cli("add", job, "--from-log", f"Command: ssh -p {closed} u_{job}@127.0.0.1")
        address = {job: f"127.0.0.{i + 2}" for i, job in enumerate([*fetched, *hooked])}
        for job, host in address.items():
            platform.add_job(job, host=host, port=closed)
        before = {e.job for e in hosts.entries(settings(ssh_config))}
        python = [sys.executable, "-m", "rescale_ssh"]
        commands = (
            [[*python, "add", job, "--from-log", f"Command: ssh -p {closed} u_{job}@127.0.0.1"]
             for job in added]
            + [[*python, "add", job] for job in fetched]
            + [[*python, "remove", "--yes", job] for job in removed]
            + [[require("ssh"), "-G", "-F", str(ssh_config), f"rescale-{job}"] for job in hooked]
        )
        assert len(commands) == 20
        procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  stdin=subprocess.DEVNULL) for c in commands]
        outputs = [proc.communicate(timeout=120) for proc in procs]
        for proc, (out, err) in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, f"{proc.args}\n{out}\n{err}"
        for job, (out, _) in zip(hooked, outputs[-5:], strict=True):
            assert f"hostname {address[job]}\n" in out, out
        data = ssh_config.read_bytes()
        located = section.locate(data, path="config")
        assert located.top is not None and located.top.start == 0 and located.hook is None
        assert data[located.top.stop :] == USER_CONFIG
        present = {e.job for e in hosts.entries(settings(ssh_config))}
        assert present == (before - set(removed)) | set(added) | set(fetched)
        for job in added:
            got = ssh_config_of(str(ssh_config), f"rescale-{job}")
            assert got["user"] == [f"u_{job}"] and got["port"] == [str(closed)]
        assert not temps(ssh_config.parent)
        figures("concurrent processes (add, remove, hook) that lost nothing", 20)


# -- SIGKILL in the middle of a write ----------------------------------------------------------


def big_user_config() -> bytes:
    """4 MB in few lines: much of a write's time goes to writing and fsync, not parsing."""
    return b"".join(b"# note %03d " % i + b"x" * 40000 + b"\nHost user-%03d\n    HostName "
                    b"192.0.2.1\n" % i for i in range(100)) + USER_CONFIG


def writer(config: str) -> None:
    """A process that adds and removes one job for ever (until it is killed)."""
    chosen = settings(Path(config))
    target = Target("Kill1", "u_Kill1", "127.0.0.1", 2222, "/enc/u_Kill1/work")
    while True:
        hosts.add(chosen, target)
        hosts.remove(chosen, "Kill1")


def wait_for_temp(folder: Path, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if temps(folder):
            return True
    return False


@pytest.mark.slow
def test_sigkill_at_random_points_leaves_the_old_or_the_new_file(
    ssh_config: Path, figures: Figures
) -> None:
    """200 writers killed: half at a random moment, half just after their temp file appeared
    (within the write, the fsync or the rename). After each kill the config is exactly the
    state before or after an add, the lock is free again, and the temp files left behind are
    those of dead processes, which the next write removes."""
    ssh_config.parent.mkdir(mode=0o700)
    ssh_config.write_bytes(big_user_config())
    chosen = settings(ssh_config)
    for j in range(20):
        hosts.add(chosen, Target(f"Base{j}", "u", "127.0.0.1", 22, "/enc/u/work"))
    without = ssh_config.read_bytes()
    hosts.add(chosen, Target("Kill1", "u_Kill1", "127.0.0.1", 2222, "/enc/u_Kill1/work"))
    with_job = ssh_config.read_bytes()
    hosts.remove(chosen, "Kill1")
    assert ssh_config.read_bytes() == without
    rng = random.Random(7)
    fork = multiprocessing.get_context("fork")
    kills = {"before": 0, "after": 0}
    mid_write = 0
    most_temps = 0
    for index in range(200):
        child = fork.Process(target=writer, args=(str(ssh_config),), daemon=True)
        child.start()
        if index % 2:
            time.sleep(rng.uniform(0.0, 0.07))  # about one add and one remove
        else:
            assert wait_for_temp(ssh_config.parent, time.monotonic() + 10), "no write started"
            # Within the write (a tmpfs writes 4 MB in a few ms), or up to its fsync and rename.
            time.sleep(rng.uniform(0.0, 0.003 if index % 4 == 0 else 0.02))
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
        assert child.exitcode == -signal.SIGKILL, "the writer had stopped before the kill"
        data = ssh_config.read_bytes()
        assert data in (without, with_job), f"kill {index}: a mixed or empty file"
        kills["before" if data == without else "after"] += 1
        left = temps(ssh_config.parent)
        mid_write += bool(left)
        most_temps = max(most_temps, len(left))
        for temp in left:  # only ever a dead writer's
            pid = int(temp.name.split(".")[2])
            assert pid == child.pid or not configfile.alive(pid)
    # The next write cleans up, and the lock of the last one killed did not stay held.
    started = time.monotonic()
    hosts.add(chosen, Target("After1", "u", "127.0.0.1", 22, "/enc/u/work"))
    assert time.monotonic() - started < 5
    assert temps(ssh_config.parent) == []
    assert {e.job for e in hosts.entries(chosen)} >= {f"Base{j}" for j in range(20)}
    assert mid_write >= 5, f"only {mid_write} kills landed in a write"
    figures("SIGKILLs of writers (forked)", 200)
    figures("SIGKILLs of forked writers that left a temp file (mid-write)", mid_write)
    figures("SIGKILLs that left the file as before the write", kills["before"])
    figures("SIGKILLs that left the file as after the write", kills["after"])
    figures("most temp files left at once (removed by the next write)", most_temps)


def test_sigkill_of_the_real_program_mid_write(ssh_config: Path, figures: Figures) -> None:
    """The installed program itself, killed as soon as its temp file appears."""
    ssh_config.parent.mkdir(mode=0o700)
    ssh_config.write_bytes(big_user_config())
    line = "Command: ssh -p 2222 u_Kill1@127.0.0.1"
    python = [sys.executable, "-m", "rescale_ssh"]
    subprocess.run([*python, "add", "Kill1", "--from-log", line], check=True,
                   capture_output=True)
    with_job = ssh_config.read_bytes()
    subprocess.run([*python, "remove", "--yes", "Kill1"], check=True, capture_output=True)
    without = ssh_config.read_bytes()
    rng = random.Random(11)
    mid_write = 0
    for index in range(10):
        # Add when the job is not there, remove when it is: each run has something to write.
        there = ssh_config.read_bytes() == with_job
        args = ["remove", "--yes", "Kill1"] if there else ["add", "Kill1", "--from-log", line]
        proc = subprocess.Popen([*python, *args], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        found = wait_for_temp(ssh_config.parent, time.monotonic() + 20)
        time.sleep(rng.uniform(0.0, 0.003 if index % 2 else 0.03))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        mid_write += found and bool(temps(ssh_config.parent))
        assert ssh_config.read_bytes() in (without, with_job)
    subprocess.run([*python, "remove", "--yes", "Kill1"], check=True, capture_output=True,
                   timeout=30)
    assert ssh_config.read_bytes() == without
    assert temps(ssh_config.parent) == []
    figures("SIGKILLs of the installed program", 10)
    figures("SIGKILLs of the installed program that left a temp file (mid-write)", mid_write)


# -- stale locks --------------------------------------------------------------------------------


HOLD_CONFIG_LOCK = """
import sys, time
from pathlib import Path
from rescale_ssh import configfile
with configfile.locked(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(600)
"""

HOLD_JOB_LOCK = """
import sys, time
from rescale_ssh import store
with store.Locked(sys.argv[1], timeout=5) as got:
    print("held" if got else "not held", flush=True)
    time.sleep(600)
"""


def hold(script: str, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_dead_writers_lock_does_not_block(ssh_config: Path, cli: Cli) -> None:
    holder = hold(HOLD_CONFIG_LOCK, str(ssh_config))
    holder.kill()
    holder.wait(10)
    started = time.monotonic()
    cli("add", "Job1", "--from-log", "Command: ssh u@127.0.0.1")
    assert time.monotonic() - started < 5


@pytest.mark.e2e
def test_a_dead_or_hung_hook_lock_does_not_block(cli: Cli, ssh_config: Path,
                                                 platform: FakePlatform,
                                                 isolated_home: Path) -> None:
    cli("install", "--yes", "--timeout", "2")
    state = isolated_home / ".local" / "state" / "rescale-ssh"
    platform.add_job("Lock1", host="127.0.0.1", port=free_port())
    lock = state / "locks" / store.safe_name("job-", "Lock1")
    # A holder killed with SIGKILL: flock dies with its process.
    holder = hold(HOLD_JOB_LOCK, str(lock))
    holder.kill()
    holder.wait(10)
    started = time.monotonic()
    assert ssh_config_of(str(ssh_config), "rescale-Lock1")["hostname"] == ["127.0.0.1"]
    assert time.monotonic() - started < 3
    # A holder that hangs (stopped): the hook gives up within its time limit and says why.
    platform.add_job("Lock2", host="127.0.0.1", port=free_port())
    holder = hold(HOLD_JOB_LOCK, str(state / "locks" / store.safe_name("job-", "Lock2")))
    try:
        holder.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        result = subprocess.run([require("ssh"), "-F", str(ssh_config), "-o", "BatchMode=yes",
                                 "rescale-Lock2", "true"], capture_output=True, text=True,
                                timeout=60, stdin=subprocess.DEVNULL)
        assert time.monotonic() - started < 2 + 3
        assert result.returncode == 255
        assert result.stderr.startswith(
            "rescale-ssh: error: job Lock2 is still being resolved by another ssh"), result.stderr
    finally:
        holder.send_signal(signal.SIGCONT)
        holder.kill()
        holder.wait(10)
