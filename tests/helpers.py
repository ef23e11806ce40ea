"""Helpers shared by the tests (no fixtures here; see conftest.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return (
            f"$ {' '.join(self.args)}\nexit {self.returncode}\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )


class Cli:
    """``rescale-ssh`` run as users run it: a separate process, real stdin/stdout/stderr."""

    def __call__(
        self,
        *args: str,
        input: str | None = None,
        env: dict[str, str] | None = None,
        expect: int | None = 0,
        timeout: float = 60,
    ) -> Result:
        command = [sys.executable, "-m", "rescale_ssh", *args]
        merged = {**os.environ, **(env or {})}
        proc = subprocess.run(
            command,
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            env=merged,
            timeout=timeout,
        )
        result = Result(["rescale-ssh", *args], proc.returncode, proc.stdout, proc.stderr)
        if expect is not None:
            assert proc.returncode == expect, str(result)
        return result


def require(program: str) -> str:
    """The program's path; skip without it, but fail under CI (a missing prerequisite there
    is a broken .ci/run, not a reason to skip)."""
    found = shutil.which(program) or next(
        (p for p in (f"/usr/sbin/{program}", f"/usr/bin/{program}") if os.path.exists(p)), None
    )
    if found is None:
        message = f"{program} is not installed"
        if IN_CI:
            pytest.fail(message + " (CI=true: .ci/run must install it)")
        pytest.skip(message)
    return found


def ssh_config_of(config: str, host: str) -> dict[str, list[str]]:
    """``ssh -G -F config host`` as a dict of option → values (the authority on what ssh uses)."""
    proc = subprocess.run(
        [require("ssh"), "-G", "-F", config, host], capture_output=True, text=True, timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    options: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(" ")
        options.setdefault(key, []).append(value)
    return options


def keygen(path: Path, comment: str = "another key", passphrase: str = "") -> Path:
    """An ed25519 key pair made by ssh-keygen itself at ``path`` (and ``path``.pub)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([require("ssh-keygen"), "-q", "-t", "ed25519", "-N", passphrase, "-C", comment,
                    "-f", str(path)], check=True, capture_output=True, timeout=30)
    return path


def fingerprint(path: Path) -> str:
    """ssh-keygen's SHA256 fingerprint of the key at ``path``."""
    return subprocess.run([require("ssh-keygen"), "-l", "-f", str(path)], check=True,
                          capture_output=True, text=True, timeout=30).stdout.split()[1]


def require_namespaces() -> None:
    """Skip, saying why, on a machine that may not make network namespaces (a container
    without CAP_NET_ADMIN): the WAN benchmark's kernel links (tests/test_netns.py,
    tests/test_tunlink.py)."""
    require("ip")
    probe = subprocess.run(["ip", "netns", "add", f"rsbench-probe-{os.getpid()}"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a network namespace here: {probe.stderr.strip()}")
    subprocess.run(["ip", "netns", "del", f"rsbench-probe-{os.getpid()}"], check=False)


@contextlib.contextmanager
def live_pid() -> Iterator[int]:
    """A pid that stays alive (a sleeping child) for the block: its namespace name is ours."""
    proc = subprocess.Popen(["sleep", "60"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()
