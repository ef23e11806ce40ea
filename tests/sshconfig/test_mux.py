"""Shared connections (mux.py): one master per job, tied to the job's life, with the real ssh.

Unix socket paths are short (104 bytes on macOS): pytest's folders are too deep for a socket,
so these tests give the tool a short state folder under /tmp (the other tests' folders are
too long, and their blocks rightly get no Control lines: see test_a_long_state_folder_...).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from rescale_ssh import validate
from rescale_ssh.sshconfig import hostblock, included, mux
from tests.fakeplatform import FakePlatform
from tests.helpers import Cli, Result, require, ssh_config_of
from tests.sshd import SSHDFactory, SSHServer

pytestmark = pytest.mark.e2e

JOB = "Fotxeb"
ALIAS = f"rescale-{JOB}"


def ssh(config: Path, alias: str, *command: str, options: tuple[str, ...] = (),
        timeout: float = 30) -> Result:
    argv = [require("ssh"), "-F", str(config), "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
            *options, alias, *command]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    return Result(argv, proc.returncode, proc.stdout, proc.stderr)


def logins(server: SSHServer) -> int:
    """How many connections the server accepted (each pays the whole handshake)."""
    return server.log().count("Accepted publickey")


def add_from_log(cli: Cli, server: SSHServer, job: str = JOB) -> Result:
    return cli("add", job, "--from-log", server.log_line(job),
               env={"RESCALE_SSH_IDENTITY": str(server.client_key)})


def check(state: Path, alias: str) -> int | None:
    return mux.master_pid(str(state / alias))


def test_static_alias_shares_one_connection(cli: Cli, ssh_config: Path, short_state: Path,
                                            sshd_factory: SSHDFactory) -> None:
    server = sshd_factory()
    add_from_log(cli, server)
    got = ssh_config_of(str(ssh_config), ALIAS)
    assert got["controlmaster"] == ["auto"]
    assert got["controlpath"] == [str(short_state / ALIAS)]
    assert got["controlpersist"] == ["300"]
    assert got["serveraliveinterval"] == [str(hostblock.KEEPALIVE_INTERVAL)]
    before = logins(server)
    for _ in range(3):
        assert ssh(ssh_config, ALIAS, "echo", "hi").stdout == "hi\n"
    assert logins(server) == before + 1  # one handshake, three sessions
    assert check(short_state, ALIAS) is not None
    # The opt-out for one connection: its own handshake, no master touched.
    done = cli("shell", JOB, "--no-multiplex", "--", "echo", "own")
    assert done.stdout == "own\n"
    assert logins(server) == before + 2


def test_hook_alias_shares_and_the_hook_ends_it_when_the_job_ends(
        cli: Cli, ssh_config: Path, short_state: Path, platform: FakePlatform,
        sshd: SSHServer) -> None:
    platform.add_job(JOB, user=sshd.user, host=sshd.host, port=sshd.port,
                     workdir=str(sshd.new_workdir(JOB)))
    cli("install", "--yes", env={"RESCALE_SSH_IDENTITY": str(sshd.client_key)})
    before = logins(sshd)
    assert ssh(ssh_config, ALIAS, "true").returncode == 0
    assert ssh(ssh_config, ALIAS, "true").returncode == 0
    assert logins(sshd) == before + 1
    got = ssh_config_of(str(ssh_config), ALIAS)
    assert got["controlpath"] == [str(short_state / ALIAS)]
    assert check(short_state, ALIAS) is not None
    # The job ends; once its record is stale the hook asks, learns it, and ends the master
    # (which would otherwise keep serving a cluster that is gone).
    platform.set_status(JOB, "Completed", "Stopped")
    conf = short_state / "hook.conf"
    conf.write_text(conf.read_text().replace("ttl=1800", "ttl=0"))
    shutil.rmtree(short_state / "live")  # as `install` does when it changes ttl
    failed = ssh(ssh_config, ALIAS, "true")
    assert failed.returncode == 255, failed
    assert "Completed" in failed.stderr or "stopped" in failed.stderr.lower(), failed
    assert check(short_state, ALIAS) is None
    assert mux.sockets(str(short_state), JOB) == []


def test_prune_ends_the_master_of_a_stopped_cluster_even_a_hung_one(
        cli: Cli, ssh_config: Path, short_state: Path, platform: FakePlatform,
        sshd_factory: SSHDFactory) -> None:
    server = sshd_factory()
    platform.add_job(JOB, user=server.user, host=server.host, port=server.port,
                     workdir=str(server.new_workdir(JOB)))
    cli("add", JOB, env={"RESCALE_SSH_IDENTITY": str(server.client_key)})
    assert ssh(ssh_config, ALIAS, "true").returncode == 0
    pid = check(short_state, ALIAS)
    assert pid is not None
    # The cluster vanishes without a word: its sshd stops answering (not even a RST).
    stopped = _freeze_sessions(server)
    try:
        platform.set_status(JOB, "Completed", "Stopped")
        started = time.monotonic()
        done = cli("prune", "--yes")
        assert time.monotonic() - started < 15
        assert "Closed the shared connection to rescale-Fotxeb" in done.stdout, done
        assert check(short_state, ALIAS) is None
        assert not _alive(pid)
    finally:
        for child in stopped:
            _signal(child, signal.SIGCONT)


def _session_pids(server: SSHServer) -> list[int]:
    """The sshd processes serving connections (children of the listening one)."""
    found = subprocess.run(["pgrep", "-P", str(server.process.pid)], capture_output=True,
                           text=True, check=False).stdout.split()
    return [int(pid) for pid in found]


def _freeze_sessions(server: SSHServer) -> list[int]:
    children = _session_pids(server)
    assert children, "no sshd session to freeze"
    for child in children:
        _signal(child, signal.SIGSTOP)
    return children


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _alive(pid: int) -> bool:
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.1)
    return True


def test_remove_lets_sessions_finish_but_takes_no_new_ones(
        cli: Cli, ssh_config: Path, short_state: Path, sshd_factory: SSHDFactory) -> None:
    server = sshd_factory()
    add_from_log(cli, server)
    assert ssh(ssh_config, ALIAS, "true").returncode == 0
    running = subprocess.Popen(
        [require("ssh"), "-F", str(ssh_config), "-o", "BatchMode=yes", ALIAS, "sleep 2; echo done"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    time.sleep(0.5)
    cli("remove", JOB, "--yes")
    assert mux.sockets(str(short_state), JOB) == []
    out, err = running.communicate(timeout=20)
    assert out == "done\n", err  # the session in use finished


def test_user_control_settings_for_other_hosts_stay(cli: Cli, ssh_config: Path,
                                                    short_state: Path,
                                                    sshd_factory: SSHDFactory) -> None:
    ssh_config.parent.mkdir(mode=0o700, exist_ok=True)
    ssh_config.write_text("Host git-box\n    HostName 192.0.2.9\n    ControlMaster no\n"
                          "Host *\n    ControlMaster auto\n    ControlPath ~/.ssh/cm-%r@%h:%p\n"
                          "    ControlPersist 1h\n")
    before = {host: ssh_config_of(str(ssh_config), host) for host in ("git-box", "elsewhere")}
    server = sshd_factory()
    add_from_log(cli, server)
    cli("install", "--yes")
    after = {host: ssh_config_of(str(ssh_config), host) for host in ("git-box", "elsewhere")}
    assert after == before
    # Ours, before their Host *: the job's own socket, not theirs keyed on address and user.
    assert ssh_config_of(str(ssh_config), ALIAS)["controlpath"] == [str(short_state / ALIAS)]


def test_the_setting_turns_it_off_and_on(cli: Cli, ssh_config: Path, short_state: Path,
                                         sshd_factory: SSHDFactory) -> None:
    server = sshd_factory()
    add_from_log(cli, server)
    cli("install", "--yes")
    cli("config", "set", "multiplex", "no")
    got = ssh_config_of(str(ssh_config), ALIAS)
    assert got["controlmaster"] == ["false"] and "controlpath" not in got
    assert "multiplex=no" in (short_state / "hook.conf").read_text()
    before = logins(server)
    ssh(ssh_config, ALIAS, "true")
    ssh(ssh_config, ALIAS, "true")
    assert logins(server) == before + 2
    cli("config", "set", "multiplex", "30m")
    assert ssh_config_of(str(ssh_config), ALIAS)["controlpersist"] == ["1800"]
    assert "multiplex=30m" in (short_state / "hook.conf").read_text()
    shown = cli("config", "show").stdout
    assert "multiplex" in shown and "30m" in shown
    refused = cli("config", "set", "multiplex", "forever", expect=None)
    assert refused.returncode == 2 and "5m" in refused.stderr, refused
    cli("config", "unset", "multiplex")
    assert ssh_config_of(str(ssh_config), ALIAS)["controlpersist"] == ["300"]
    assert "multiplex" not in (short_state / "hook.conf").read_text()  # as earlier versions


def test_a_long_state_folder_gets_no_control_lines_and_ssh_still_works(
        cli: Cli, ssh_config: Path, sshd_factory: SSHDFactory, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    deep = tmp_path / ("d" * 60)
    monkeypatch.setenv("XDG_STATE_HOME", str(deep))
    state = deep / "rescale-ssh"
    assert not mux.fits(str(state), ALIAS)
    server = sshd_factory()
    add_from_log(cli, server)
    got = ssh_config_of(str(ssh_config), ALIAS)
    assert got["controlmaster"] == ["false"]
    assert ssh(ssh_config, ALIAS, "true").returncode == 0
    # What the check prevents: ssh gives up (exit 255) when the path is too long.
    too_long = ssh(ssh_config, ALIAS, "true", options=(
        "-o", "ControlMaster=auto", "-o", f"ControlPath={state}/%n",
        "-o", "ControlPersist=5"))
    assert too_long.returncode == 255 and "too long" in too_long.stderr, too_long
    report = cli("doctor", expect=None).stdout
    assert "not shared, the socket path" in report


def test_a_socket_another_user_left_never_stops_ssh(cli: Cli, ssh_config: Path,
                                                    short_state: Path,
                                                    sshd_factory: SSHDFactory) -> None:
    """root ran ssh with the user's config (sudo -E …) and its master died: a socket of
    another user's, no master behind it. ssh replaces it and goes on."""
    server = sshd_factory()
    add_from_log(cli, server)
    path = short_state / ALIAS
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.close()
    os.chmod(path, 0o600)
    if os.geteuid() == 0:
        os.chown(path, 65534, 65534)
    done = ssh(ssh_config, ALIAS, "echo", "fine")
    assert done.stdout == "fine\n", done
    assert check(short_state, ALIAS) is not None


def test_doctor_lists_masters_and_cleans_stale_sockets(cli: Cli, ssh_config: Path,
                                                       short_state: Path,
                                                       sshd_factory: SSHDFactory) -> None:
    server = sshd_factory()
    add_from_log(cli, server)
    add_from_log(cli, server, job="Gone1")
    assert ssh(ssh_config, ALIAS, "true").returncode == 0
    stale = short_state / "rescale-Old9"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(stale))
    listener.close()  # a socket no master listens on (a master that was killed)
    assert ssh(ssh_config, "rescale-Gone1", "true").returncode == 0
    # Gone1's block goes by hand: its master is now nobody's.
    text = ssh_config.read_text()
    start = text.index("Host rescale-Gone1")
    end = text.index("\n\n", start)
    ssh_config.write_text(text[:start] + text[end + 2:])
    report = cli("doctor", expect=None).stdout
    pid = check(short_state, ALIAS)
    assert f"{ALIAS} (pid {pid})" in report, report
    assert "rescale-Old9" in report and "ssh replaces them" in report
    assert "rescale-Gone1" in report and "no block any more" in report
    cleaned = cli("doctor", "--clean", expect=None).stdout
    assert "removed 1 stale socket(s) (rescale-Old9)" in cleaned, cleaned
    assert "ended the master of rescale-Gone1" in cleaned
    assert not stale.exists()
    assert check(short_state, "rescale-Gone1") is None
    assert check(short_state, ALIAS) == pid  # the job's own master stays


def test_no_control_lines_on_windows() -> None:
    state = "/tmp/s"
    real = mux.sys.platform
    try:
        mux.sys.platform = "win32"
        text = included.render(state, hook=False, static=[ALIAS], persist="5m")
    finally:
        mux.sys.platform = real
    assert "Control" not in text
    assert "ControlPersist 5m" in included.render(state, hook=False, static=[ALIAS],
                                                  persist="5m")


def test_persist_values() -> None:
    assert validate.seconds("1h30m") == 5400
    assert validate.persist_value("300") == "300"
    assert validate.persist_value("no") == mux.OFF
    for bad in ("yes", "0", "", "5 m", "1y", "-5", "99999999", "8d", "5m;Host"):
        with pytest.raises(ValueError):
            validate.persist_value(bad)


def test_a_dead_master_does_not_leave_ssh_hanging_long(
        cli: Cli, ssh_config: Path, short_state: Path, sshd_factory: SSHDFactory) -> None:
    """The peer of a master goes silent (a cluster that vanished, before any prune): a new
    ssh meets the master, which gives up on its peer after ServerAlive, and the new ssh then
    connects on its own. Measured with a short keepalive given on the command line."""
    server = sshd_factory()
    add_from_log(cli, server)
    fast = ("-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=2")
    assert ssh(ssh_config, ALIAS, "true", options=fast).returncode == 0
    stopped = _freeze_sessions(server)
    try:
        started = time.monotonic()
        done = ssh(ssh_config, ALIAS, "echo", "again", options=fast, timeout=30)
        took = time.monotonic() - started
    finally:
        for child in stopped:
            _signal(child, signal.SIGKILL)
    assert done.stdout == "again\n", done
    assert took < 10


@pytest.mark.parametrize(("version", "shared"), [("7.6p1", False), ("7.7p1", False),
                                                 ("7.8p1", True), ("9.2p1", True)])
def test_sharing_only_where_the_master_lets_go_of_stderr(
        cli: Cli, ssh_config: Path, short_state: Path, sshd_factory: SSHDFactory,
        tmp_path: Path, version: str, shared: bool) -> None:
    """Before OpenSSH 7.8 a ControlPersist master kept the stderr of the ssh that started it:
    `out=$(ssh rescale-X cmd 2>&1)` waited for the master to end (minutes). Such an ssh gets
    no Control lines, from `add` nor from the hook's settings."""
    from tests.sshconfig.test_config_lifecycle import fake_ssh

    env = fake_ssh(tmp_path / "bin", version)
    server = sshd_factory()
    cli("add", JOB, "--from-log", server.log_line(JOB),
        env={"RESCALE_SSH_IDENTITY": str(server.client_key), **env})
    cli("install", "--yes", env=env)
    got = ssh_config_of(str(ssh_config), ALIAS)
    assert (got.get("controlpath") == [str(short_state / ALIAS)]) is shared
    assert ("multiplex=no" in (short_state / "hook.conf").read_text()) is not shared
    report = cli("doctor", env=env, expect=None).stdout
    assert ("older than OpenSSH 7.8" in report) is not shared


def test_a_command_capturing_ssh_output_is_not_held_by_the_master(
        cli: Cli, ssh_config: Path, short_state: Path, sshd_factory: SSHDFactory) -> None:
    """The first ssh becomes the master and stays after it returns: whoever reads its stdout
    and stderr to the end (a shell's $(...), a Python subprocess) must not wait for it."""
    server = sshd_factory()
    add_from_log(cli, server)
    started = time.monotonic()
    done = subprocess.run(
        ["sh", "-c", f"{require('ssh')} -F '{ssh_config}' -o BatchMode=yes {ALIAS} echo out 2>&1"
         " | cat"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.stdout.strip().splitlines()[-1] == "out"
    assert time.monotonic() - started < 10
    assert check(short_state, ALIAS) is not None  # and the master is there for the next one


def test_a_job_whose_cluster_moved_gets_no_connection_to_the_old_one(
        cli: Cli, ssh_config: Path, short_state: Path, platform: FakePlatform,
        sshd: SSHServer, sshd2: SSHServer) -> None:
    """The master is keyed on the alias: when the hook finds the job at a new address, it ends
    the master first, or ssh would go on through it to the old cluster."""
    platform.add_job(JOB, user=sshd.user, host=sshd.host, port=sshd.port,
                     workdir=str(sshd.new_workdir(JOB)))
    cli("install", "--yes", env={"RESCALE_SSH_IDENTITY": str(sshd.client_key)})
    assert ssh(ssh_config, ALIAS, "true").returncode == 0
    old = check(short_state, ALIAS)
    assert old is not None
    platform.jobs[JOB].host, platform.jobs[JOB].port = sshd2.host, sshd2.port
    conf = short_state / "hook.conf"
    conf.write_text(conf.read_text().replace("ttl=1800", "ttl=0"))
    shutil.rmtree(short_state / "live")
    before = logins(sshd2)
    assert ssh(ssh_config, ALIAS, "true").returncode == 0
    assert logins(sshd2) == before + 1  # the new cluster, not the old master
    assert not _alive(old)


def test_two_jobs_at_one_address_never_share_a_master(
        cli: Cli, ssh_config: Path, short_state: Path, sshd_factory: SSHDFactory) -> None:
    """A new cluster reusing an old one's address (same IP, port and user here): each alias
    has its own socket, so the second job never runs on the first one's connection."""
    server = sshd_factory()
    add_from_log(cli, server, job="Oldjob1")
    add_from_log(cli, server, job="Newjob2")
    before = logins(server)
    assert ssh(ssh_config, "rescale-Oldjob1", "true").returncode == 0
    assert ssh(ssh_config, "rescale-Newjob2", "true").returncode == 0
    assert logins(server) == before + 2
    assert check(short_state, "rescale-Oldjob1") != check(short_state, "rescale-Newjob2")
