"""Files and permissions (issue 7): private files, insecure and read-only configs, full disks.

The tool's own files are 0600 in 0700 folders (checked with the umask wide open); a config others
may change is refused before anything is written, as ssh refuses it; a read-only config (a
dotfile manager's) is left alone and the user gets the exact lines to add; a write that fails
half-way (a file size limit, a full file system) leaves the original as it was.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rescale_ssh import configfile, ownership
from rescale_ssh.errors import ConfigError
from rescale_ssh.sshconfig import section
from tests.fakeplatform import FakePlatform
from tests.helpers import Cli, Result, require, ssh_config_of
from tests.sshd import SSHServer, free_port

USER_CONFIG = b"# mine\nHost mine\n    HostName 192.0.2.10\n"
Figures = Callable[[str, int], None]


def run(*args: str, preexec: Callable[[], None] | None = None,
        env: dict[str, str] | None = None, stdin: str = "") -> Result:
    """The installed program, with a hook into the child (umask, rlimit) before it starts."""
    proc = subprocess.run([sys.executable, "-m", "rescale_ssh", *args], input=stdin,
                          capture_output=True, text=True, timeout=60, preexec_fn=preexec,
                          env={**os.environ, **(env or {})})
    return Result(["rescale-ssh", *args], proc.returncode, proc.stdout, proc.stderr)


def one_error(result: Result, code: int, starts: str) -> None:
    lines = result.stderr.splitlines()
    assert result.returncode == code, result
    assert "Traceback" not in result.stderr, result
    assert lines[0].startswith(f"rescale-ssh: error: {starts}"), result
    assert len(lines) == 2 and lines[1].startswith("hint: "), result


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# -- the tool's own files -----------------------------------------------------------------------


@pytest.mark.e2e
def test_tool_owned_files_are_private(ssh_config: Path, isolated_home: Path,
                                      platform: FakePlatform, sshd: SSHServer,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file the tool makes, under the widest umask: cache records, included blocks,
    hook.conf, known_hosts (also after ssh added a key), locks, the stored API key, the key
    pair, the config; and every folder it makes, parents included."""
    def wide_open() -> None:
        os.umask(0)

    key = platform.api_key
    monkeypatch.delenv("RESCALE_API_KEY")
    assert run("login", preexec=wide_open, stdin=f"{key}\n").returncode == 0
    assert run("key", "generate", "--no-passphrase", preexec=wide_open).returncode == 0
    env = {"RESCALE_SSH_IDENTITY": str(sshd.client_key), "RESCALE_API_KEY": key}
    assert run("add", "Static1", "--from-log", sshd.log_line("Static1"), preexec=wide_open,
               env=env).returncode == 0
    assert run("install", "--yes", preexec=wide_open, env=env).returncode == 0
    platform.add_job("Hooked1", user=sshd.user, host=sshd.host, port=sshd.port)
    platform.add_job("Queued1", status="Queued", cluster_status="Not Started")
    for alias in ("rescale-Static1", "rescale-Hooked1", "rescale-Queued1"):
        proc = subprocess.run([require("ssh"), "-F", str(ssh_config), "-o", "BatchMode=yes",
                               alias, "true"], capture_output=True, text=True, timeout=60,
                              preexec_fn=wide_open, stdin=subprocess.DEVNULL)
        assert proc.returncode == (255 if alias == "rescale-Queued1" else 0), proc.stderr
    state = isolated_home / ".local" / "state" / "rescale-ssh"
    expected_files = {
        ssh_config, isolated_home / ".ssh" / "rescale_ed25519",
        isolated_home / ".config" / "rescale" / "apiconfig", state / "hook.conf",
        state / "known_hosts",
    }
    seen: set[Path] = set()
    for path in sorted(isolated_home.rglob("*")):
        info = path.lstat()
        assert info.st_uid == os.getuid(), path
        mode = stat.S_IMODE(info.st_mode)
        if path.is_symlink():  # install's links to the completion scripts and man page
            assert isolated_home / ".local" / "share" in path.parents, path
            assert not str(path.resolve()).startswith(str(isolated_home)), path
        elif path.is_dir():
            assert mode == 0o700, f"{path} is {mode:04o}"
        elif path.name.endswith(".pub"):
            assert mode == 0o644, f"{path} is {mode:04o}"  # a public key, as ssh-keygen makes it
        elif path == state / "hook":
            assert mode == 0o700, f"{path} is {mode:04o}"  # the script the Match line runs
        elif path in (state / "ssh.conf", state / "fresh.conf", state / "hosts.conf",
                      state / "broken.conf"):
            # Included by every ssh run: readable even when root (sudo) wrote it (the folder
            # is 0700: nobody else gets in); no secrets.
            assert mode == 0o644, f"{path} is {mode:04o}"
            assert "apikey" not in path.read_text().lower()
        else:
            assert mode == 0o600, f"{path} is {mode:04o}"
            seen.add(path)
    assert expected_files <= seen
    assert (state / "fresh.conf").exists() and (state / "ssh.conf").exists()
    for folder, pattern in (("jobs", "Hooked1-*"), ("jobs", "Queued1-*"), (".", "fresh.conf"),
                            ("locks", "*.lock"), ("locks", "job-*"), ("locks", "blocks")):
        assert list((state / folder).glob(pattern)), (folder, pattern)
    fresh = (state / "fresh.conf").read_text()
    assert "Host rescale-Hooked1\n" in fresh and "Host rescale-Queued1\n" in fresh
    assert (state / "known_hosts").read_text().count("rescale-") == 2  # ssh added two keys


# -- configs other users may change ------------------------------------------------------------

INSECURE = {
    "file writable by a shared group": ("file", 0o620),
    "file writable by others": ("file", 0o602),
    "folder writable by a shared group": ("folder", 0o770),
    "folder writable by others": ("folder", 0o707),
    "sticky folder like /tmp": ("folder", 0o1777),
}


def shared_group() -> int | None:
    """A group of ours that others may be in (not a private one), for a group-writable file."""
    import grp

    for gid in sorted({*os.getgroups(), os.getgid()} if os.geteuid() else
                      {g.gr_gid for g in grp.getgrall()}):
        if not ownership.ssh_private_group(os.getuid(), gid):
            return gid
    return None


@pytest.mark.parametrize("case", sorted(INSECURE))
def test_a_config_others_may_change_is_refused_before_anything_is_written(
    case: str, ssh_config: Path, isolated_home: Path
) -> None:
    what, mode = INSECURE[case]
    ssh_config.parent.mkdir(mode=0o700)
    ssh_config.write_bytes(USER_CONFIG)
    item = ssh_config if what == "file" else ssh_config.parent
    item.chmod(mode)
    if "shared group" in case:
        gid = shared_group()
        if gid is None:
            pytest.skip("no group here that is not the user's own")
        os.chown(item, -1, gid)
    result = run("add", "Job1", "--from-log", "Command: ssh u@127.0.0.1")
    one_error(result, 3, f"refusing to change {ssh_config}: ")
    assert "writable by" in result.stderr and "Bad owner or permissions" in result.stderr
    assert f"chmod go-w {ssh_config if what == 'file' else ssh_config.parent}" in result.stderr
    assert ssh_config.read_bytes() == USER_CONFIG
    assert stat.S_IMODE(item.stat().st_mode) == mode
    # Nothing at all was written: not even the lock or the known_hosts file.
    assert not (isolated_home / ".local").exists()
    assert temp_files(ssh_config.parent) == []
    item.chmod(0o600 if what == "file" else 0o700)
    assert run("add", "Job1", "--from-log", "Command: ssh u@127.0.0.1").returncode == 0


def ssh_reads(config: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """ssh checks the owner and mode of an Included file as of ~/.ssh/config (readconf.c)."""
    main = tmp_path / "main"
    main.write_text(f"Include {config}\n")
    return subprocess.run([require("ssh"), "-G", "-F", str(main), "x"], capture_output=True,
                          text=True, timeout=30, stdin=subprocess.DEVNULL)


def test_ssh_refuses_such_files_too(tmp_path: Path) -> None:
    included = tmp_path / "included"
    included.write_text("Host x\n    HostName 192.0.2.1\n")
    for mode, gid in ((0o602, None), (0o620, shared_group())):
        if mode == 0o620 and gid is None:
            continue
        included.chmod(mode)
        if gid is not None:
            os.chown(included, -1, gid)
        proc = ssh_reads(included, tmp_path)
        assert proc.returncode == 255
        assert f"Bad owner or permissions on {included}" in proc.stderr


def test_a_config_writable_by_the_users_own_group_is_accepted(ssh_config: Path,
                                                              tmp_path: Path) -> None:
    """Debian's and Ubuntu's ssh accept 0664 when the group is the user's private group
    (umask 002 makes such files there): so does rescale-ssh, where ssh does."""
    ssh_config.parent.mkdir(mode=0o700)
    ssh_config.write_bytes(USER_CONFIG)
    ssh_config.chmod(0o664)
    if not ownership.ssh_private_group(os.getuid(), ssh_config.stat().st_gid):
        pytest.skip("the user has no private group here")
    if ssh_reads(ssh_config, tmp_path).returncode != 0:
        pytest.skip("this ssh refuses group-writable configs: it lacks Debian's patch")
    assert run("add", "Job1", "--from-log", "Command: ssh u@127.0.0.1").returncode == 0
    assert stat.S_IMODE(ssh_config.stat().st_mode) == 0o664


@contextlib.contextmanager
def other_user_home() -> Iterator[tuple[Path, int]]:
    """A home for uid 65534 in a folder it can reach (pytest's are root's, 0700)."""
    base = Path(tempfile.mkdtemp(prefix="rescale-ssh-owner-"))
    try:
        base.chmod(0o755)
        home = base / "home"
        home.mkdir(mode=0o700)
        os.chown(home, 65534, 65534)
        yield home, 65534
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _reachable_by_others(path: str) -> bool:
    """Readable by other users, through folders they may enter."""
    resolved = Path(path).resolve()
    return bool(resolved.stat().st_mode & 0o004) and all(
        parent.stat().st_mode & 0o001 for parent in resolved.parents)


@pytest.mark.skipif(os.geteuid() != 0, reason="making a file another user owns needs root")
def test_a_config_owned_by_another_user_is_refused(isolated_home: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import rescale_ssh

    if not all(_reachable_by_others(p) for p in (rescale_ssh.__file__, sys.prefix,
                                                 sys.base_prefix)):
        # Python itself is out of another user's reach here (e.g. under /root/.pyenv): check
        # the rule in this process, as that user would see it (the uid is all that differs).
        config = isolated_home / "config"
        config.write_bytes(USER_CONFIG)
        os.chown(config, 12345, 12345)
        monkeypatch.setattr(configfile.os, "getuid", lambda: 65534)
        with pytest.raises(ConfigError, match=r"belongs to another user \(uid 12345\)"):
            ownership.check_secure(config)
        os.chown(config, 65534, 65534)
        ownership.check_secure(config)
        return
    with other_user_home() as (home, uid):
        ssh_dir = home / ".ssh"
        ssh_dir.mkdir(mode=0o700)
        os.chown(ssh_dir, uid, uid)
        config = ssh_dir / "config"
        config.write_bytes(USER_CONFIG)
        config.chmod(0o644)
        os.chown(config, 12345, 12345)  # neither the user nor root

        def become_user() -> None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)

        env = {"HOME": str(home), "RESCALE_SSH_CONFIG": str(config), "XDG_STATE_HOME":
               str(home / ".local" / "state"), "XDG_CONFIG_HOME": str(home / ".config")}
        result = run("add", "Job1", "--from-log", "Command: ssh u@127.0.0.1", env=env,
                     preexec=become_user)
        one_error(result, 3, f"refusing to change {config}: the file belongs to another user "
                             "(uid 12345)")
        assert config.read_bytes() == USER_CONFIG
        assert not (home / ".local").exists()
        os.chown(config, uid, uid)  # the user's own: accepted
        assert run("add", "Job1", "--from-log", "Command: ssh u@127.0.0.1", env=env,
                   preexec=become_user).returncode == 0


# -- read-only configs (home-manager) ----------------------------------------------------------


@contextlib.contextmanager
def read_only_mount(folder: Path) -> Iterator[bool]:
    """A tmpfs at ``folder`` remounted read-only, like /nix/store; False when mounting is not
    allowed here (the folder is then left a plain, read-only folder)."""
    mounted = False
    if os.geteuid() == 0 and shutil.which("mount"):
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs",
                               str(folder)], capture_output=True, timeout=30)
        mounted = proc.returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], capture_output=True, timeout=30)


def make_store_link(ssh_config: Path, store: Path, mounted: bool) -> Path:
    """~/.ssh/config -> <store>/abc-ssh-config, 0444 in a 0555 folder, as home-manager does."""
    target = store / "abc123-home-manager-files" / "ssh-config"
    target.parent.mkdir(parents=True)
    target.write_bytes(USER_CONFIG)
    target.chmod(0o444)
    target.parent.chmod(0o555)
    if mounted:
        subprocess.run(["mount", "-o", "remount,ro", str(store)], check=True, timeout=30)
    ssh_config.parent.mkdir(mode=0o700)
    ssh_config.symlink_to(target)
    return target


@pytest.mark.parametrize("kind", ["read-only file", "link into a read-only store"])
def test_a_read_only_config_gets_the_lines_to_add_by_hand(
    kind: str, ssh_config: Path, tmp_path: Path, figures: Figures
) -> None:
    store = tmp_path / "nix-store"
    store.mkdir()
    mount = read_only_mount(store) if kind != "read-only file" else contextlib.nullcontext(False)
    with mount as mounted:
        if kind == "read-only file":
            ssh_config.parent.mkdir(mode=0o700)
            ssh_config.write_bytes(USER_CONFIG)
            ssh_config.chmod(0o444)
            target = ssh_config
        else:
            target = make_store_link(ssh_config, store, mounted)
        line = f"Command: ssh -p {free_port()} uprod_Ro1@127.0.0.1; working directory: /enc/w"
        result = run("add", "Ro1", "--from-log", line)
        one_error(result, 3, f"cannot change {ssh_config}")
        assert "read-only" in result.stderr
        assert "add the lines printed above" in result.stderr
        assert target.read_bytes() == USER_CONFIG
        if kind != "read-only file":
            assert f"(a link to {target})" in result.stderr
            assert ssh_config.is_symlink()
        # The lines printed are exactly what ssh needs: put them first, and the job works.
        by_hand = tmp_path / "by_hand_config"
        by_hand.write_bytes(result.stdout.encode() + USER_CONFIG)
        got = ssh_config_of(str(by_hand), "rescale-Ro1")
        assert got["hostname"] == ["127.0.0.1"] and got["user"] == ["uprod_Ro1"]
        assert section.read(by_hand.read_bytes(), path="x").entries["Ro1"].target.workdir \
            == "/enc/w"
        assert ssh_config_of(str(by_hand), "mine")["hostname"] == ["192.0.2.10"]
        # install: the section and the hook block; uninstall/remove: nothing to add.
        installed = run("install", "--yes")
        one_error(installed, 3, f"cannot change {ssh_config}")
        assert "# rescale-ssh hook state=" in installed.stdout
        assert "Include " in installed.stdout  # the hook's own file: written, as it is ours
        assert "Match originalhost" in (
            tmp_path / "home" / ".local" / "state" / "rescale-ssh" / "ssh.conf").read_text()
        removed = run("remove", "Ro1")
        assert removed.returncode == 0, removed  # nothing to remove: nothing to write
        assert target.read_bytes() == USER_CONFIG
        figures("read-only configs left untouched", 1)
        if mounted:
            figures("read-only configs on a read-only mount", 1)


# -- writes that fail half-way -----------------------------------------------------------------


def big_config(lines: int = 8000) -> bytes:
    return USER_CONFIG + b"".join(b"Host user-host-%05d\n    HostName 192.0.2.%d\n" % (i, i % 250)
                                  for i in range(lines))


def test_a_write_that_fails_half_way_leaves_the_original(ssh_config: Path) -> None:
    """RLIMIT_FSIZE stops the temp file part-way (EFBIG, as a full quota or disk would):
    the config keeps every byte, no temp file stays, and the error is one line."""
    original = big_config()
    ssh_config.parent.mkdir(mode=0o700)
    ssh_config.write_bytes(original)

    def small_files() -> None:
        limit = len(original) // 2
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = run("add", "Big1", "--from-log", "Command: ssh u@127.0.0.1", preexec=small_files)
    one_error(result, 3, f"cannot write {ssh_config}: File too large")
    assert "left as it was" in result.stderr
    assert ssh_config.read_bytes() == original
    assert temp_files(ssh_config.parent) == []
    assert run("add", "Big1", "--from-log", "Command: ssh u@127.0.0.1").returncode == 0


def test_the_hook_says_so_when_it_cannot_write(cli: Cli, ssh_config: Path,
                                               platform: FakePlatform,
                                               isolated_home: Path) -> None:
    cli("install", "--yes")
    platform.add_job("Full1", host="127.0.0.1", port=free_port())
    state = isolated_home / ".local" / "state" / "rescale-ssh"

    def tiny_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (16, 16))

    result = run("hook", "--state", str(state), "rescale-Full1", preexec=tiny_files)
    assert result.returncode == 3, result
    assert result.stderr.startswith("rescale-ssh: error: cannot write "), result
    assert "File too large" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not (state / "fresh.conf").exists()
    assert not [p for p in state.rglob("*") if p.name.endswith(".tmp")]


def test_a_full_file_system_leaves_the_original(ssh_config: Path, tmp_path: Path) -> None:
    """ENOSPC from a small tmpfs (needs root and mount; the rlimit test above runs anywhere)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small tmpfs needs root")
    size = 256 * 1024
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                           str(disk)], capture_output=True, timeout=30)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    try:
        original = big_config(3000)
        assert size // 2 < len(original) < size
        config = disk / "config"
        config.write_bytes(original)
        config.chmod(0o600)
        result = run("add", "Full1", "--from-log", "Command: ssh u@127.0.0.1",
                     env={"RESCALE_SSH_CONFIG": str(config)})
        one_error(result, 3, f"cannot write {config}: no space left on the device")
        assert config.read_bytes() == original
        assert temp_files(disk) == []
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True, timeout=30)


def test_stale_temp_files_of_dead_writers_are_removed(ssh_config: Path) -> None:
    ssh_config.parent.mkdir(mode=0o700)
    ssh_config.write_bytes(USER_CONFIG)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = ssh_config.parent / f".config.{dead}.abc123{configfile.TEMP_SUFFIX}"
    stale.write_bytes(b"half a config")
    alive = ssh_config.parent / f".config.{os.getpid()}.def456{configfile.TEMP_SUFFIX}"
    alive.write_bytes(b"a write in progress")
    other = ssh_config.parent / ".config.d.7.x.rescale-ssh.tmp"
    other.write_bytes(b"not ours to judge")
    assert run("add", "Job1", "--from-log", "Command: ssh u@127.0.0.1").returncode == 0
    assert not stale.exists()
    assert alive.exists() and other.exists()
