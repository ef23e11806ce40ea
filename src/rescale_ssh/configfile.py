"""Locked, atomic, minimal writes of files the user owns (the ssh config, known_hosts).

Lessons from SkyPilot #912 and vscode-coder #504 (two writers, a lost config) and from coder's
and algo's atomic writes that replaced a dotfile manager's symlink: take a lock, read, compute,
write nothing when nothing changed, else write a temp file in the target's own folder, fsync,
check the file was not changed meanwhile, rename onto the symlink's target, fsync the folder.
Mode and owner of an existing file are kept; a new file is 0600 in a folder created 0700.
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
from rescale_ssh.errors import ConfigError

LOCK_TIMEOUT = 30.0
_RETRIES = 5


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
    lock = FileLock(str(lock_dir / f"{digest}.lock"), timeout=LOCK_TIMEOUT)
    try:
        with lock:
            yield
    except Timeout:
        raise ConfigError(
            f"another rescale-ssh is still changing {path} after {LOCK_TIMEOUT:.0f} s",
            "wait for it to finish, then run the command again",
        ) from None


def update(path: Path, compute: Callable[[bytes], bytes], *, dry_run: bool = False) -> Change:
    """Apply ``compute`` to the file's bytes (``b""`` when missing) and write the result."""
    if dry_run:
        old = read_bytes(path)
        return Change(path, old or b"", compute(old or b""), existed=old is not None)
    with locked(path):
        for _ in range(_RETRIES):
            old = read_bytes(path)
            new = compute(old or b"")
            change = Change(path, old or b"", new, existed=old is not None)
            if not change.changed:
                return change
            if _write_if_unchanged(path, old, new):
                return change
        raise ConfigError(
            f"{path} kept changing while rescale-ssh was writing it",
            "close the program that is editing it, then run the command again",
        )


def _write_if_unchanged(path: Path, expected: bytes | None, data: bytes) -> bool:
    target = real_path(path)
    folder = target.parent
    if not folder.is_dir():
        paths.private_dir(folder)
    try:
        info: os.stat_result | None = target.stat()
    except FileNotFoundError:
        info = None
    mode = stat.S_IMODE(info.st_mode) if info else 0o600
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".rescale-ssh.tmp",
                                        dir=folder)
    except OSError as exc:
        raise _write_error(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            if info is not None and hasattr(os, "fchown") and os.geteuid() == 0:
                os.fchown(handle.fileno(), info.st_uid, info.st_gid)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if read_bytes(path) != expected:
            os.unlink(tmp_name)
            return False
        os.replace(tmp_name, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise _write_error(path, exc) from None
    _fsync_dir(folder)
    return True


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_error(path: Path, exc: OSError) -> ConfigError:
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ConfigError(
            f"cannot write {path}: {exc.strerror.lower() if exc.strerror else exc}",
            "the file or its folder is read-only (managed by another tool?); "
            "`--dry-run` shows the lines to add by hand",
        )
    if exc.errno == errno.ENOSPC:
        return ConfigError(f"cannot write {path}: no space left on the device",
                           "free some space; the file was left as it was")
    return ConfigError(f"cannot write {path}: {exc.strerror or exc}",
                       "the file was left as it was")
