"""Small tool-owned files: ``key=value`` records, atomic writes, per-name locks.

Standard library only and cheap to import (the ssh hook reads a record on every run): plain
``str`` paths (pathlib imports re, fnmatch and urllib), no json (it imports re), no filelock.
Files are created 0600 in folders created 0700.
"""

from __future__ import annotations

import os
import zlib


def safe_name(prefix: str, name: str) -> str:
    """A file name for ``name`` that stays distinct on case-insensitive file systems (macOS):
    job IDs are case-sensitive, so a checksum of the exact bytes is appended."""
    return f"{prefix}{name}-{zlib.crc32(name.encode()):08x}"


def ensure_dir(path: str) -> str:
    """Create ``path`` as needed; every folder created here, parents included, is 0700
    (``os.makedirs`` would give the parents the umask's mode, e.g. 0755)."""
    missing = []
    folder = path
    while folder and not os.path.isdir(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            if not os.path.isdir(folder):
                raise
    return path


UNREADABLE = "\0unreadable"
UNEXPECTED = "\0unexpected"  # the first line that is not a key=value line the file may hold


def read_record(path: str, keys: frozenset[str] | None = None) -> dict[str, str] | None:
    """``key=value`` lines, exactly as written by :func:`format_record`: lines end at ``\\n``
    and nothing else is stripped (a ``\\r`` or U+2028 inside a value stays there, to be refused).
    A line that is not ``key=value`` for one of ``keys``, or repeats a key, is reported under
    :data:`UNEXPECTED`: the file was edited by hand or tampered with."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            text = handle.read(64 * 1024)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return {UNREADABLE: path}
    record: dict[str, str] = {}
    for line in text.split("\n"):
        line = line[:-1] if line.endswith("\r") else line  # a CRLF file (Windows' text mode)
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if sep and key not in record and (keys is None or key in keys):
            record[key] = value
        else:
            record.setdefault(UNEXPECTED, line)
    return record


def format_record(record: dict[str, str]) -> str:
    lines = []
    for key, value in record.items():
        # One line per value: a newline here would forge another key.
        clean = "".join(c if c.isprintable() else " " for c in value)
        lines.append(f"{key}={clean}")
    return "\n".join(lines) + "\n"


def write_atomic(path: str, data: str, *, durable: bool = True, mode: int = 0o600) -> bool:
    """Write ``data`` unless the file already holds exactly that (with ``mode``); True when
    it wrote.

    Readers see the old file or the new one, never a mix (rename). ``durable=False`` skips the
    fsync, for files that are only of use for a minute anyway."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            if handle.read() == data and (os.fstat(handle.fileno()).st_mode & 0o777) == mode:
                return False
    except (OSError, UnicodeDecodeError):
        pass
    ensure_dir(os.path.dirname(path))
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        if mode != 0o600:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:  # noqa: SIM105 - contextlib is one import more on the hook's path
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return True


def remove(path: str) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


class Locked:
    """``with Locked(path, timeout) as got:`` an exclusive flock(2); ``got`` is False when it
    was not had within ``timeout``. flock locks die with their process: a crashed holder never
    blocks anyone."""

    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self.fd = -1
        self.held = False

    def __enter__(self) -> bool:
        import time

        ensure_dir(os.path.dirname(self.path))
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no inter-process lock for the hook
            return True
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.held = True
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.02)

    def __exit__(self, *exc: object) -> None:
        if self.held:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
