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
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rescale_ssh import paths
from rescale_ssh.errors import ConfigError, ReadOnlyConfigError

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


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An inter-process lock for ``path``, kept in the tool's state folder (not in ~/.ssh)."""
    from filelock import FileLock, Timeout

    digest = hashlib.sha256(str(real_path(path)).encode()).hexdigest()[:24]
    lock_dir = paths.private_dir(paths.state_dir() / "locks")
    lock = FileLock(str(lock_dir / f"{digest}.lock"), timeout=LOCK_TIMEOUT, mode=0o600)
    try:
        with lock:
            yield
    except Timeout:
        raise ConfigError(
            f"another rescale-ssh is still changing {path} after {LOCK_TIMEOUT:.0f} s",
            "wait for it to finish, then run the command again",
        ) from None


def update(path: Path, compute: Callable[[bytes], bytes], *, dry_run: bool = False,
           by_hand: Callable[[bytes], str] | None = None) -> Change:
    """Apply ``compute`` to the file's bytes (``b""`` when missing) and write the result.

    ``by_hand`` turns the new content into what a user can add to a read-only file themselves.
    """
    check_secure(path)
    if dry_run:
        old = read_bytes(path)
        return Change(path, old or b"", compute(old or b""), existed=old is not None)
    if read_only(path):
        old = read_bytes(path)
        change = Change(path, old or b"", compute(old or b""), existed=old is not None)
        if not change.changed:
            return change  # nothing to write: a read-only file is no obstacle
        raise _read_only_error(path, change.new, by_hand, None)
    with locked(path):
        remove_stale_temps(real_path(path))
        for _ in range(_RETRIES):
            old = read_bytes(path)
            new = compute(old or b"")
            change = Change(path, old or b"", new, existed=old is not None)
            if not change.changed:
                return change
            try:
                written = _write_if_unchanged(path, old, new)
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                    raise _read_only_error(path, new, by_hand, exc) from None
                raise _write_error(path, exc) from None
            if written:
                return change
        raise ConfigError(
            f"{path} kept changing while rescale-ssh was writing it",
            "close the program that is editing it, then run the command again",
        )


def check_secure(path: Path) -> None:
    """Refuse a file, or the folder it is in, that other users may change.

    ssh's own rule for a config (readconf.c): writable by group or others, or owned by someone
    other than the user or root, is "Bad owner or permissions"; Debian's and Ubuntu's ssh allow
    the owner's private group (user-group-modes.patch: umask 002 makes configs 0664 there). The
    folder is held to the same rule: whoever may write it can swap the file. Root may manage
    another user's file (the owner is kept), so the owner is checked only for other users.
    """
    target = real_path(path)
    for item, what in ((target, "file"), (target.parent, "folder")):
        try:
            info = item.stat()
        except (FileNotFoundError, NotADirectoryError):
            continue
        if what == "folder":
            name = f"its folder {item}"
        else:
            name = "the file" if item == Path(os.path.abspath(path)) else f"its target {item}"
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o002 or (mode & 0o020 and not private_group(info.st_uid, info.st_gid)):
            who = {0o020: "its group", 0o002: "other users"}.get(mode & 0o022,
                                                               "its group and other users")
            raise ConfigError(
                f"refusing to change {path}: {name} is writable by {who} (mode {mode:04o}); "
                "ssh refuses a config others can change too (Bad owner or permissions)",
                f"run `chmod go-w {item}`, then run the command again",
            )
        uid = os.getuid()
        if uid != 0 and info.st_uid not in (0, uid):
            raise ConfigError(
                f"refusing to change {path}: {name} belongs to another user (uid {info.st_uid}); "
                "ssh refuses such a config too (Bad owner or permissions)",
                "keep your ssh config in a file and folder of your own, such as ~/.ssh/config",
            )


def private_group(uid: int, gid: int) -> bool:
    """Group ``gid`` is user ``uid``'s alone: no one else has it as their primary group or is
    listed in it, and the user is (Debian's user-group-modes.patch, secure_permissions)."""
    try:
        import grp
        import pwd

        group = grp.getgrgid(gid)
        owner = pwd.getpwuid(uid).pw_name
        primary = [entry.pw_uid for entry in pwd.getpwall() if entry.pw_gid == gid]
    except (ImportError, KeyError):
        return False
    if any(other != uid for other in primary) or group.gr_mem not in ([], [owner]):
        return False
    return bool(primary or group.gr_mem)


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
                "rescale-ssh section: the managed section first in the file, the hook block last")
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
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        with contextlib.suppress(OSError):
            os.unlink(target.parent / name)
            removed.append(name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process (EPERM): alive
    return True


def _write_if_unchanged(path: Path, expected: bytes | None, data: bytes) -> bool:
    """Write ``data`` unless the file no longer holds ``expected``; raises OSError."""
    target = real_path(path)
    folder = target.parent
    if not folder.is_dir():
        paths.private_dir(folder)
    try:
        info: os.stat_result | None = target.stat()
    except FileNotFoundError:
        info = None
    mode = stat.S_IMODE(info.st_mode) if info else 0o600
    owner = None
    if info is not None and hasattr(os, "fchown") and os.geteuid() == 0:
        owner = (info.st_uid, info.st_gid)
    return _replace(target, data, mode=mode, owner=owner,
                    still=lambda: read_bytes(path) == expected)


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
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=TEMP_SUFFIX,
                                    dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            if owner is not None:
                os.fchown(handle.fileno(), *owner)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
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
