"""Trust boundaries of the files we write (issue 14, items 2 and 7).

Item 2: a symbolic link planted at any name rescale-ssh writes (the state folder's files, its
folders, the records, markers and locks, the temp files next to each, the user's ssh config's
temp file) is never followed: what it points at, a file of root's say, stays as it was, and no
file appears where a dangling link points. A link is replaced or refused, never written through.
The user's own ~/.ssh/config may be a link (dotfiles): that one is still written through
(test_section.py).

Item 7: where flock(2) fails (a network file system: ENOLCK, EOPNOTSUPP), the locks fall back
to lock files made with O_EXCL, which a dead holder does not keep forever; flock is made to
fail for real, in the child processes, by a sitecustomize module.
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rescale_ssh import configfile, store
from rescale_ssh.errors import ConfigError
from rescale_ssh.hook import blockfile, hookconf, jobcache, matcher
from rescale_ssh.hook.jobcache import OK, Entry
from rescale_ssh.platform import me
from rescale_ssh.sshconfig import knownhosts, toolfiles
from rescale_ssh.target import Target
from tests.fakeplatform import FakePlatform
from tests.helpers import Cli, Result
from tests.sshd import free_port

VICTIM = b"root's own file: must never change\n"
JOB = "Link1"
OTHER = "Link2"


class Victims:
    """Files and folders outside the home that no rescale-ssh command may touch."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir()
        self.files: dict[Path, tuple[bytes, int, int]] = {}
        self.absent: list[Path] = []
        self.dirs: dict[Path, list[tuple[str, bytes]]] = {}

    def file(self, name: str) -> Path:
        path = self.folder / name
        path.write_bytes(VICTIM + name.encode() + b"\n")
        path.chmod(0o644)
        info = path.stat()
        self.files[path] = (path.read_bytes(), info.st_mtime_ns, stat.S_IMODE(info.st_mode))
        return path

    def nothing(self, name: str) -> Path:
        """Where a dangling link points: nothing may be created there."""
        path = self.folder / name
        self.absent.append(path)
        return path

    def dir(self, name: str, *inside: str) -> Path:
        path = self.folder / name
        path.mkdir(exist_ok=True)
        for item in inside:
            (path / item).write_bytes(VICTIM)
        self.dirs[path] = self._listing(path)
        return path

    @staticmethod
    def _listing(path: Path) -> list[tuple[str, bytes]]:
        return sorted((p.name, p.read_bytes()) for p in path.iterdir())

    def check(self, what: str = "") -> None:
        for path, (data, mtime, mode) in self.files.items():
            info = path.stat()
            assert (path.read_bytes(), info.st_mtime_ns, stat.S_IMODE(info.st_mode)) == (
                data, mtime, mode), f"{what}: {path} was written through a link"
        for path in self.absent:
            assert not os.path.lexists(path), f"{what}: {path} was created through a link"
        for path, listing in self.dirs.items():
            assert self._listing(path) == listing, f"{what}: {path} was changed through a link"


@pytest.fixture
def victims(tmp_path: Path) -> Victims:
    return Victims(tmp_path / "victims")


def plant(link: Path, target: Path) -> None:
    if link.is_dir() and not link.is_symlink():
        for item in sorted(link.rglob("*"), reverse=True):
            item.unlink() if not item.is_dir() or item.is_symlink() else item.rmdir()
        link.rmdir()
    elif os.path.lexists(link):
        link.unlink()
    link.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    link.symlink_to(target)


def forced(*first: str) -> Callable[[], str]:
    """A stand-in for store.token: ``first``, then random ones."""
    given = iter(first)
    return lambda: next(given, None) or os.urandom(4).hex()


Links = list[tuple[Path, Path]]


def replant(links: Links) -> None:
    """The links again, where a command replaced them (as it should) with files of its own."""
    for link, target in links:
        if not (link.is_symlink() and os.readlink(link) == str(target)):
            plant(link, target)


def state_of(home: Path) -> Path:
    return home / ".local" / "state" / "rescale-ssh"


def no_crash(result: Result) -> None:
    """Done, or refused in one line and a hint: never a traceback or an internal error."""
    assert "Traceback" not in result.stderr, result
    assert "internal error" not in result.stderr, result
    if result.returncode != 0:
        lines = result.stderr.splitlines()
        assert result.returncode == 3, result
        errors = [line for line in lines if line.startswith("rescale-ssh: error: ")]
        assert len(errors) == 1, result


def next_pids(count: int) -> range:
    """The process ids the next processes will most likely get (Linux hands them out in
    order): where a same-machine attacker plants links at names made from a pid."""
    try:
        last = int(Path("/proc/sys/kernel/ns_last_pid").read_text())
    except (OSError, ValueError):
        last = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout.strip()
        last = int(last)
    return range(last + 1, last + 1 + count)


# -- item 2: the helpers every writer goes through ----------------------------------------------


def test_a_link_at_the_temp_name_is_never_written_through(tmp_path: Path,
                                                          victims: Victims) -> None:
    """The reproduction: `.<name>.<pid>.tmp` was opened O_CREAT|O_TRUNC, through a link."""
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    target = folder / "fresh.conf"
    plant(folder / f".fresh.conf.{os.getpid()}.tmp", victims.file("old-temp-name"))
    assert store.write_atomic(str(target), "new\n", mode=0o644)
    victims.check("write_atomic")
    assert target.read_text() == "new\n" and not target.is_symlink()


def test_temp_names_are_random_and_taken_ones_are_skipped(
        tmp_path: Path, victims: Victims, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    monkeypatch.setattr(store, "token", forced("feed", "feed", "beef"))
    pid = os.getpid()
    plant(folder / f".hook.conf.{pid}.feed.tmp", victims.file("taken"))
    assert store.write_atomic(str(folder / "hook.conf"), "a=b\n")
    victims.check("write_atomic")
    assert (folder / "hook.conf").read_text() == "a=b\n"
    assert sorted(p.name for p in folder.iterdir()) == [f".hook.conf.{pid}.feed.tmp",
                                                          "hook.conf"]


def test_the_users_config_temp_file_is_never_written_through(
        ssh_config: Path, victims: Victims, monkeypatch: pytest.MonkeyPatch) -> None:
    """The temp file next to ~/.ssh/config (itself written through the user's own link)."""
    ssh_config.parent.mkdir(mode=0o700)
    ssh_config.write_bytes(b"Host mine\n")
    monkeypatch.setattr(store, "token", forced("feed"))
    pid = os.getpid()
    plant(ssh_config.parent / f".config.{pid}.feed{configfile.TEMP_SUFFIX}",
          victims.file("config-temp"))
    configfile.update(ssh_config, lambda data: data + b"Host other\n")
    victims.check("configfile.update")
    assert ssh_config.read_bytes() == b"Host mine\nHost other\n"
    configfile.replace_file(ssh_config.parent / "key", b"k\n", mode=0o600)
    victims.check("configfile.replace_file")


def test_a_link_at_the_final_name_is_replaced_not_followed(tmp_path: Path,
                                                           victims: Victims) -> None:
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    same = victims.file("same")
    plant(folder / "same", same)  # holding exactly what we write: still not ours
    assert store.write_atomic(str(folder / "same"), same.read_text(), mode=0o644)
    plant(folder / "rec", victims.file("rec"))
    store.write_atomic(str(folder / "rec"), "x=1\n")
    victims.check("write_atomic")
    assert not (folder / "same").is_symlink() and (folder / "rec").read_text() == "x=1\n"
    plant(folder / "shadow", victims.file("shadow"))
    assert store.read_record(str(folder / "shadow")) == {store.UNREADABLE: str(folder / "shadow")}


def test_markers_and_locks_are_never_made_through_a_link(tmp_path: Path,
                                                         victims: Victims) -> None:
    folder = tmp_path / "state"
    (folder / "live").mkdir(parents=True, mode=0o700)
    (folder / "locks").mkdir(mode=0o700)
    plant(folder / "live" / "rescale-X", victims.nothing("marker"))
    store.mark(str(folder / "live" / "rescale-X"))
    assert (folder / "live" / "rescale-X").is_file()
    assert not (folder / "live" / "rescale-X").is_symlink()
    plant(folder / "locks" / "blocks", victims.nothing("lock"))
    plant(folder / "locks" / "other", victims.file("lock-file"))
    for name in ("blocks", "other"):
        with store.Locked(str(folder / "locks" / name), timeout=1.0) as got:
            assert got
        assert not (folder / "locks" / name).is_symlink()
    victims.check("markers and locks")


@pytest.mark.parametrize("dangling", [False, True], ids=["to a folder", "to nothing"])
@pytest.mark.parametrize("name", sorted(store.OWN_FOLDERS))
def test_a_folder_of_ours_that_is_a_link_is_refused(name: str, dangling: bool, tmp_path: Path,
                                                    victims: Victims) -> None:
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    inside = victims.nothing(name) if dangling else victims.dir(name, "rescale-X", "blocks")
    plant(folder / name, inside)
    attempts: list[Callable[[], object]] = [
        lambda: store.write_atomic(str(folder / name / "rescale-X"), "x=1\n"),
        lambda: store.mark(str(folder / name / "rescale-X")),
        lambda: store.remove(str(folder / name / "rescale-X")),
        lambda: store.Locked(str(folder / name / "blocks"), timeout=1.0).__enter__(),
    ]
    for attempt in attempts:
        with pytest.raises(ConfigError, match="is a symbolic link"):
            attempt()
    victims.check(name)


def test_known_hosts_that_is_a_link_is_refused(tmp_path: Path, victims: Victims) -> None:
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    known = folder / "known_hosts"
    target = victims.folder / "known"
    target.write_bytes(b"rescale-Job1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE\n")
    victims.files[target] = (target.read_bytes(), target.stat().st_mtime_ns,
                             stat.S_IMODE(target.stat().st_mode))
    plant(known, target)
    with pytest.raises(ConfigError, match="symbolic link"):
        knownhosts.forget(known, ["rescale-Job1"])
    plant(known, victims.nothing("known-new"))
    with pytest.raises(ConfigError, match="symbolic link"):
        knownhosts.ensure(known)  # ssh would add keys to wherever it points
    victims.check("known_hosts")


# -- item 2: every name, through the real writers ---------------------------------------------


def cached_entry(job: str, port: int) -> Entry:
    target = Target(job, f"uprod_{job}", "127.0.0.1", port, f"/enc/uprod_{job}/work",
                    (("127.0.0.1", port, True),))
    return Entry(state=OK, resolved=time.time(), target=target)


def plant_every_name(state: Path, victims: Victims, ssh_config: Path) -> Links:
    """A link at every file name the commands and the hook write in the state folder: to a
    file of root's where we replace a file, to nowhere where we create one."""
    digest = os.path.basename(configfile.lock_file(ssh_config, str(state)))[:-len(".lock")]
    api = Path(os.environ["HOME"]) / ".config" / "rescale" / "apiconfig"
    api_digest = os.path.basename(configfile.lock_file(api, str(state)))[:-len(".lock")]
    existing = [*STATE_FILES, me.FILE, "known_hosts",
                f"jobs/{store.safe_name('', JOB)}", f"jobs/{store.safe_name('', OTHER)}",
                f"locks/{digest}.written", f"hosts/{store.safe_name('rescale-', JOB)}.conf",
                f"failed/{store.safe_name('rescale-', JOB)}.conf"]
    dangling = [f"live/rescale-{JOB}", f"live/rescale-{OTHER}", "locks/blocks", "locks/sweeper",
                f"locks/job-{store.safe_name('', JOB)}",
                f"locks/job-{store.safe_name('', OTHER)}", f"locks/{digest}.lock",
                f"locks/{api_digest}.lock", f"locks/{digest}.lock.held", "locks/blocks.held",
                "locks/sweeper.held"]
    links = [(state / name, victims.file(name.replace("/", "_"))) for name in existing]
    links += [(state / name, victims.nothing(name.replace("/", "_"))) for name in dangling]
    replant(links)
    return links


# Written in the state folder itself (included.py, hookconf.py, blockfile.py).
STATE_FILES = (hookconf.FILE_INCLUDED, hookconf.FRESH_FILE, hookconf.HOSTS_FILE,
               hookconf.EXPLAINER_FILE, hookconf.FILE, hookconf.SCRIPT_FILE)


def plant_temp_names(state: Path, victims: Victims, count: int) -> Links:
    """Links at `.<name>.<pid>.tmp`, the temp names of before, for the next ``count`` pids
    (and this process's)."""
    names = [*STATE_FILES, me.FILE, f"jobs/{store.safe_name('', JOB)}",
             f"jobs/{store.safe_name('', OTHER)}"]
    victim = victims.file("temp-names")
    links = []
    for pid in [*next_pids(count), os.getpid()]:
        for name in names:
            folder, _, base = name.rpartition("/")
            links.append((state / folder / f".{base}.{pid}.tmp", victim))
    replant(links)
    return links


def plant_folders(state: Path, victims: Victims) -> Links:
    """Each folder of ours a link to a folder of root's, holding the names we write there."""
    inside = {"jobs": (store.safe_name("", JOB),), "live": (f"rescale-{JOB}",),
              "locks": ("blocks", "sweeper")}
    links = [(state / name, victims.dir(f"dir-{name}", *inside.get(
        name, (f"{store.safe_name('rescale-', JOB)}.conf",)))) for name in store.OWN_FOLDERS]
    replant(links)
    return links


def in_process_writers(conf: hookconf.HookConf, ssh_config: Path, closed: int
                       ) -> Iterator[tuple[str, Callable[[], object]]]:
    """The writers themselves, below the commands' checks of the state folder."""
    state = Path(conf.state_dir)
    yield "hook cold path", lambda: matcher.ensure(conf, JOB)
    yield "hook publish", lambda: matcher.publish(conf, OTHER, cached_entry(OTHER, closed))
    yield "record", lambda: jobcache.save(str(state), OTHER, cached_entry(OTHER, closed))
    yield "toolfiles", lambda: toolfiles.ensure(str(state), conf=conf, claimed=[], static=[])
    yield "rebuild", lambda: blockfile.rebuild(conf)
    yield "forget", lambda: blockfile.forget(conf, [JOB, OTHER])
    yield "known_hosts", lambda: knownhosts.forget(state / "known_hosts", [f"rescale-{JOB}"])
    yield "me cache", lambda: store.write_atomic(me.cache_path(), "platform=x\n")
    yield "config", lambda: configfile.update(ssh_config, lambda data: data + b"# more\n")
    api = Path(os.environ["HOME"]) / ".config" / "rescale" / "apiconfig"
    yield "apiconfig lock", lambda: configfile.locked(api).__enter__()


COMMANDS = (("hook", "--state", "STATE", f"rescale-{JOB}"),
            ("add", OTHER, "--from-log", "Command: ssh u_Link2@127.0.0.1"),
            ("install", "--yes"), ("sync", "--yes"), ("jobs",), ("remove", "--yes", OTHER),
            ("key", "generate", "--no-passphrase"), ("login",))


@pytest.mark.parametrize("layout", ["files", "folders", "temp names"])
def test_a_link_at_every_name_we_write_is_never_followed(
        layout: str, cli: Cli, ssh_config: Path, platform: FakePlatform, isolated_home: Path,
        victims: Victims, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every name, then every command that writes there (the hook as ssh runs it: a separate
    process), then the writers themselves in this process, below the commands' own checks of
    the state folder."""
    closed = free_port()
    platform.add_job(JOB, host="127.0.0.1", port=closed)
    platform.add_job(OTHER, host="127.0.0.1", port=closed)
    cli("install", "--yes")
    state = state_of(isolated_home)
    conf = hookconf.load(str(state))
    links = {"files": lambda: plant_every_name(state, victims, ssh_config),
             "folders": lambda: plant_folders(state, victims),
             "temp names": lambda: plant_temp_names(state, victims, 300)}[layout]()
    for args in COMMANDS:
        args = tuple(str(state) if arg == "STATE" else arg for arg in args)
        result = cli(*args, input=f"{platform.api_key}\n", expect=None)
        no_crash(result)
        victims.check(" ".join(args))
    replant(links)
    monkeypatch.setattr(os, "fork", _no_sweeper)
    for what, write in in_process_writers(conf, ssh_config, closed):
        try:
            write()
        except ConfigError as error:
            assert "symbolic link" in error.message, (what, error.message)
        victims.check(what)
        replant(links)


def _no_sweeper() -> int:
    raise OSError(errno.EAGAIN, "no sweeper in this test process")


# -- item 7: no flock ---------------------------------------------------------------------------

SITECUSTOMIZE = """\
import errno, fcntl

def flock(fd, operation):
    raise OSError(errno.{name}, "flock refused by the test ({name})")

fcntl.flock = flock
"""


def no_flock(tmp_path: Path, name: str) -> dict[str, str]:
    """An environment whose processes get ``name`` from every flock(2), as on NFS."""
    folder = tmp_path / f"no-flock-{name}"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE.format(name=name))
    pythonpath = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": pythonpath}


def proves_no_flock(env: dict[str, str]) -> None:
    code = "import fcntl, os; fcntl.flock(os.open('/dev/null', 0), fcntl.LOCK_EX)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=30)
    assert proc.returncode != 0 and "flock refused by the test" in proc.stderr


def leftovers(state: Path) -> list[str]:
    return sorted(p.name for p in (state / "locks").iterdir() if p.name.endswith(".held"))


@pytest.mark.parametrize("name", ["ENOLCK", "EOPNOTSUPP"])
def test_commands_and_the_hook_work_without_flock(name: str, cli: Cli, ssh_config: Path,
                                                  platform: FakePlatform, isolated_home: Path,
                                                  tmp_path: Path) -> None:
    env = no_flock(tmp_path, name)
    proves_no_flock(env)
    platform.add_job(JOB, host="127.0.0.1", port=free_port())
    state = state_of(isolated_home)
    for args in (("add", OTHER, "--from-log", "Command: ssh u_Link2@127.0.0.1"),
                 ("install", "--yes"), ("hook", "--state", str(state), f"rescale-{JOB}"),
                 ("hook", "--state", str(state), f"rescale-{JOB}"), ("remove", "--yes", OTHER),
                 ("login",)):
        result = cli(*args, env=env, input=f"{platform.api_key}\n", expect=None, timeout=30)
        assert result.returncode == 0, result
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert b"rescale-Link2" not in ssh_config.read_bytes()
    assert (state / "live" / f"rescale-{JOB}").is_file()
    assert jobcache.load(str(state), JOB) is not None
    deadline = time.monotonic() + 5
    while leftovers(state) and time.monotonic() < deadline:  # the sweeper holds its own
        if leftovers(state) == ["sweeper.held"]:
            break
        time.sleep(0.05)
    assert leftovers(state) in ([], ["sweeper.held"])


LOCKER = """\
import os, sys, time
from rescale_ssh import store
path, log = sys.argv[1], sys.argv[2]
with store.Locked(path, timeout=30) as got:
    assert got
    with open(log, "a") as out:
        out.write(f"in {os.getpid()}\\n")
    time.sleep(0.05)
    with open(log, "a") as out:
        out.write(f"out {os.getpid()}\\n")
"""


def test_without_flock_writers_still_take_turns(tmp_path: Path) -> None:
    env = {**os.environ, **no_flock(tmp_path, "ENOLCK")}
    lock, log = tmp_path / "locks" / "blocks", tmp_path / "log"
    procs = [subprocess.Popen([sys.executable, "-c", LOCKER, str(lock), str(log)], env=env,
                              stderr=subprocess.PIPE, text=True) for _ in range(8)]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    lines = log.read_text().splitlines()
    assert len(lines) == 16
    for start in range(0, 16, 2):  # each "in" is followed by the same process's "out"
        assert lines[start].startswith("in ") and lines[start + 1] == "out" + lines[start][2:]
    assert leftovers(tmp_path) == []


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_a_lock_left_by_a_dead_holder_is_taken_over(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import fcntl

    def refused(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", refused)
    (tmp_path / "locks").mkdir()
    lock = tmp_path / "locks" / "blocks"
    held = tmp_path / "locks" / "blocks.held"
    host = os.uname().nodename
    # Here, by a process that is gone: taken at once.
    held.write_text(f"{dead_pid()} {host} {time.time():.0f} abc\n")
    started = time.monotonic()
    with store.Locked(str(lock), timeout=5) as got:
        assert got and held.read_text().startswith(f"{os.getpid()} {host} ")
    assert time.monotonic() - started < 1 and not held.exists()
    # Elsewhere, and long ago: taken too. Elsewhere and just now: waited for.
    held.write_text(f"1 another-host {time.time():.0f} abc\n")
    with store.Locked(str(lock), timeout=0.3) as got:
        assert not got
    assert held.exists()
    old = time.time() - store.STALE_AFTER - 10
    os.utime(held, (old, old))
    with store.Locked(str(lock), timeout=5) as got:
        assert got
    # Alive here (this process): never taken.
    held.write_text(f"{os.getpid()} {host} {time.time():.0f} abc\n")
    with store.Locked(str(lock), timeout=0.3) as got:
        assert not got
    held.unlink()


def test_a_stale_lock_does_not_stop_the_hook(cli: Cli, platform: FakePlatform,
                                             isolated_home: Path, tmp_path: Path) -> None:
    env = no_flock(tmp_path, "ENOLCK")
    cli("install", "--yes", env=env)
    platform.add_job(JOB, host="127.0.0.1", port=free_port())
    state = state_of(isolated_home)
    host = os.uname().nodename
    for name in ("blocks", f"job-{store.safe_name('', JOB)}"):
        (state / "locks" / f"{name}.held").write_text(f"{dead_pid()} {host} 0 x\n")
    started = time.monotonic()
    result = cli("hook", "--state", str(state), f"rescale-{JOB}", env=env, expect=0)
    assert time.monotonic() - started < 5, result
    assert jobcache.load(str(state), JOB) is not None


def test_a_lock_that_cannot_be_had_at_all_is_a_clear_error(
        cli: Cli, ssh_config: Path, isolated_home: Path, tmp_path: Path) -> None:
    """No flock, and no lock file can be made either (a folder sits at its name): one line
    that names the lock and says why, exit 3."""
    env = no_flock(tmp_path, "ENOLCK")
    cli("add", OTHER, "--from-log", "Command: ssh u_Link2@127.0.0.1")
    lock = configfile.lock_file(ssh_config, str(state_of(isolated_home)))
    os.mkdir(f"{lock}.held")
    result = cli("add", JOB, "--from-log", "Command: ssh u_Link1@127.0.0.1", env=env,
                 expect=None)
    assert result.returncode == 3, result
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"rescale-ssh: error: cannot lock {lock}"), result
    assert len(lines) == 2 and lines[1].startswith("hint: "), result
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
