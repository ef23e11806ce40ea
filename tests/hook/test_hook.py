"""The just-in-time hook: `install`, then `ssh rescale-<any job>` with the real ssh and sshd."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rescale_ssh.sshconfig import section, toolfiles
from tests.fakeplatform import FakePlatform
from tests.helpers import Cli, require, ssh_config_of
from tests.sshd import SSHDFactory, SSHServer, free_port
from tests.test_import_graph import hook_path

pytestmark = pytest.mark.e2e

FORBIDDEN_ON_WARM_PATH = ("typer", "click", "rich", "requests", "urllib3", "cryptography",
                          "filelock", "pydantic", "sshconf", "pathlib", "typing", "re", "json")

USER_CONFIGS = {
    "missing": None,
    "empty": b"",
    "lf": b"Host mine\n    HostName 192.0.2.10\n    User me\n",
    "crlf-no-final-newline": b"Host mine\r\n\tHostName=192.0.2.10\r\n\tUser me",
    "globals": b"ServerAliveInterval 7\nHost *\n  ForwardAgent no\n",
    # Sets an option of the hook's blocks for every host: the jobs' blocks must come first.
    "shadowing": b"Host mine\n    HostName 192.0.2.10\nHost *\n    User someone\n",
}
SHADOWING = {"shadowing"}


def state_dir(home: Path) -> Path:
    return home / ".local" / "state" / "rescale-ssh"


def ssh(config: Path, alias: str, *command: str, timeout: float = 30,
        options: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require("ssh"), "-F", str(config), "-o", "BatchMode=yes", *options, alias, *command],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )


def add_job_for(platform: FakePlatform, sshd: SSHServer, job: str, **extra: object) -> Path:
    workdir = sshd.new_workdir(job)
    platform.add_job(job, user=sshd.user, host=sshd.host, port=sshd.port, workdir=str(workdir),
                     **extra)  # type: ignore[arg-type]
    return workdir


@pytest.fixture
def installed(cli: Cli, ssh_config: Path, platform: FakePlatform, sshd: SSHServer) -> Path:
    """The hook installed, with the test sshd's client key as the identity."""
    cli("install", "--yes", env={"RESCALE_SSH_IDENTITY": str(sshd.client_key)})
    return ssh_config


@pytest.mark.parametrize("name", sorted(USER_CONFIGS))
def test_install_and_uninstall_leave_the_file_as_it_was(
    name: str, cli: Cli, ssh_config: Path, isolated_home: Path
) -> None:
    original = USER_CONFIGS[name]
    if original is not None:
        ssh_config.parent.mkdir(mode=0o700)
        ssh_config.write_bytes(original)
    planned = cli("install", "--dry-run").stdout
    assert "+# rescale-ssh hook state=" in planned and "+Include " in planned
    assert ssh_config.exists() == (original is not None)
    cli("install", "--yes")
    data = ssh_config.read_bytes()
    located = section.locate(data, path="cfg")
    # One region, at the very top; the user's bytes follow it untouched, nothing after them.
    assert located.top is not None and located.top.start == 0 and located.hook is None
    assert data[located.top.stop :] == (original or b"")
    assert b"Match" not in data  # the hook's Match is in the tool's own file
    assert "Match originalhost" in included_text(isolated_home)
    assert "Already installed" in cli("install", "--yes").stdout
    assert ssh_config.read_bytes() == data
    hook_lines = included_text(isolated_home)
    cli("add", "Fotxeb", "--from-log", "Command: ssh u_Fotxeb@192.0.2.7")
    assert b"Host rescale-Fotxeb\n" in ssh_config.read_bytes()
    # The Match needs no exclusion for a static job (its HostName is set); the added job's
    # host-key policy names it, and its connections go through the proxy (issue 16).
    python, launcher = toolfiles.program()
    proxy = ("Match originalhost \"rescale-Fotxeb,!*'*\" "
             f"exec \"test -x '{python}' -a -f '{launcher}'\"\n"
             f"    ProxyCommand '{python}' -I -S '{launcher}' proxy %h %p\n"
             "    ProxyUseFdpass yes\n")
    assert included_text(isolated_home) == hook_lines.replace(
        "Match ", f"Host rescale-Fotxeb\n    StrictHostKeyChecking accept-new\n{proxy}Match ", 1)
    assert (state_dir(isolated_home) / "hook.conf").exists()
    cli("uninstall", "--yes")
    if original is None:  # none before install: none after uninstall (not an empty file)
        assert not ssh_config.exists()
    else:
        assert ssh_config.read_bytes() == original
    assert not (state_dir(isolated_home) / "hook.conf").exists()
    assert not (state_dir(isolated_home) / "ssh.conf").exists()
    assert "Nothing of rescale-ssh" in cli("uninstall", "--yes").stdout


def included_text(home: Path) -> str:
    return (state_dir(home) / "ssh.conf").read_text()


def test_users_hosts_resolve_as_before(cli: Cli, ssh_config: Path) -> None:
    ssh_config.parent.mkdir(mode=0o700)
    ssh_config.write_bytes(USER_CONFIGS["globals"] + USER_CONFIGS["lf"])
    hosts = ("mine", "other.example", "rescaleX")
    before = {h: ssh_config_of(str(ssh_config), h) for h in hosts}
    cli("install", "--yes")
    assert {h: ssh_config_of(str(ssh_config), h) for h in hosts} == before


def test_cold_then_warm(installed: Path, platform: FakePlatform, isolated_home: Path) -> None:
    platform.add_job("Fotxeb", host="203.0.113.7", port=2222)
    got = ssh_config_of(str(installed), "rescale-Fotxeb")
    assert got["hostname"] == ["203.0.113.7"]
    assert got["port"] == ["2222"]
    assert got["user"] == ["uprod_Fotxeb"]
    assert got["proxyusefdpass"] == ["yes"]
    assert platform.count() == 2  # instances + logs: the common case
    for _ in range(3):
        assert ssh_config_of(str(installed), "rescale-Fotxeb")["hostname"] == ["203.0.113.7"]
    assert platform.count() == 2  # warm: no network
    # The cache record is what `path` answers from, too.


def test_warm_path_imports_only_the_standard_library(
    installed: Path, platform: FakePlatform, isolated_home: Path
) -> None:
    platform.add_job("Fotxeb")
    ssh_config_of(str(installed), "rescale-Fotxeb")
    match = re.search(r"""exec "'([^']*)' '%n'"$""", included_text(isolated_home), re.MULTILINE)
    assert match is not None  # the script install wrote; its last line runs the hook
    script = Path(match.group(1)).read_text().splitlines()
    assert script[0] == "#!/bin/sh" and script[-1].startswith("exec ")
    state = str(state_dir(isolated_home))
    words = [w.strip("'").replace('"$state"', state) for w in script[-1].split()[1:]]
    python, flags, launcher = words[0], words[1:3], words[3]
    assert flags == ["-I", "-S"]
    command = [python, "-I", "-S", "-X", "importtime", launcher, *words[4:-1], "rescale-Fotxeb"]
    assert words[-1] == '"$1"'
    proc = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert "rescale_ssh.hook.matcher" in imported
    heavy = sorted(m for m in imported if m.split(".")[0] in FORBIDDEN_ON_WARM_PATH)
    assert heavy == []
    # Ours: only what the import graph puts on the hook path (tests/test_import_graph.py).
    assert sorted(m for m in imported if m.split(".")[0] == "rescale_ssh"
                  and m not in hook_path()) == []
    assert platform.count() == 2


def test_other_hosts_and_added_jobs_never_run_the_hook(
    cli: Cli, installed: Path, platform: FakePlatform, isolated_home: Path
) -> None:
    cli("add", "Static", "--from-log", "Command: ssh u_Static@192.0.2.9")
    assert ssh_config_of(str(installed), "rescale-Static")["hostname"] == ["192.0.2.9"]
    ssh_config_of(str(installed), "myhost.example.org")
    ssh_config_of(str(installed), "rescale")
    assert platform.count() == 0
    assert not (state_dir(isolated_home) / "jobs").exists()


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("queued", "rescale-ssh: error: job Job1 is Queued; the cluster is not started yet"),
        ("stopped", "rescale-ssh: error: job Job1 is Completed; its cluster is stopped"),
        ("unknown", "rescale-ssh: error: job Job1 not found on http://127.0.0.1:"),
        ("bad-key", "rescale-ssh: error: the platform rejected the API key"),
        ("unreachable", "rescale-ssh: error: the platform at http://127.0.0.1:"),
    ],
)
def test_failures_are_explained_within_seconds(
    setup: str, expected: str, cli: Cli, ssh_config: Path, platform: FakePlatform
) -> None:
    env: dict[str, str] = {}
    if setup == "queued":
        platform.add_job("Job1", status="Queued", cluster_status="Not Started")
    elif setup == "stopped":
        platform.add_job("Job1", status="Completed", cluster_status="Stopped")
    elif setup == "bad-key":
        platform.add_job("Job1")
        env["RESCALE_API_KEY"] = "wrong-key"
    elif setup == "unreachable":
        env["RESCALE_API_URL"] = f"http://127.0.0.1:{free_port()}"
    cli("install", "--yes", env=env)
    os.environ.update(env)
    started = time.monotonic()
    result = ssh(ssh_config, "rescale-Job1", "true")
    elapsed = time.monotonic() - started
    assert result.returncode == 255
    assert elapsed < 10
    lines = result.stderr.strip().splitlines()
    assert "Could not resolve" not in result.stderr
    assert lines[0].startswith(expected), result.stderr
    assert all(line.startswith("hint: ") for line in lines[1:]), result.stderr


def test_ssh_scp_rsync_to_a_job_never_added(
    cli: Cli, installed: Path, platform: FakePlatform, sshd: SSHServer, tmp_path: Path
) -> None:
    workdir = add_job_for(platform, sshd, "Never1")
    result = ssh(installed, "rescale-Never1", "whoami")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == sshd.user
    remote = cli("path", "Never1").stdout.strip()
    assert remote == f"rescale-Never1:{workdir}"
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(100_000))
    scp = subprocess.run([require("scp"), "-F", str(installed), "-o", "BatchMode=yes",
                          str(payload), f"{remote}/"], capture_output=True, text=True, timeout=30)
    assert scp.returncode == 0, scp.stderr
    assert (workdir / "payload.bin").read_bytes() == payload.read_bytes()
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "a.txt").write_text("a")
    rsync = subprocess.run([require("rsync"), "-a", "-e", f"ssh -F {installed} -o BatchMode=yes",
                            f"{tree}/", f"{remote}/tree/"], capture_output=True, text=True,
                           timeout=60)
    assert rsync.returncode == 0, rsync.stderr
    assert (workdir / "tree" / "sub" / "a.txt").read_text() == "a"


def test_twenty_concurrent_ssh_to_new_jobs(
    installed: Path, platform: FakePlatform, sshd: SSHServer
) -> None:
    jobs = [f"Many{i}" for i in range(20)]
    for job in jobs:
        add_job_for(platform, sshd, job)
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda job: ssh(installed, f"rescale-{job}", "whoami"), jobs))
    for result in results:
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == sshd.user
    assert platform.count() <= 2 * len(jobs)


def test_one_resolution_per_job_at_a_time(installed: Path, platform: FakePlatform) -> None:
    platform.add_job("Same1")
    platform.latency = 0.3
    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(lambda _: subprocess.run(
            ["ssh", "-G", "-F", str(installed), "rescale-Same1"], capture_output=True,
            text=True, timeout=60), range(10)))
    assert all(r.returncode == 0 and "hostname 203.0.113.7" in r.stdout for r in results)
    assert platform.count("/api/v2/jobs/Same1/instances/") == 1


def test_cache_expires(installed: Path, platform: FakePlatform, isolated_home: Path) -> None:
    platform.add_job("Exp1", host="203.0.113.7")
    ssh_config_of(str(installed), "rescale-Exp1")
    conf = state_dir(isolated_home) / "hook.conf"
    conf.write_text(conf.read_text().replace("ttl=1800", "ttl=0"))
    shutil.rmtree(state_dir(isolated_home) / "live")  # as `install` does when it changes ttl
    platform.jobs["Exp1"].host = "203.0.113.8"
    # This run refreshes the cache; ssh read the block included at the top before the hook ran
    # (the proxy connects to the cached, fresh address regardless). The next run shows it.
    ssh_config_of(str(installed), "rescale-Exp1")
    assert platform.count("/api/v2/jobs/Exp1/instances/") == 2
    conf.write_text(conf.read_text().replace("ttl=0", "ttl=1800"))
    assert ssh_config_of(str(installed), "rescale-Exp1")["hostname"] == ["203.0.113.8"]
    assert platform.count("/api/v2/jobs/Exp1/instances/") == 2


def test_replaced_cluster_is_found_again(
    installed: Path, platform: FakePlatform, sshd: SSHServer, sshd_factory: SSHDFactory
) -> None:
    first = sshd_factory(client_key=sshd.client_key)
    platform.add_job("Moved1", user=first.user, host=first.host, port=first.port,
                     workdir=str(first.new_workdir("Moved1")))
    assert ssh(installed, "rescale-Moved1", "true").returncode == 0
    first.stop()
    job = platform.jobs["Moved1"]
    job.port = sshd.port  # a new cluster: another port and other host keys
    result = ssh(installed, "rescale-Moved1", "whoami")
    assert result.returncode == 0, result.stderr
    assert platform.count("/api/v2/jobs/Moved1/instances/") == 2


def test_tampered_cache_is_refused_and_nothing_runs(
    installed: Path, platform: FakePlatform, isolated_home: Path, tmp_path: Path
) -> None:
    platform.add_job("Tamp1")
    ssh_config_of(str(installed), "rescale-Tamp1")
    before = installed.read_bytes()
    canary = tmp_path / "canary"
    record = next((state_dir(isolated_home) / "jobs").iterdir())
    record.write_text(record.read_text().replace(
        "host=203.0.113.7", f"host=203.0.113.7 -oProxyCommand=touch {canary}"))
    result = ssh(installed, "rescale-Tamp1", "true")
    assert result.returncode == 255
    assert "invalid host from the cache file" in result.stderr
    assert not canary.exists()
    assert installed.read_bytes() == before


def test_proxy_relays_without_fd_passing(sshd: SSHServer, tmp_path: Path, cli: Cli) -> None:
    config = tmp_path / "relay_config"
    config.write_text(
        f"Host relay\n  HostName {sshd.host}\n  Port {sshd.port}\n  User {sshd.user}\n"
        f"  IdentityFile {sshd.client_key}\n  IdentitiesOnly yes\n"
        f"  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
        f"  ProxyCommand {sys.executable} -m rescale_ssh proxy %h %p\n"
    )
    result = ssh(config, "relay", "echo", "relayed")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "relayed"


def test_proxy_waits_for_a_booting_cluster(sshd: SSHServer, sshd_factory: SSHDFactory,
                                           tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "wait_config"
    config.write_text(
        f"Host booting\n  HostName 127.0.0.1\n  Port {port}\n  User {sshd.user}\n"
        f"  IdentityFile {sshd.client_key}\n  IdentitiesOnly yes\n"
        f"  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
        f"  ProxyCommand {sys.executable} -m rescale_ssh proxy --wait 20 %h %p\n"
        f"  ProxyUseFdpass yes\n"
    )
    boot = threading.Timer(2.0, lambda: sshd_factory(client_key=sshd.client_key, port=port))
    boot.start()
    try:
        result = ssh(config, "booting", "echo", "up", timeout=60)
    finally:
        boot.join()
    assert result.returncode == 0, result.stderr
    assert "waiting up to 20 s" in result.stderr
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


@pytest.mark.parametrize("user_config", [
    b"Host *\n    User nobody-here\n    Port 2200\n",
    b"User nobody-here\nPort 2200\nHost other\n    HostName 192.0.2.1\n",
    b"Host *\n    IdentitiesOnly yes\n    IdentityFile ~/.ssh/other_key\n"
    b"    StrictHostKeyChecking yes\n    UserKnownHostsFile /dev/null\n",
], ids=["host-star", "leading-globals", "identity-and-host-keys"])
def test_the_first_connection_gets_the_jobs_values_whatever_the_globals(
    cli: Cli, ssh_config: Path, platform: FakePlatform, sshd: SSHServer, isolated_home: Path,
    user_config: bytes,
) -> None:
    """Issue 12: with `Host *` or leading globals setting User, Port, host keys or identities,
    the first `ssh rescale-<never added>` used the user's values and failed. The hook's Match
    now sits at the top (through the section's Include), so its block wins at once."""
    ssh_config.parent.mkdir(mode=0o700)
    ssh_config.write_bytes(user_config)
    before = ssh_config_of(str(ssh_config), "other.example")
    result = cli("install", "--yes", env={"RESCALE_SSH_IDENTITY": str(sshd.client_key)})
    assert "warning" not in result.stderr
    add_job_for(platform, sshd, "Pre1")
    got = ssh_config_of(str(ssh_config), "rescale-Pre1")  # its very first run
    assert got["user"] == [sshd.user] and got["port"] == [str(sshd.port)]
    assert got["hostname"] == [sshd.host]
    assert got["identityfile"][0] == str(sshd.client_key)
    assert got["hostkeyalias"] == ["rescale-pre1"]
    assert got["userknownhostsfile"] == [str(state_dir(isolated_home) / "known_hosts")]
    assert got["stricthostkeychecking"] == ["accept-new"]
    add_job_for(platform, sshd, "Pre2")
    result = ssh(ssh_config, "rescale-Pre2", "whoami")  # a real first connection
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == sshd.user
    assert ssh_config_of(str(ssh_config), "other.example") == before
    assert not (state_dir(isolated_home) / "hosts.conf").exists()


def test_other_hosts_read_nothing_of_the_hook_between_its_runs(
    installed: Path, platform: FakePlatform, isolated_home: Path
) -> None:
    """Without a config that needs it, nothing the hook wrote is read by other hosts once a
    minute has passed (bench/ item 2): fresh.conf goes, and there is no top Include."""
    from rescale_ssh.hook import blockfile, hookconf

    for job in ("Gone1", "Gone2"):
        platform.add_job(job)
        ssh_config_of(str(installed), f"rescale-{job}")
    state = state_dir(isolated_home)
    conf = hookconf.load(str(state))
    assert (state / "fresh.conf").exists()
    assert not (state / "hosts.conf").exists()
    blockfile.expire(conf, now=time.time() + 1)  # too soon: kept
    assert (state / "fresh.conf").exists()
    blockfile.expire(conf, now=time.time() + blockfile.fresh_for(conf) + 1)
    assert not (state / "fresh.conf").exists()
    # The next connection to a known job writes its block again, from the record.
    assert ssh_config_of(str(installed), "rescale-Gone1")["hostname"] == ["203.0.113.7"]
    assert platform.count("/api/v2/jobs/Gone1/instances/") == 1


def test_the_sweeper_deletes_fresh_conf_once_it_is_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real sweeper (forked here, as the hook forks it), with a one-second window."""
    import fcntl

    from rescale_ssh.hook import blockfile, jobcache
    from rescale_ssh.hook.hookconf import HookConf
    from rescale_ssh.target import Target

    monkeypatch.setattr(blockfile, "FRESH_FOR", 1.0)
    state = tmp_path / "state"
    conf = HookConf(state_dir=str(state), python="", launcher="/opt/rescale-ssh",
                    identity=None, known_hosts=str(state / "known_hosts"), timeout=0.0)
    assert blockfile.fresh_for(conf) == 5.0
    entry = jobcache.Entry(state=jobcache.OK, resolved=time.time(),
                           target=Target("Sw1", "uprod_Sw1", "127.0.0.1", 22, "/enc/x", ()))
    jobcache.save(str(state), "Sw1", entry)
    started = time.monotonic()
    blockfile.publish(conf, "Sw1", entry)  # forks the sweeper
    assert (state / "fresh.conf").exists()
    with open(state / "locks" / "sweeper", "rb") as lock:
        with pytest.raises(BlockingIOError):
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # the sweeper holds it
        while (state / "fresh.conf").exists() and time.monotonic() - started < 20:
            time.sleep(0.1)
        gone = time.monotonic() - started
        assert not (state / "fresh.conf").exists()
        assert 5.0 <= gone < 10.0, gone
        while time.monotonic() - started < 25:  # and then it exits, letting go of its lock
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                time.sleep(0.1)
        else:
            pytest.fail("the sweeper is still running")


def test_within_a_minute_ssh_needs_no_python(
    installed: Path, platform: FakePlatform, isolated_home: Path
) -> None:
    """After a hook run, the exec command's shell test finds the job's marker: no hook run
    (here: a hook.conf the hook would refuse) until the sweeper takes the marker away."""
    from rescale_ssh.hook import blockfile, hookconf

    platform.add_job("Mark1", host="203.0.113.7", workers=1)
    assert ssh_config_of(str(installed), "rescale-Mark1")["hostname"] == ["203.0.113.7"]
    state = state_dir(isolated_home)
    assert sorted(p.name for p in (state / "live").iterdir() if p.name != ".now") == [
        "rescale-Mark1", "rescale-Mark1-1"]
    conf = hookconf.load(str(state))
    good = (state / "hook.conf").read_bytes()
    (state / "hook.conf").write_text("not a hook.conf\n")
    assert ssh_config_of(str(installed), "rescale-Mark1")["hostname"] == ["203.0.113.7"]
    (state / "hook.conf").write_bytes(good)
    blockfile.expire(conf, now=time.time() + blockfile.fresh_for(conf) + 1)
    assert not [p for p in (state / "live").iterdir() if p.name != ".now"]
    assert not (state / "fresh.conf").exists()
    (state / "hook.conf").write_text("not a hook.conf\n")  # now the hook runs, and refuses it
    assert ssh_config_of(str(installed), "rescale-Mark1")["hostname"] != ["203.0.113.7"]
    (state / "hook.conf").write_bytes(good)
    # A marker whose fresh.conf was deleted by hand does not stop the hook.
    assert ssh_config_of(str(installed), "rescale-Mark1")["hostname"] == ["203.0.113.7"]
    assert (state / "live" / "rescale-Mark1").exists()
    (state / "fresh.conf").unlink()
    assert ssh_config_of(str(installed), "rescale-Mark1")["hostname"] == ["203.0.113.7"]


def test_a_marker_left_by_a_dead_sweeper_expires_anyway(
    installed: Path, platform: FakePlatform, isolated_home: Path
) -> None:
    """Issue 14: a killed sweeper (kill -9, reboot, logout) left fresh.conf and the markers
    for good, and a record made two hours old still connected with zero requests: the
    30-minute limit was bypassed until some other job ran the hook. A marker now counts only
    until the time it carries, checked by the script itself."""
    import os

    from rescale_ssh.hook import jobcache

    platform.add_job("Dead1", host="203.0.113.7")
    assert ssh_config_of(str(installed), "rescale-Dead1")["hostname"] == ["203.0.113.7"]
    state = state_dir(isolated_home)
    marker = state / "live" / "rescale-Dead1"
    assert marker.stat().st_mtime > time.time() + 30  # counts for about a minute
    asked = platform.count("/api/v2/jobs/Dead1/instances/")
    assert ssh_config_of(str(installed), "rescale-Dead1")["hostname"] == ["203.0.113.7"]
    assert platform.count("/api/v2/jobs/Dead1/instances/") == asked  # warm: no Python
    # Two hours later, nothing swept: the marker and fresh.conf are still there.
    entry = jobcache.load(str(state), "Dead1")
    assert entry is not None
    entry.resolved -= 7200
    jobcache.save(str(state), "Dead1", entry)
    os.utime(marker, (marker.stat().st_mtime - 7200,) * 2)
    assert (state / "fresh.conf").exists()
    platform.jobs["Dead1"].host = "203.0.113.8"
    platform.jobs["Dead1"].instances = None
    assert ssh_config_of(str(installed), "rescale-Dead1")["hostname"] == ["203.0.113.8"]
    assert platform.count("/api/v2/jobs/Dead1/instances/") == asked + 1


def test_a_marker_file_that_cannot_be_touched_falls_through_to_the_hook(
    installed: Path, platform: FakePlatform, isolated_home: Path
) -> None:
    """`: >file` is a special builtin: a redirect that fails ends the whole script (dash,
    bash as sh, busybox), and ssh said only "Could not resolve hostname" (a full inode quota,
    a read-only home, a .now root made)."""
    platform.add_job("Touch1", host="203.0.113.7")
    assert ssh_config_of(str(installed), "rescale-Touch1")["hostname"] == ["203.0.113.7"]
    now = state_dir(isolated_home) / "live" / ".now"
    now.unlink(missing_ok=True)
    now.mkdir()  # no redirect into it can succeed
    assert ssh_config_of(str(installed), "rescale-Touch1")["hostname"] == ["203.0.113.7"]


def test_the_script_an_earlier_version_wrote_is_replaced_on_the_first_hook_run(
    installed: Path, platform: FakePlatform, isolated_home: Path
) -> None:
    """After an upgrade the old script, which honoured a marker however old, stayed until a
    command wrote the section again."""
    from rescale_ssh.hook import hookconf

    state = state_dir(isolated_home)
    script = state / "hook"
    wanted = script.read_text()
    old = wanted.replace('[ ! -h "$state/live/.now" ] &&', "")
    assert old != wanted
    script.write_text(old)
    platform.add_job("Upg1", host="203.0.113.7")
    assert ssh_config_of(str(installed), "rescale-Upg1")["hostname"] == ["203.0.113.7"]
    assert script.read_text() == wanted == hookconf.load(str(state)).script_text()
    assert script.stat().st_mode & 0o777 == 0o700


def test_a_worker_of_a_job_never_added(installed: Path, platform: FakePlatform,
                                       sshd: SSHServer) -> None:
    head = {"role": "MPI_MASTER", "publicIp": sshd.host, "sshPort": sshd.port,
            "username": sshd.user}
    worker = {"role": "MPI_SLAVE", "privateIp": "127.0.0.1", "sshPort": sshd.port}
    platform.add_job("Wk1", user=sshd.user, instances=[head, worker],
                     workdir=str(sshd.new_workdir("Wk1")))
    result = ssh(installed, "rescale-Wk1-1", "echo", "worker")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "worker"
    assert platform.count("/api/v2/jobs/Wk1/instances/") == 1


def test_unexpanded_alias_from_other_parsers_fails_fast_offline(
    installed: Path, platform: FakePlatform, isolated_home: Path
) -> None:
    # VS Code's parser (npm ssh-config) runs Match exec without expanding %n.
    match = re.search(r'exec "(.*)"$', included_text(isolated_home), re.MULTILINE)
    assert match is not None
    started = time.monotonic()
    proc = subprocess.run(["sh", "-c", match.group(1).replace("%%", "%")], capture_output=True,
                          text=True, timeout=30)
    assert time.monotonic() - started < 5
    assert proc.returncode == 2
    assert "invalid job ID" in proc.stderr
    assert platform.count() == 0


def test_records_of_jobs_unused_for_a_week_are_cleared(
    installed: Path, platform: FakePlatform, isolated_home: Path
) -> None:
    # Every ssh run reads the hook's include files, so they must not pile up (bench/ item 2).
    for job in ("Old1", "Recent1", "New1"):
        platform.add_job(job)
    ssh_config_of(str(installed), "rescale-Old1")
    ssh_config_of(str(installed), "rescale-Recent1")
    state = state_dir(isolated_home)
    old = next(p for p in (state / "jobs").iterdir() if p.name.startswith("Old1-"))
    week_ago = time.time() - 8 * 24 * 3600
    old.write_text(re.sub(r"resolved=[0-9.]+", f"resolved={week_ago:.3f}", old.read_text()))
    ssh_config_of(str(installed), "rescale-New1")  # a cold resolution clears unused records
    names = sorted(p.name.split("-")[0] for p in (state / "jobs").iterdir())
    assert names == ["New1", "Recent1"]
    fresh = (state / "fresh.conf").read_text()
    assert "job=Old1" not in fresh and "job=New1" in fresh


@pytest.mark.parametrize("change", ["env key", "login", "platform", "profile"])
def test_a_remembered_failure_goes_as_soon_as_its_cause_changes(
    change: str, cli: Cli, ssh_config: Path, platform: FakePlatform, sshd: SSHServer,
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 15, finding 5: a failure was replayed for failure_ttl (10 s) even after its cause
    was fixed. It is tied to the platform, the API key and the profile files it was read with:
    the same circumstances replay it (no request), changed ones resolve the job at once."""
    add_job_for(platform, sshd, "Job1")
    apiconfig = isolated_home / ".config" / "rescale" / "apiconfig"
    apiconfig.parent.mkdir(parents=True)
    if change == "env key":
        monkeypatch.setenv("RESCALE_API_KEY", "wrong-key")
    elif change == "login":
        monkeypatch.delenv("RESCALE_API_KEY")
        apiconfig.write_text("[default]\napikey = wrong-key\n")
        apiconfig.chmod(0o600)
    elif change == "platform":
        monkeypatch.setenv("RESCALE_API_URL", f"http://127.0.0.1:{free_port()}")
    else:
        monkeypatch.delenv("RESCALE_API_KEY")
        apiconfig.write_text("[default]\napikey = wrong-key\n"
                             f"[work]\napikey = {platform.api_key}\n")
        apiconfig.chmod(0o600)
    cli("install", "--yes", env={"RESCALE_SSH_IDENTITY": str(sshd.client_key)})
    first = ssh(ssh_config, "rescale-Job1", "true")
    assert first.returncode == 255 and "rescale-ssh" in first.stderr, first.stderr
    asked = platform.count()
    again = ssh(ssh_config, "rescale-Job1", "true")
    assert again.returncode == 255 and platform.count() == asked  # replayed, no request
    if change == "env key":
        monkeypatch.setenv("RESCALE_API_KEY", platform.api_key)
    elif change == "login":  # what `rescale-ssh login` does: the profile file is rewritten
        apiconfig.write_text(f"[default]\napikey = {platform.api_key}\n")
    elif change == "platform":  # the hook's platform is the one `install` wrote down
        monkeypatch.setenv("RESCALE_API_URL", platform.base_url)
        cli("install", "--yes", env={"RESCALE_SSH_IDENTITY": str(sshd.client_key)})
    else:
        monkeypatch.setenv("RESCALE_PROFILE", "work")
    fixed = ssh(ssh_config, "rescale-Job1", "true")
    assert fixed.returncode == 0, fixed.stderr
    assert platform.count() > asked
