"""`doctor [JOB]`: each check against real programs (ssh, ssh-agent, sshd) and the fake
platform, with the precise reason and fix when a connection cannot work."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakeplatform import FakePlatform
from tests.helpers import Cli, Result, fingerprint, keygen, require
from tests.sshd import SSHServer, free_port

JOB = "Fotxeb"


def lines_of(result: Result, name: str) -> list[str]:
    """The check's line and its fix/tip line (if any)."""
    lines = result.stdout.splitlines()
    for index, line in enumerate(lines):
        if line[2:].startswith(f"{name}: "):
            following = lines[index + 1 : index + 2]
            return [line, *(f for f in following if f.startswith("    "))]
    raise AssertionError(f"no {name!r} check in:\n{result}")


def status_of(result: Result, name: str) -> str:
    return lines_of(result, name)[0][0]


def fix_of(result: Result, name: str) -> str:
    found = lines_of(result, name)
    assert len(found) == 2, f"no fix for {name!r}:\n{result}"
    return found[1].strip()


@pytest.fixture
def local_key(cli: Cli, isolated_home: Path) -> Path:
    cli("key", "generate", "--no-passphrase")
    return isolated_home / ".ssh" / "rescale_ed25519"


def every_failure_has_a_fix(result: Result) -> None:
    lines = result.stdout.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("✗"):
            assert lines[index + 1].startswith("    fix: "), result


def test_cluster_launched_with_a_different_key(cli: Cli, platform: FakePlatform, local_key: Path,
                                               tmp_path: Path) -> None:
    other = keygen(tmp_path / "other")
    platform.add_job(JOB, host="127.0.0.1", port=free_port(),
                     public_key=Path(f"{other}.pub").read_text())
    result = cli("doctor", JOB, expect=1)
    every_failure_has_a_fix(result)
    assert lines_of(result, "cluster key")[0] == (
        f"✗ cluster key: this cluster was launched with key {fingerprint(other)} which is not "
        f"{local_key} ({fingerprint(local_key)}); paste your key in Job Settings and resubmit"
    )
    assert "rescale-ssh key show" in fix_of(result, "cluster key")
    assert status_of(result, "job") == "✓"
    assert result.stdout.splitlines()[-1] == "2 of 13 checks failed."


def test_cluster_launched_with_no_key(cli: Cli, platform: FakePlatform, local_key: Path) -> None:
    platform.add_job(JOB, public_key=None, host="127.0.0.1", port=free_port())
    result = cli("doctor", JOB, expect=1)
    assert lines_of(result, "cluster key")[0] == (
        f"✗ cluster key: job {JOB}'s cluster was launched with no SSH key: no key can log in "
        "to it"
    )
    fix = fix_of(result, "cluster key")
    assert "account Settings → Job Settings → SSH Public Key, then Save" in fix
    assert "submit the job again" in fix
    platform.add_job("Empty", public_key="", host="127.0.0.1", port=free_port())
    assert status_of(cli("doctor", "Empty", expect=1), "cluster key") == "✗"


def test_narrow_access_rule_and_a_closed_port(cli: Cli, platform: FakePlatform,
                                              local_key: Path) -> None:
    port = free_port()  # nothing listens there
    platform.add_job(JOB, host="127.0.0.1", port=port, cidr_rule="108.27.231.172/32",
                     public_key=Path(f"{local_key}.pub").read_text())
    result = cli("doctor", JOB, expect=1)
    access = lines_of(result, "access")
    assert access[0].startswith(
        "! access: only 108.27.231.172/32 may connect (a /32 is exactly one address, "
        "108.27.231.172)"
    )
    assert "Access Restriction" in access[1]
    probe = lines_of(result, "ssh port")
    assert probe[0] == f"✗ ssh port: 127.0.0.1 port {port}: connection refused"
    assert "only from 108.27.231.172/32" in probe[1]
    assert status_of(result, "cluster key") == "✓"
    assert result.stdout.splitlines()[-1] == "1 of 13 checks failed."


def test_closed_port_with_an_open_rule(cli: Cli, platform: FakePlatform, local_key: Path) -> None:
    port = free_port()
    platform.add_job(JOB, host="127.0.0.1", port=port, cidr_rule="0.0.0.0/0")
    result = cli("doctor", JOB, expect=1)
    assert lines_of(result, "access")[0] == (
        "✓ access: Everywhere (0.0.0.0/0): any address may connect"
    )
    assert f"blocks outgoing port {port}" in fix_of(result, "ssh port")


@pytest.mark.e2e
def test_everything_passes_with_the_real_sshd(cli: Cli, platform: FakePlatform,
                                              sshd: SSHServer, short_state: Path) -> None:
    # short_state: tests' own folders are too deep for the jobs' sockets, and doctor would
    # rightly warn that connections cannot be shared there.
    identity = str(sshd.client_key)
    platform.add_job(JOB, host=sshd.host, port=sshd.port, user=sshd.user,
                     workdir=str(sshd.workdir),
                     public_key=Path(f"{sshd.client_key}.pub").read_text())
    cli("add", JOB, "--identity", identity)
    result = cli("doctor", JOB, "--identity", identity)
    assert "✗" not in result.stdout
    for name in ("ssh", "config", "section", "shadowing", "included", "key", "key permissions",
                 "API key", "job", "cluster key", "access", "ssh port", "host"):
        assert status_of(result, name) == "✓", result
    assert lines_of(result, "ssh port")[0].startswith(
        f"✓ ssh port: {sshd.host} port {sshd.port} answers: SSH-2.0-OpenSSH_"
    )
    assert "cannot be known" in lines_of(result, "termination")[0]
    assert "Terminate Clusters Automatically" in lines_of(result, "termination")[0]
    assert "each job's connections share one (ControlPersist 5m)" in lines_of(
        result, "sharing")[0]
    assert result.stdout.splitlines()[-1] == "No problem found (18 checks)."
    report = json.loads(cli("doctor", JOB, "--identity", identity, "--json").stdout)
    assert report["ok"] is True and report["job"] == JOB
    assert {c["status"] for c in report["checks"]} <= {"pass", "info"}
    assert {c["name"] for c in report["checks"]} >= {"cluster key", "ssh port", "termination"}
    # The same cluster, seen from a key it was not launched with.
    other = cli("doctor", JOB, expect=1)
    assert status_of(other, "key") == "✗"  # no key at the default identity
    assert "there is no key at" in lines_of(other, "cluster key")[0]


def test_job_states(cli: Cli, platform: FakePlatform, local_key: Path) -> None:
    platform.add_job("Waits", status="Queued", cluster_status="Not Started")
    queued = cli("doctor", "Waits", expect=1)
    assert lines_of(queued, "job")[0] == (
        "✗ job: job Waits is Queued; the cluster is not started yet"
    )
    assert fix_of(queued, "job") == "fix: `rescale-ssh wait Waits` waits until the cluster " \
        "accepts SSH"
    assert status_of(queued, "ssh port") == "-"

    platform.add_job("Kept", status="Completed", cluster_status="Started", host="127.0.0.1",
                     port=free_port())
    kept = cli("doctor", "Kept", expect=1)
    assert "still running: it was launched without automatic termination" in (
        lines_of(kept, "termination")[0])
    platform.add_job("Done", status="Completed", cluster_status="Stopped")
    done = cli("doctor", "Done", expect=1)
    assert lines_of(done, "termination")[0] == "· termination: the cluster stopped when the " \
        "job ended"
    assert "submit the job again" in fix_of(done, "job")

    missing = cli("doctor", "Nope", expect=1)
    assert lines_of(missing, "job")[0] == (
        f"✗ job: job Nope was not found on {platform.base_url}"
    )
    assert cli("doctor", "not-a-job", expect=2).stderr.startswith(
        "rescale-ssh: error: invalid job ID from the command line"
    )


def test_stale_block(cli: Cli, platform: FakePlatform, local_key: Path) -> None:
    platform.add_job(JOB, public_key=Path(f"{local_key}.pub").read_text())
    cli("add", JOB)
    platform.remove_job(JOB)
    platform.add_job(JOB, host="198.51.100.9", public_key=Path(f"{local_key}.pub").read_text())
    result = cli("doctor", JOB, "--timeout", "0.5", expect=1)
    assert lines_of(result, "host")[0] == (
        f"✗ host: rescale-{JOB} points at 203.0.113.7 port 22, but the cluster is at "
        "198.51.100.9 port 22"
    )
    assert fix_of(result, "host") == f"fix: `rescale-ssh add {JOB}` updates it"


def test_no_api_key_skips_the_job(cli: Cli, local_key: Path) -> None:
    result = cli("doctor", JOB, expect=1)
    assert lines_of(result, "API key")[0] == "✗ API key: no Rescale API key"
    assert "rescale-ssh login" in fix_of(result, "API key")
    assert lines_of(result, "job")[0].startswith("- job: job Fotxeb was not checked")


def test_rejected_api_key(cli: Cli, platform: FakePlatform, local_key: Path) -> None:
    result = cli("doctor", env={"RESCALE_API_KEY": "wrong-key-0000000000"}, expect=1)
    assert lines_of(result, "API key")[0] == (
        f"✗ API key: {platform.base_url} rejects the API key from RESCALE_API_KEY")
    # The variable wins over any stored key: login cannot help while it is set (the walkthrough
    # of issue 15 found doctor and whoami still saying "run `rescale-ssh login`").
    assert "cannot help while it is set" in fix_of(result, "API key")


def test_whoami_names_the_variable_of_a_rejected_key(cli: Cli, platform: FakePlatform) -> None:
    result = cli("whoami", env={"RESCALE_API_KEY": "wrong-key-0000000000"}, expect=4)
    assert "RESCALE_API_KEY" in result.stderr and "cannot help while it is set" in result.stderr


def test_section_moved_and_shadowed(cli: Cli, ssh_config: Path, local_key: Path) -> None:
    line = ("Instance ready for ssh access. Command: ssh -i </path/to/key> uprod_Fotxeb@"
            "203.0.113.7; working directory: /enc/uprod_Fotxeb/work")
    cli("add", JOB, "--from-log", line)
    healthy = cli("doctor", expect=1)  # no API key
    assert status_of(healthy, "section") == "✓"
    assert status_of(healthy, "shadowing") == "✓"
    ssh_config.write_bytes(b"# mine\nHost *\n    User root\n    Port 2200\n\n"
                           + ssh_config.read_bytes())
    result = cli("doctor", expect=1)
    every_failure_has_a_fix(result)
    assert lines_of(result, "section")[0].startswith(
        f"✗ section: the rescale-ssh section is not at the top of {ssh_config}: 3 line(s) "
        "above it come first for ssh (the first: 'Host *')"
    )
    assert lines_of(result, "shadowing")[0] == (
        "✗ shadowing: your ssh config overrides the section: rescale-Fotxeb gets User 'root', "
        "not 'uprod_Fotxeb'; rescale-Fotxeb gets Port '2200', not '22'"
    )
    ssh_config.write_bytes(ssh_config.read_bytes() + b"Host x\n    BogusOption yes\n")
    broken = cli("doctor", expect=1)
    assert lines_of(broken, "config")[0].startswith(f"✗ config: ssh cannot read {ssh_config}")


def test_key_permissions_and_missing_key(cli: Cli, local_key: Path) -> None:
    local_key.chmod(0o644)
    result = cli("doctor", expect=1)
    assert lines_of(result, "key permissions") == [
        f"✗ key permissions: {local_key} has mode 0644: others may read it, and ssh refuses "
        "such a key",
        f"    fix: chmod 600 {local_key}",
    ]
    local_key.unlink()
    missing = cli("doctor", expect=1)
    assert lines_of(missing, "key")[0] == f"✗ key: there is no key at {local_key}"
    assert "rescale-ssh key generate" in fix_of(missing, "key")


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[str]:
    """A real ssh-agent on a socket of its own; yields SSH_AUTH_SOCK."""
    sock = tmp_path / "agent.sock"
    process = subprocess.Popen([require("ssh-agent"), "-D", "-a", str(sock)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert time.monotonic() < deadline, "ssh-agent did not start"
            time.sleep(0.02)
        yield str(sock)
    finally:
        process.terminate()
        process.wait(5)


def test_agent_state(cli: Cli, isolated_home: Path, tmp_path: Path, agent: str) -> None:
    secret = tmp_path / "pass"
    secret.write_text("agent passphrase\n")
    cli("key", "generate", "--passphrase-file", str(secret))
    key = isolated_home / ".ssh" / "rescale_ed25519"
    without = cli("doctor", expect=1)
    assert lines_of(without, "passphrase")[0] == (
        "· passphrase: the key is protected by a passphrase"
    )
    assert lines_of(without, "agent") == [
        "! agent: no ssh-agent (SSH_AUTH_SOCK is not set): ssh asks for the passphrase on "
        "every connection",
        f'    fix: eval "$(ssh-agent)" && ssh-add {key}',
    ]
    env = {"SSH_AUTH_SOCK": agent}
    empty = cli("doctor", env=env, expect=1)
    assert lines_of(empty, "agent")[0].startswith("! agent: ssh-agent does not hold the key")
    # Load it the way a person would, with the passphrase typed into ssh-add's askpass.
    askpass = tmp_path / "askpass"
    askpass.write_text("#!/bin/sh\necho 'agent passphrase'\n")
    askpass.chmod(0o700)
    subprocess.run([require("ssh-add"), str(key)], check=True, capture_output=True, timeout=30,
                   stdin=subprocess.DEVNULL,
                   env={**os.environ, **env, "SSH_ASKPASS": str(askpass),
                        "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"})
    held = cli("doctor", env=env, expect=1)  # still no API key
    assert lines_of(held, "agent")[0] == "✓ agent: ssh-agent holds the key"


def fake_program(folder: Path, name: str, script: str) -> None:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


@pytest.mark.parametrize(("banner", "fails"), [
    ("OpenSSH_7.2p2 Ubuntu-4ubuntu2.10, OpenSSL 1.0.2g", True),
    ("OpenSSH_7.4p1, OpenSSL 1.0.2k-fips  26 Jan 2017", True),  # RHEL/CentOS 7
    ("OpenSSH_7.6p1 Ubuntu-4ubuntu0.7, OpenSSL 1.0.2n", False),
    ("OpenSSH_9.2p1 Debian-2+deb12u6, OpenSSL 3.0.19", False),
])
def test_ssh_too_old_or_missing(cli: Cli, tmp_path: Path, local_key: Path, banner: str,
                                fails: bool) -> None:
    tools = tmp_path / "bin"
    fake_program(tools, "ssh", f"echo '{banner}' >&2\n")
    version = banner.split("_")[1].split("p")[0]
    found = cli("doctor", env={"PATH": f"{tools}{os.pathsep}{os.environ['PATH']}"},
                expect=1 if fails else None)
    if fails:
        assert lines_of(found, "ssh") == [
            f"✗ ssh: OpenSSH {version} is too old: rescale-ssh needs 7.6 or newer "
            "(StrictHostKeyChecking accept-new; an older ssh refuses the whole config when the "
            "file rescale-ssh includes is there)",
            "    fix: upgrade OpenSSH's client to 7.6 or newer, or run `rescale-ssh uninstall` "
            "on this machine",
        ]
    else:
        assert lines_of(found, "ssh")[0] == (
            f"✓ ssh: OpenSSH {version} ({tools / 'ssh'}); rescale-ssh needs 7.6")
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = cli("doctor", env={"PATH": str(empty)}, expect=1)
    assert lines_of(missing, "ssh")[0] == "✗ ssh: ssh is not installed (or not on PATH)"


def test_hook_is_reported_without_running_it(cli: Cli, platform: FakePlatform,
                                             ssh_config: Path, local_key: Path) -> None:
    ssh_config.parent.mkdir(exist_ok=True)
    ssh_config.write_text("Host *\n    User someone\n")
    cli("install", "--yes")
    result = cli("doctor")
    assert lines_of(result, "hook")[0] == (
        "✓ hook: the hook is installed and its program runs: `ssh rescale-<any job>` works")
    assert lines_of(result, "included")[0].startswith("✓ included: ")
    assert not [r.path for r in platform.requests if "/jobs/" in r.path], (
        "doctor ran the hook (it asked the platform about a job)"
    )


def test_own_hosts_named_like_jobs(cli: Cli, platform: FakePlatform, ssh_config: Path,
                                   local_key: Path) -> None:
    """install and doctor say which hosts of the user's they leave alone; one added after
    install is found, and install leaves it alone too."""
    ssh_config.parent.mkdir(exist_ok=True)
    ssh_config.write_text("Host rescale-build\n    HostName build.example\n")
    installed = cli("install", "--yes")
    assert (f"Left alone your own host rescale-build ({ssh_config} line "
            in installed.stdout), installed.stdout
    assert lines_of(cli("doctor"), "own hosts")[0] == (
        "· own hosts: rescale-build is a host of your own: the hook leaves it alone")
    with ssh_config.open("a") as handle:
        handle.write("Match originalhost rescale-ci,rescale-* exec true\n    User ci\n")
    result = cli("doctor", expect=1)
    assert lines_of(result, "included")[0].startswith("✗ included: ")
    assert "a host of yours added since" in lines_of(result, "included")[0]
    assert "rescale-ci" in cli("install", "--yes").stdout
    assert status_of(cli("doctor"), "included") == "✓"


def test_hook_lines_of_another_version(cli: Cli, platform: FakePlatform, ssh_config: Path,
                                       local_key: Path, isolated_home: Path) -> None:
    ssh_config.parent.mkdir(exist_ok=True)
    ssh_config.write_text("Host mine\n    User me\n")
    cli("install", "--yes")
    state = isolated_home / ".local" / "state" / "rescale-ssh"
    ssh_config.write_bytes(ssh_config.read_bytes().replace(  # as an earlier version wrote it
        b"keeps the lines below this section global;", b"keeps the lines below this section "
        b"global."))
    warned = [line for line in cli("doctor").stdout.splitlines() if line.startswith("! sect")]
    assert warned == [
        f"! section: the rescale-ssh lines in {ssh_config} are not what this version writes "
        "(an earlier version wrote them, or they were edited)"]
    assert "rewrote the rescale-ssh lines" in cli("install", "--yes").stdout
    assert status_of(cli("doctor"), "hook") == "✓"
    (state / "hook").unlink()
    assert lines_of(cli("doctor", expect=1), "hook")[0] == (
        f"✗ hook: {state / 'hook'}, which the hook's Match runs, is missing or not "
        "executable: `ssh rescale-JOB` fails for jobs you did not add")
    assert "wrote the hook's script" in cli("install", "--yes").stdout
    (state / "ssh.conf").unlink()
    assert lines_of(cli("doctor", expect=1), "included")[0] == (
        f"✗ included: {state / 'ssh.conf'}, which the section includes, is missing: ssh asks "
        "to confirm each new cluster's host key and the hook does not run")


def test_ascii_terminal(cli: Cli, platform: FakePlatform, local_key: Path) -> None:
    platform.add_job(JOB, public_key=None, host="127.0.0.1", port=free_port())
    result = cli("doctor", JOB, env={"PYTHONIOENCODING": "ascii"}, expect=1)
    assert result.stdout.isascii()
    assert "[FAIL] cluster key: " in result.stdout
    assert "[ok]   ssh: " in result.stdout
    assert "Settings -> Job Settings" in result.stdout


def test_json_output(cli: Cli, platform: FakePlatform, local_key: Path) -> None:
    platform.add_job(JOB, public_key=None, cidr_rule="10.0.0.0/8")
    report = json.loads(cli("doctor", JOB, "--json", "--timeout", "0.5", expect=1).stdout)
    assert report["ok"] is False and report["job"] == JOB
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["cluster key"]["status"] == "fail"
    assert checks["cluster key"]["fix"]
    assert checks["access"]["status"] == "warn"
    assert checks["access"]["summary"].startswith("only 10.0.0.0/8 may connect")
    assert all(set(c) == {"name", "status", "summary", "fix"} for c in report["checks"])


def test_a_putty_key_as_identity_is_refused(cli: Cli, local_key: Path, tmp_path: Path) -> None:
    ppk = tmp_path / "k.ppk"
    cli("key", "export", "--ppk", str(ppk))
    result = cli("doctor", "--identity", str(ppk), expect=1)
    assert lines_of(result, "key")[0] == f"✗ key: {ppk} is a PuTTY key, which ssh cannot use"
    assert f"rescale-ssh key import {ppk}" in fix_of(result, "key")
