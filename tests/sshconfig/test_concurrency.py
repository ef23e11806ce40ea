"""Concurrent writers: the lock and the atomic rename lose no block and no user line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rescale_ssh.settings import Settings
from rescale_ssh.sshconfig import hosts

USER_CONFIG = b"# mine\r\nHost mine\r\n\tUser me\r\n"


def test_parallel_adds_and_removes_lose_nothing(ssh_config: Path) -> None:
    ssh_config.parent.mkdir(mode=0o700)
    ssh_config.write_bytes(USER_CONFIG)
    jobs = [f"Job{i}" for i in range(12)]
    # Half of them exist beforehand and get removed while the others are added.
    for job in jobs[6:]:
        line = f"Command: ssh u_{job}@192.0.2.{jobs.index(job) + 1}"
        subprocess.run([sys.executable, "-m", "rescale_ssh", "add", job, "--from-log", line],
                       check=True, capture_output=True, env=os.environ)
    procs = []
    for i, job in enumerate(jobs):
        if i < 6:
            args = ["add", job, "--from-log", f"Command: ssh u_{job}@192.0.2.{i + 1}"]
        else:
            args = ["remove", "--yes", job]
        procs.append(subprocess.Popen([sys.executable, "-m", "rescale_ssh", *args],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    data = ssh_config.read_bytes()
    assert data.endswith(USER_CONFIG)
    present = [e.job for e in hosts.entries(Settings(ssh_config_flag=str(ssh_config)))]
    assert present == sorted(jobs[:6])
    assert not [p for p in ssh_config.parent.iterdir() if p.name.endswith(".tmp")]
