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
    if not os.path.isdir(path):
        os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def read_record(path: str) -> dict[str, str] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read(64 * 1024)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return {"\0unreadable": path}
    record: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key and not key.startswith("#"):
            record[key.strip()] = value.strip()
    return record


def format_record(record: dict[str, str]) -> str:
    lines = []
    for key, value in record.items():
        # One line per value: a newline here would forge another key.
        clean = "".join(c if c.isprintable() else " " for c in value)
        lines.append(f"{key}={clean}")
    return "\n".join(lines) + "\n"


def write_atomic(path: str, data: str) -> bool:
    """Write ``data`` unless the file already holds exactly that; True when it wrote."""
    try:
        with open(path, encoding="utf-8") as handle:
            if handle.read() == data:
                return False
    except (OSError, UnicodeDecodeError):
        pass
    ensure_dir(os.path.dirname(path))
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(data)
            handle.flush()
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
