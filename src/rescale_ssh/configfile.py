"""Locked, atomic, minimal writes of files the user owns (the ssh config, known_hosts).

Lessons from SkyPilot #912 and vscode-coder #504 (two writers, a lost config) and from coder's
and algo's atomic writes that replaced a dotfile manager's symlink: take a lock, read, compute,
write nothing when nothing changed, else write a temp file in the target's own folder, fsync,
check the file was not changed meanwhile, rename onto the symlink's target, fsync the folder.
Mode and owner of an existing file are kept; a new file is 0600 in a folder created 0700.

Before anything is written: a file or folder that others may change is refused, as ssh refuses
such a config ("Bad owner or permissions", readconf.c); a read-only one (a dotfile manager's
symlink into the nix store) is not replaced behind its owner's back: the caller's ``by_hand``
turns the planned content into the lines the user can add through that manager. A writer killed
mid-write (SIGKILL, power loss) leaves the old file and a temp file named after its process,
which the next writer removes.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rescale_ssh import exchange, paths, posix, store
from rescale_ssh.errors import ConfigError, ReadOnlyConfigError
from rescale_ssh.ownership import check_secure
from rescale_ssh.store import alive

LOCK_TIMEOUT = 30.0
_RETRIES = 5
TEMP_SUFFIX = ".rescale-ssh.tmp"  # temp files are .<name>.<pid>.<random>.rescale-ssh.tmp


@dataclass(frozen=True)
class Change:
    path: Path
    old: bytes
    new: bytes
    existed: bool

    @property
    def changed(self) -> bool:
        return self.old != self.new


def real_path(path: Path) -> Path:
    """The file a (possibly symlinked) path finally names; it may not exist yet."""
    return Path(os.path.realpath(path))


def read_bytes(path: Path) -> bytes | None:
    try:
        return real_path(path).read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory, not a file") from None
    except PermissionError:
        raise ConfigError(
            f"cannot read {path}: permission denied", "check the file's owner and mode"
        ) from None


def lock_file(path: Path | str, state_dir: str) -> str:
    """The lock of the config ``path``, for store.Locked (a flock(2) on this file, or the lock
    file that stands in for it), so the hook can hold it too when it rewrites the included
    file."""
    digest = hashlib.sha256(os.path.realpath(path).encode()).hexdigest()[:24]
    return os.path.join(state_dir, "locks", f"{digest}.lock")


def created_marker(path: Path | str) -> str:
    """Says that rescale-ssh made the config ``path`` (there was none): uninstall then removes
    it when nothing else is left in it. Next to its lock (uninstall removes the locks last)."""
    return lock_file(path, str(paths.state_dir()))[: -len(".lock")] + ".created"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An inter-process lock for ``path``, kept in the tool's state folder (not in ~/.ssh).
    store.Locked, as the hook takes it: works without flock too (NFS), never follows a link,
    and says why when it cannot lock at all (ConfigError)."""
    from rescale_ssh import store

    paths.private_dir(paths.state_dir() / "locks")
    with store.Locked(lock_file(path, str(paths.state_dir())), LOCK_TIMEOUT) as got:
        if not got:
            raise ConfigError(
                f"another rescale-ssh is still changing {path} after {LOCK_TIMEOUT:.0f} s",
                "wait for it to finish, then run the command again",
            )
        yield


def update(path: Path, compute: Callable[[bytes], bytes], *, dry_run: bool = False,
           by_hand: Callable[[bytes], str] | None = None,
           prepare: Callable[[bytes], None] | None = None) -> Change:
    """Apply ``compute`` to the file's bytes (``b""`` when missing) and write the result.

    ``by_hand`` turns the new content into what a user can add to a read-only file themselves.
    ``prepare`` is given the content about to be written (also when it is unchanged), under
    the lock, before it is written: the files it names are made right first.
    Another program may be writing the file meanwhile (an editor's save, in place or by
    rename): a file that looks mid-save is waited for (:func:`settled`), and a file that
    changed between our read and our rename is never overwritten: the write starts again from
    its new content (:func:`_swap_in`).
    """
    check_secure(path)
    if dry_run:
        old = read_bytes(path)
        return Change(path, old or b"", compute(old or b""), existed=old is not None)
    if read_only(path):
        old = read_bytes(path)
        change = Change(path, old or b"", compute(old or b""), existed=old is not None)
        if prepare is not None:
            prepare(change.new)  # the lines printed for the user to add need these files
        if not change.changed:
            return change  # nothing to write: a read-only file is no obstacle
        raise _read_only_error(path, change.new, by_hand, None)
    with locked(path):
        remove_stale_temps(real_path(path))
        own = _last_written(path)
        for _ in range(_RETRIES):
            snap = settled(path, own)
            old = snap.data
            new = compute(old or b"")
            change = Change(path, old or b"", new, existed=old is not None)
            if prepare is not None:
                prepare(new)
            if not change.changed:
                return change
            try:
                written = _swap_in(path, snap, new)
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                    raise _read_only_error(path, new, by_hand, exc) from None
                raise _write_error(path, exc) from None
            if written is not None:
                _remember(path, written)
                if old is None:
                    store.mark(created_marker(path))
                return change
        raise ConfigError(
            f"{path} kept changing while rescale-ssh was writing it",
            "close the program that is editing it, then run the command again",
        )


# A file changed this recently may be half-written by another program (an editor saving in
# place): it must then stay unchanged for WATCH seconds before it is read for good.
RECENT = 0.5
WATCH = 0.1
SETTLE_LIMIT = 10.0


@dataclass(frozen=True)
class Snapshot:
    """What a file was at one moment: its identity (device, inode, size, mtime, ctime) and its
    bytes; both None when it did not exist."""

    ident: tuple[int, int, int, int, int] | None
    data: bytes | None


def snapshot(path: Path) -> Snapshot:
    target = real_path(path)
    for _ in range(3):
        try:
            before = os.stat(target)
        except (FileNotFoundError, NotADirectoryError):
            return Snapshot(None, None)
        data = read_bytes(path)
        try:
            after = os.stat(target)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if data is not None and _ident(before) == _ident(after) and len(data) == after.st_size:
            return Snapshot(_ident(after), data)
    return Snapshot(None, read_bytes(path))  # kept changing under the read: not settled


def _ident(info: os.stat_result) -> tuple[int, int, int, int, int]:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def settled(path: Path, own: tuple[int, int, int, int, int] | None = None) -> Snapshot:
    """The file once it no longer looks mid-save: no process holds it open for writing
    (:func:`being_written`), not changed in the last RECENT seconds (or unchanged over WATCH
    seconds of looking; RECENT, where that lease check is not available, when it shrank since
    our last write: an in-place save truncates first), and not cut inside our section (a
    start marker with no end marker after it).
    ``own`` is what this tool wrote last: that needs no wait. Bounded: SETTLE_LIMIT seconds,
    then ConfigError."""
    import time

    deadline = time.monotonic() + SETTLE_LIMIT
    snap = snapshot(path)
    while True:
        if snap.data is None and snap.ident is None:
            return snap
        # Shrunk since our last write, where no lease tells a writer at work: watch longer.
        shrank = snap.ident is not None and own is not None and snap.ident[2] < own[2] and \
            not sys.platform.startswith("linux")
        if snap.ident is not None and (snap.ident == own or (
                not _recent(snap.ident) and not _cut(snap.data))) and not being_written(path):
            return snap
        time.sleep(RECENT if shrank and _recent(snap.ident or (0, 0, 0, 0, 0)) else WATCH)
        again = snapshot(path)
        # Unchanged over the watch and nobody writing: settled, even if it looks cut (a section
        # damaged by hand is then refused, by name, by whoever reads it).
        if again.ident is not None and again == snap and not being_written(path):
            return again
        if time.monotonic() > deadline:
            raise ConfigError(
                f"{path} looks half-written and kept changing for {SETTLE_LIMIT:.0f} s "
                "(another program is writing it); nothing was changed",
                "save it in your editor (or wait for the program that writes it), then run "
                "the command again")
        snap = again


def being_written(path: Path) -> bool:
    """Another process holds the file open for writing (Linux: a read lease cannot be had
    then, fcntl(2) F_SETLEASE); an in-place save that pauses half-way is caught this way.
    False where this cannot be known (another OS, a network file system, not the owner)."""
    return posix.lease_refused(str(real_path(path)))


def _recent(ident: tuple[int, int, int, int, int]) -> bool:
    import time

    return abs(time.time_ns() - ident[3]) < RECENT * 1e9


def _cut(data: bytes | None) -> bool:
    """Our section's start marker with no end marker after it: a file cut short."""
    if not data:
        return False
    begin = data.find(b"# >>> rescale-ssh managed")
    return begin >= 0 and data.find(b"# <<< rescale-ssh managed", begin) < 0


def _memo(path: Path) -> Path:
    digest = hashlib.sha256(str(real_path(path)).encode()).hexdigest()[:24]
    return paths.state_dir() / "locks" / f"{digest}.written"


def _last_written(path: Path) -> tuple[int, int, int, int, int] | None:
    try:
        fields = tuple(int(word) for word in _memo(path).read_text().split())
    except (OSError, ValueError):
        return None
    return fields if len(fields) == 5 else None


def _remember(path: Path, ident: tuple[int, int, int, int, int]) -> None:
    from rescale_ssh import store

    with contextlib.suppress(OSError):
        store.write_atomic(str(_memo(path)), " ".join(str(part) for part in ident) + "\n",
                           durable=False)


def read_only(path: Path) -> bool:
    """The file, or the folder a new file would go in, may not be written by us: no write
    permission, a read-only file system, or no owner write bit (which root ignores, but a
    file its owner made read-only is still not ours to replace)."""
    target = real_path(path)
    if target.exists():
        return not _writable(target) or not _writable(target.parent)
    return target.parent.is_dir() and not _writable(target.parent)


def _writable(item: Path) -> bool:
    try:
        return os.access(item, os.W_OK) and bool(item.stat().st_mode & stat.S_IWUSR)
    except OSError:
        return False


def _read_only_error(path: Path, new: bytes, by_hand: Callable[[bytes], str] | None,
                     exc: OSError | None) -> ReadOnlyConfigError:
    target = real_path(path)
    where = f"{path}" if target == Path(os.path.abspath(path)) else f"{path} (a link to {target})"
    why = f" ({exc.strerror.lower()})" if exc is not None and exc.strerror else ""
    manual = by_hand(new) if by_hand is not None else None
    if manual:
        hint = (f"nothing was changed; add the lines printed above to {path} through the tool "
                "that manages it (home-manager: programs.ssh.extraConfig), replacing any earlier "
                "rescale-ssh lines: the managed section first in the file")
    else:
        hint = (f"nothing was changed; remove the rescale-ssh lines from {path} through the tool "
                "that manages it")
    return ReadOnlyConfigError(
        f"cannot change {where}: it is read-only{why}, managed by another tool (home-manager?)",
        hint, output=manual)


def remove_stale_temps(target: Path) -> list[str]:
    """Remove temp files of ``target`` left by writers that died (their process is gone).

    Called with the lock held; the process id in the name keeps a live writer's file safe even
    from a writer that took another lock (another XDG_STATE_HOME)."""
    prefix = f".{target.name}."
    removed: list[str] = []
    try:
        names = os.listdir(target.parent)
    except OSError:
        return removed
    for name in names:
        if not (name.startswith(prefix) and name.endswith(TEMP_SUFFIX)):
            continue
        pid = name[len(prefix):].split(".", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or alive(int(pid)):
            continue
        with contextlib.suppress(OSError):
            os.unlink(target.parent / name)
            removed.append(name)
    return removed


def _swap_in(path: Path, snap: Snapshot, data: bytes
             ) -> tuple[int, int, int, int, int] | None:
    """Put ``data`` in place of the file, unless it is no longer ``snap``: then None, and
    nothing of anyone's is lost. Returns the identity of the file written. Raises OSError."""
    target = real_path(path)
    folder = target.parent
    if not folder.is_dir():
        paths.private_dir(folder)
    try:
        info: os.stat_result | None = target.stat()
    except FileNotFoundError:
        info = None
    if (info is None) != (snap.ident is None):
        return None  # created or deleted since the read
    mode = stat.S_IMODE(info.st_mode) if info else 0o600
    owner = None
    if info is not None and posix.is_root():
        owner = (info.st_uid, info.st_gid)
    tmp = _temp(target, data, mode=mode, owner=owner)
    ours = os.stat(tmp).st_ino
    try:
        if snap.ident is None:
            try:
                os.link(tmp, target)  # only where there is still no file: never replaces one
            except FileExistsError:
                return None
        else:
            if snapshot(path) != snap:
                return None
            if exchange.swap(tmp, str(target)):
                # What we replaced is at tmp now: it must be the file we read (its inode first:
                # the quicker test keeps short the moment readers may see a stale copy).
                back = os.stat(tmp)
                if back.st_ino != snap.ident[1] or read_bytes(Path(tmp)) != snap.data:
                    _swap_back(tmp, target, ours)
                    return None
            else:
                # No swap here (NFS, some FUSE): check once more, as late as possible.
                if _ident(target.stat()) != snap.ident or read_bytes(path) != snap.data:
                    return None
                os.replace(tmp, target)
        written = os.stat(target)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    _fsync_dir(folder)
    return _ident(written) if written.st_ino == ours else None


def _swap_back(tmp: str, target: Path, unwanted: int) -> None:
    """Another program saved the file between our check and our swap (its file is at tmp now):
    put it back at the path, unless a newer save already replaced ours there. ``unwanted`` is
    the inode that must leave the path: ours at first, then any older save a newer one beat."""
    for _ in range(4):
        if os.stat(target).st_ino != unwanted:
            return  # a newer save than the one at tmp is at the path: it stays
        if not exchange.swap(tmp, str(target)):
            os.replace(tmp, target)
            return
        if os.stat(tmp).st_ino == unwanted:
            return  # ours (or the older save) is at tmp, to be deleted
        # A newer save replaced ours just before this swap: it is at tmp now, the older one at
        # the path. The older one must go.
        unwanted = os.stat(target).st_ino
    kept = target.with_name(f"{target.name}.rescale-ssh-conflict")
    os.replace(tmp, kept)
    raise ConfigError(f"other programs kept saving {target} while rescale-ssh wrote it; one "
                      f"version is at {target}, another at {kept}",
                      f"compare them, keep what you want in {target}, delete {kept}")


def _temp(target: Path, data: bytes, *, mode: int, owner: tuple[int, int] | None) -> str:
    """A new temp file next to ``target`` holding ``data``: made with O_EXCL|O_NOFOLLOW under
    a random name (store.create_temp), so nothing planted there is ever written through."""
    from rescale_ssh import store

    fd, tmp_name = store.create_temp(str(target.parent), f".{target.name}.{os.getpid()}.",
                                     TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            posix.fchmod(handle.fileno(), mode)
            if owner is not None:
                posix.fchown(handle.fileno(), *owner)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    return tmp_name


def replace_file(path: Path, data: bytes, *, mode: int) -> None:
    """Write a whole file the tool owns outright (a key, the profile file): temp file in its
    folder created with ``mode``, fsync, rename onto the target (a symlink keeps its link)."""
    try:
        _replace(real_path(path), data, mode=mode, owner=None, still=None)
    except OSError as exc:
        raise _write_error(path, exc) from None


def _replace(target: Path, data: bytes, *, mode: int, owner: tuple[int, int] | None,
             still: Callable[[], bool] | None) -> bool:
    """Temp file, fsync, then rename, unless ``still()`` says the target changed meanwhile."""
    tmp_name = _temp(target, data, mode=mode, owner=owner)
    try:
        if still is not None and not still():
            os.unlink(tmp_name)
            return False
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(target.parent)
    return True


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_error(path: Path, exc: OSError) -> ConfigError:
    if exc.errno == errno.ENOSPC:
        return ConfigError(f"cannot write {path}: no space left on the device",
                           "free some space; the file was left as it was")
    return ConfigError(f"cannot write {path}: {exc.strerror or exc}",
                       "the file was left as it was")
