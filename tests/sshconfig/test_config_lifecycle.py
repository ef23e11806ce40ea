"""Issue 12's reproductions: what rescale-ssh leaves in the user's config, the way users live.

Each test is a report from real use, run with the real ssh (`ssh -G -F`, the authority on what a
config means) and, where a connection matters, the real sshd: a hand edit between our commands,
a config an earlier version wrote, the user's own `rescale-*` host, an OpenSSH too old for what
we write.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from rescale_ssh.sshconfig import section
from tests.fakeplatform import FakePlatform
from tests.helpers import Cli, require, ssh_config_of
from tests.sshd import SSHServer

LINE = ("Instance ready for ssh access. Command: ssh -i </path/to/key> uprod_Fotxeb@203.0.113.7;"
        " working directory: /enc/uprod_Fotxeb/work")


QUIET_STDIN = "Pseudo-terminal will not be allocated because stdin is not a terminal."


def state_of(home: Path) -> Path:
    return home / ".local" / "state" / "rescale-ssh"


def effective(config: Path, host: str) -> subprocess.CompletedProcess[str]:
    """`ssh -G` as it is (exit status, output and messages), for before/after comparisons."""
    return subprocess.run([require("ssh"), "-G", "-F", str(config), host], capture_output=True,
                          text=True, timeout=30, stdin=subprocess.DEVNULL)


def user_part(data: bytes) -> bytes:
    located = section.locate(data, path="config")
    assert located.hook is None
    return data[located.top.stop:] if located.top is not None else data


# -- 1. uninstall must never join a user's line to the next one --------------------------------


def old_hook_region(state: Path) -> bytes:
    """The end-of-file region rescale-ssh wrote before this version, for a config that had no
    final newline: it brought that newline itself (the '(with the newline above)' marker)."""
    return (
        b"\n# >>> rescale-ssh hook (with the newline above): `rescale-ssh uninstall` removes it"
        b" >>>\n"
        b"# rescale-ssh hook state=" + str(state).encode() + b"\n"
        b"Match originalhost \"rescale-*,!*'*\" exec \"'" + str(state).encode() + b"/hook' '%n'\"\n"
        b"    Include " + str(state).encode() + b"/fresh.conf\n"
        b"# <<< rescale-ssh hook <<<\n"
    )


def test_uninstall_keeps_the_newline_a_line_appended_after_install_needs(
    cli: Cli, ssh_config: Path, isolated_home: Path
) -> None:
    """A config without a final newline, `install` (by an earlier version: its region at the end
    brought the newline), the user appends `Host work` with `cat >>`, then `uninstall`: the file
    read `User aliceHost work`, and ssh refused to run for every host."""
    ssh_config.parent.mkdir(mode=0o700)
    theirs = b"Host *\n  User alice"
    appended = b"Host work\n  HostName w.example\n"
    ssh_config.write_bytes(theirs + old_hook_region(state_of(isolated_home)))
    with ssh_config.open("ab") as handle:  # cat >> ~/.ssh/config
        handle.write(appended)
    cli("uninstall", "--yes")
    assert ssh_config.read_bytes() == theirs + b"\n" + appended
    assert effective(ssh_config, "work").returncode == 0
    assert ssh_config_of(str(ssh_config), "work")["hostname"] == ["w.example"]
    assert ssh_config_of(str(ssh_config), "github.com")["user"] == ["alice"]
    # Nothing appended: the newline the region brought goes with it, byte for byte.
    ssh_config.write_bytes(theirs + old_hook_region(state_of(isolated_home)))
    cli("uninstall", "--yes")
    assert ssh_config.read_bytes() == theirs


def test_the_end_of_the_users_file_is_never_touched(cli: Cli, ssh_config: Path) -> None:
    """This version writes nothing after the user's last byte: a file without a final newline
    keeps it that way through install, add, remove and uninstall."""
    ssh_config.parent.mkdir(mode=0o700)
    theirs = b"Host mine\r\n\tHostName=192.0.2.10\r\n\tUser me"
    ssh_config.write_bytes(theirs)
    cli("install", "--yes")
    cli("add", "Fotxeb", "--from-log", LINE)
    data = ssh_config.read_bytes()
    assert data.endswith(theirs) and user_part(data) == theirs
    cli("remove", "--yes", "Fotxeb")
    cli("uninstall", "--yes")
    assert ssh_config.read_bytes() == theirs


def test_text_glued_to_an_end_marker_stays_the_users(cli: Cli, ssh_config: Path) -> None:
    """The user removed our final newline, then appended with `cat >>`: their text is glued to
    our end marker line. It is theirs: kept, never dropped with our line."""
    ssh_config.parent.mkdir(mode=0o700)
    cli("add", "Fotxeb", "--from-log", LINE)
    ours = ssh_config.read_bytes()
    assert ours.endswith(b"<<<\n")
    ssh_config.write_bytes(ours[:-1] + b"Host work\n  HostName w.example\n")
    cli("remove", "--yes", "Fotxeb")
    assert ssh_config.read_bytes() == b"Host work\n  HostName w.example\n"


# -- 2. what the user appends after install keeps its own scope --------------------------------


def test_lines_appended_after_install_apply_where_they_would_without_the_tool(
    cli: Cli, ssh_config: Path, platform: FakePlatform, tmp_path: Path
) -> None:
    """After `install`, an appended `Include extra.conf` or `ForwardAgent yes` applied only to
    rescale-* hosts: the hook region left the scope open."""
    extra = tmp_path / "extra.conf"
    extra.write_text("Host extra\n    HostName extra.example\n")
    theirs = b"Host mine\n    HostName 192.0.2.10\nHost *\n    User alice\n"
    appended = f"ForwardAgent yes\nInclude {extra}\nCompression yes\n".encode()
    ssh_config.parent.mkdir(mode=0o700)
    ssh_config.write_bytes(theirs)
    cli("add", "Fotxeb", "--from-log", LINE)
    cli("install", "--yes")
    with ssh_config.open("ab") as handle:
        handle.write(appended)
    baseline = tmp_path / "without-the-tool"
    baseline.write_bytes(theirs + appended)
    for host in ("github.com", "mine", "extra", "rescale"):
        assert effective(ssh_config, host).stdout == effective(baseline, host).stdout, host
    assert ssh_config_of(str(ssh_config), "github.com")["forwardagent"] == ["yes"]
    assert ssh_config_of(str(ssh_config), "extra")["hostname"] == ["extra.example"]
    # And they reach the jobs too, as `Host *` lines would: the job's own values come first.
    job = ssh_config_of(str(ssh_config), "rescale-Fotxeb")
    assert job["forwardagent"] == ["yes"] and job["hostname"] == ["203.0.113.7"]
    assert platform.count() == 0


# -- 4. the user's own rescale-* hosts are never ours ------------------------------------------


@pytest.mark.e2e
def test_the_users_own_rescale_host_is_left_alone(
    cli: Cli, ssh_config: Path, platform: FakePlatform, sshd: SSHServer, isolated_home: Path
) -> None:
    """The user's own `Host rescale-build` stopped working after `install`: the hook's failure
    block won, and `build` was sent to the Rescale platform."""
    ssh_config.parent.mkdir(mode=0o700)
    own = (f"Host rescale-build\n    HostName {sshd.host}\n    Port {sshd.port}\n"
           f"    User {sshd.user}\n    IdentityFile {sshd.client_key}\n"
           "    IdentitiesOnly yes\n    StrictHostKeyChecking no\n"
           "    UserKnownHostsFile /dev/null\n    LogLevel ERROR\n")
    ssh_config.write_text(own)
    before = effective(ssh_config, "rescale-build")
    installed = cli("install", "--yes")
    assert f"Left alone your own host rescale-build ({ssh_config} line " in installed.stdout
    assert "!rescale-build" in (state_of(isolated_home) / "ssh.conf").read_text()
    assert effective(ssh_config, "rescale-build").stdout == before.stdout
    result = subprocess.run([require("ssh"), "-F", str(ssh_config), "-o", "BatchMode=yes",
                             "rescale-build", "whoami"], capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == sshd.user
    # One the user adds after install: the hook finds it on its first run, asks the platform
    # nothing, and leaves it alone from then on.
    with ssh_config.open("a") as handle:
        handle.write("Match originalhost rescale-ci\n    HostName ci.example\n    User ci\n")
    assert ssh_config_of(str(ssh_config), "rescale-ci")["hostname"] == ["ci.example"]
    assert "!rescale-ci" in (state_of(isolated_home) / "ssh.conf").read_text()
    assert ssh_config_of(str(ssh_config), "rescale-ci")["user"] == ["ci"]
    assert platform.count() == 0
    assert not (state_of(isolated_home) / "jobs").exists()


# -- 5. OpenSSH versions -----------------------------------------------------------------------


def fake_ssh(folder: Path, version: str) -> dict[str, str]:
    """An `ssh` that reports `version` for `ssh -V` and runs the real one otherwise."""
    folder.mkdir(exist_ok=True)
    program = folder / "ssh"
    program.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = -V ] && {{ echo "OpenSSH_{version}, OpenSSL 1.0.2k-fips" >&2; exit 0; }}\n'
        f'exec {require("ssh")} "$@"\n')
    program.chmod(0o755)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.parametrize(("version", "refused"), [
    ("7.4p1", True), ("7.5p1", True), ("7.6p1", False), ("9.2p1", False)])
def test_an_openssh_too_old_for_accept_new_gets_nothing_written(
    cli: Cli, ssh_config: Path, platform: FakePlatform, tmp_path: Path, isolated_home: Path,
    version: str, refused: bool,
) -> None:
    """On OpenSSH 7.4 (RHEL/CentOS 7) the written `StrictHostKeyChecking accept-new` made every
    ssh command fail ("unsupported option"), after `add` for good. Below 7.6, add, sync and
    install refuse before writing anything; from 7.6 on they work."""
    env = fake_ssh(tmp_path / "bin", version)
    ssh_config.parent.mkdir(mode=0o700)
    ssh_config.write_bytes(b"Host mine\n    HostName 192.0.2.10\n")
    platform.add_job("Run1", host="203.0.113.8")
    results = [cli("add", "Fotxeb", "--from-log", LINE, env=env, expect=None),
               cli("install", "--yes", env=env, expect=None),
               cli("sync", "--yes", env=env, expect=None)]
    if refused:
        for result in results:
            assert result.returncode == 3, result
            assert result.stderr.startswith("rescale-ssh: error: cannot "), result
            assert f"is OpenSSH {version.split('p')[0]}, and rescale-ssh needs OpenSSH 7.6" \
                in result.stderr
        assert ssh_config.read_bytes() == b"Host mine\n    HostName 192.0.2.10\n"
        assert not state_of(isolated_home).exists()
    else:
        assert [r.returncode for r in results] == [0, 0, 0], results
        # (sync dropped Fotxeb, which the platform does not list: added from a log line.)
        assert "Run1" in section.read(ssh_config.read_bytes(), path="c").entries
    # Removing is never refused: it is how a user on an old machine gets rid of the section.
    assert cli("remove", "--yes", "Fotxeb", env=env, expect=None).returncode == 0
    assert cli("uninstall", "--yes", env=env, expect=None).returncode == 0


def test_the_users_file_holds_nothing_an_older_openssh_refuses(
    cli: Cli, ssh_config: Path, tmp_path: Path, isolated_home: Path
) -> None:
    """A config shared through dotfiles reaches an older machine without the tool's state
    folder: the user's file itself carries no `accept-new` (it is in the tool's own included
    file, which is missing there and ignored)."""
    ssh_config.parent.mkdir(mode=0o700)
    cli("add", "Fotxeb", "--from-log", LINE)
    cli("install", "--yes")
    data = ssh_config.read_bytes()
    assert b"accept-new" not in data and b"Match" not in data
    assert b"accept-new" in (state_of(isolated_home) / "ssh.conf").read_bytes()
    # The other machine: the same file, no state folder. ssh reads it without a word.
    elsewhere = tmp_path / "dotfiles-copy"
    elsewhere.write_bytes(data.replace(str(isolated_home).encode(), b"/home/nobody-here"))
    result = effective(elsewhere, "rescale-Fotxeb")
    assert result.returncode == 0
    assert result.stderr.strip() in ("", QUIET_STDIN), result.stderr
    assert "stricthostkeychecking ask" in result.stdout.splitlines()


# -- found in review: each failed before its fix -----------------------------------------------


def test_a_line_of_yours_with_our_keywords_inside_the_section_is_never_dropped(
    cli: Cli, ssh_config: Path
) -> None:
    """`User alice` between our `Host *` and `Include` (global for every host below), or
    `ProxyJump bastion` inside a job's block: options our blocks use, where we never put them.
    They were counted as ours and silently dropped by the next write."""
    ssh_config.parent.mkdir(mode=0o700)
    cli("add", "Fotxeb", "--from-log", LINE)
    ours = ssh_config.read_bytes()
    for edit in (ours.replace(b"Host *\n", b"Host *\nUser alice\n"),
                 ours.replace(b"    ServerAliveInterval 15\n",
                              b"    ServerAliveInterval 15\n    ProxyJump bastion\n"),
                 ours.replace(b"    Port 22\n", b"    Port 22\n    Port 2222\n")):
        ssh_config.write_bytes(edit)
        result = cli("add", "Other1", "--from-log", LINE.replace("Fotxeb", "Other1"),
                     expect=3)
        assert "is inside the rescale-ssh section" in result.stderr
        assert ssh_config.read_bytes() == edit


@pytest.mark.e2e
def test_a_host_of_yours_the_hook_once_failed_for_is_left_alone(
    cli: Cli, ssh_config: Path, platform: FakePlatform, isolated_home: Path
) -> None:
    """`ssh rescale-build` before the user defined that host (a typo, an order of steps)
    left a failure record; their `Host rescale-build` added then lost to its failure block."""
    ssh_config.parent.mkdir(mode=0o700)
    ssh_config.write_bytes(b"Host mine\n    HostName 192.0.2.10\n")
    cli("install", "--yes")
    assert ssh_config_of(str(ssh_config), "rescale-build")["hostname"] != ["build.example"]
    with ssh_config.open("ab") as handle:
        handle.write(b"Host rescale-build\n    HostName build.example\n")
    got = ssh_config_of(str(ssh_config), "rescale-build")
    assert got["hostname"] == ["build.example"] and "proxycommand" not in got
    assert "!rescale-build" in (state_of(isolated_home) / "ssh.conf").read_text()
    # A name that is no job ID at all, added after install: silent, no Python error.
    with ssh_config.open("ab") as handle:
        handle.write(b"Host rescale-my_box\n    HostName box.example\n")
    result = effective(ssh_config, "rescale-my_box")
    assert result.returncode == 0 and "rescale-ssh" not in result.stderr, result.stderr
    assert "hostname box.example" in result.stdout.splitlines()


@pytest.mark.e2e
def test_adds_racing_each_other_leave_every_job_its_host_key_policy(
    ssh_config: Path, isolated_home: Path
) -> None:
    """Six `add`s at once: the included file was written from what each saw before the lock,
    so it named only some jobs, and the others asked to confirm their host key."""
    import sys

    ssh_config.parent.mkdir(mode=0o700)
    jobs = [f"Race{i}" for i in range(6)]
    procs = [subprocess.Popen([sys.executable, "-m", "rescale_ssh", "add", job, "--from-log",
                               f"Command: ssh u_{job}@192.0.2.{i + 1}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL) for i, job in enumerate(jobs)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
    for job in jobs:
        got = ssh_config_of(str(ssh_config), f"rescale-{job}")
        assert got["stricthostkeychecking"] == ["accept-new"], job


def test_remove_on_an_old_openssh_creates_nothing_it_refuses(
    cli: Cli, ssh_config: Path, tmp_path: Path, isolated_home: Path
) -> None:
    """On a machine with OpenSSH 7.5 and no state folder (dotfiles copied there), `remove`
    created ssh.conf with accept-new, after which every ssh there failed."""
    ssh_config.parent.mkdir(mode=0o700)
    cli("add", "Fotxeb", "--from-log", LINE)
    cli("add", "Other1", "--from-log", LINE.replace("Fotxeb", "Other1"))
    shutil.rmtree(state_of(isolated_home))
    cli("remove", "--yes", "Other1", env=fake_ssh(tmp_path / "bin", "7.5p1"))
    assert not (state_of(isolated_home) / "ssh.conf").exists()
    assert b"Host rescale-Fotxeb" in ssh_config.read_bytes()


def test_remove_is_not_stopped_by_an_odd_setting_of_its_own(
    cli: Cli, ssh_config: Path
) -> None:
    ssh_config.parent.mkdir(mode=0o700)
    cli("add", "Fotxeb", "--from-log", LINE)
    cli("install", "--yes")
    cli("remove", "--yes", "Fotxeb", env={"RESCALE_API_URL": "not a platform"})
    assert b"Host rescale-Fotxeb" not in ssh_config.read_bytes()


def test_a_windows_state_folder_reads_back_as_ours() -> None:
    """The meta line keeps a Windows path's backslashes, the Include writes them as `/`: the
    second write took our own Include for a line of the user's."""
    from rescale_ssh.sshconfig.hostblock import HostEntry
    from rescale_ssh.target import Target

    folder = "C:\\Users\\me\\AppData\\Local\\rescale-ssh"
    entry = HostEntry(target=Target("Fotxeb", "uprod_Fotxeb", "203.0.113.7", 22, "/enc/w"),
                      identity=None, known_hosts=f"{folder}\\known_hosts")
    first = section.splice(b"Host mine\n", section.Section(entries={"Fotxeb": entry},
                                                           state_dir=folder), path="c")
    assert b"Include C:/Users/me/AppData/Local/rescale-ssh/ssh.conf" in first
    again = section.read(first, path="c")
    assert again.state_dir == folder and not again.legacy
    assert section.splice(first, section.Section(state_dir=folder), path="c") == b"Host mine\n"


def test_a_comment_glued_to_our_end_marker_stays(cli: Cli, ssh_config: Path) -> None:
    ssh_config.parent.mkdir(mode=0o700)
    cli("add", "Fotxeb", "--from-log", LINE)
    ssh_config.write_bytes(ssh_config.read_bytes()[:-1] + b"# mine\n")
    cli("remove", "--yes", "Fotxeb")
    assert ssh_config.read_bytes() == b"# mine\n"


def test_probing_for_a_writer_survives_one_opening_the_file(tmp_path: Path) -> None:
    """While the read lease of the probe is held, a process opening the file for writing
    sends SIGIO, whose default action killed the CLI ("I/O possible")."""
    import multiprocessing
    import time as clock

    from rescale_ssh import configfile

    target = tmp_path / "config"
    target.write_text("Host mine\n")

    def opener() -> None:
        end = clock.monotonic() + 1.5
        while clock.monotonic() < end:
            os.close(os.open(target, os.O_WRONLY))

    child = multiprocessing.get_context("fork").Process(target=opener)
    child.start()
    probes = 0
    started = clock.monotonic()
    while clock.monotonic() - started < 1.5:
        configfile.being_written(target)
        probes += 1
    child.join(10)
    assert child.exitcode == 0 and probes > 100
