"""The tool's known_hosts: forgetting a job's keys, in every form ssh writes them."""

from __future__ import annotations

import subprocess
from pathlib import Path

from rescale_ssh.sshconfig import knownhosts
from tests.helpers import require

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBZ0ZXN0a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5"
LINES = (
    f"rescale-fotxeb {KEY}\n"
    f"[rescale-fotxeb]:2222 {KEY}\n"
    f"rescale-other {KEY}\n"
    f"@cert-authority rescale-fotxeb {KEY}\n"
    "# a comment naming rescale-fotxeb\n"
)


def test_forget_is_case_insensitive_and_keeps_other_jobs() -> None:
    kept = knownhosts.without(LINES.encode(), ["rescale-Fotxeb"])
    assert kept == f"rescale-other {KEY}\n# a comment naming rescale-fotxeb\n".encode()


def test_forget_finds_hashed_entries(tmp_path: Path) -> None:
    # HashKnownHosts yes (Debian's and Ubuntu's /etc/ssh/ssh_config): names are HMACs.
    path = tmp_path / "known_hosts"
    path.write_text(f"rescale-fotxeb {KEY}\nrescale-other {KEY}\n")
    subprocess.run([require("ssh-keygen"), "-H", "-f", str(path)], check=True,
                   capture_output=True, timeout=30)
    hashed = path.read_bytes()
    assert b"rescale-" not in hashed and hashed.count(b"|1|") == 2

    assert knownhosts.forget(path, ["rescale-Fotxeb"]) == 1
    remaining = path.read_bytes()
    assert remaining == hashed.splitlines(keepends=True)[1]
    assert knownhosts.without(remaining, ["rescale-Fotxeb"]) == remaining


def test_malformed_hashed_names_are_kept() -> None:
    data = f"|1|not base64|x {KEY}\n|1|a|b|c {KEY}\n".encode()
    assert knownhosts.without(data, ["rescale-fotxeb"]) == data
