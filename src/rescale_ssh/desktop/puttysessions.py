"""PuTTY saved sessions written, replaced and removed, only ever our own.

On Linux and macOS a session is a file in PuTTY's sessions folder (putty.sessions_dir), made
0600 in a folder made 0700, as PuTTY makes them; on Windows a key under
``HKEY_CURRENT_USER\\Software\\SimonTatham\\PuTTY\\Sessions`` (winreg). A session is ours when
the record this module keeps of it (``<state>/putty/``: where it is, and a SHA-256 of what was
written) matches what is there now. A session of the same name that someone else made, or one
the user changed and saved again in PuTTY, is not ours: it is never replaced (unless asked to)
nor removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from rescale_ssh import paths, store
from rescale_ssh.desktop import putty
from rescale_ssh.desktop.putty import Session
from rescale_ssh.errors import ConfigError

RECORD_KEYS = frozenset(("session", "where", "sha256"))
ADDED, UPDATED, UNCHANGED = "added", "updated", "unchanged"


class Backend(Protocol):
    def where(self, name: str) -> str: ...
    def read(self, name: str) -> bytes | None: ...
    def write(self, item: Session) -> bytes: ...
    def delete(self, name: str) -> None: ...
    def render(self, item: Session) -> bytes: ...


class Files:
    """PuTTY's session files (Linux, macOS)."""

    def __init__(self, folder: str | None = None) -> None:
        self.folder = folder or str(putty.sessions_dir())

    def where(self, name: str) -> str:
        return os.path.join(self.folder, putty.file_name(name))

    def read(self, name: str) -> bytes | None:
        path = self.where(name)
        try:
            with open(path, "rb") as handle:
                return handle.read(1024 * 1024)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(f"cannot read the PuTTY session {path}: {exc.strerror or exc}",
                              "check the file's owner and mode") from None

    def render(self, item: Session) -> bytes:
        return putty.render_file(item).encode("utf-8")

    def write(self, item: Session) -> bytes:
        path = self.where(item.name)
        data = self.render(item)
        try:
            store.write_atomic(path, data.decode("utf-8"), mode=0o600)
        except OSError as exc:
            raise ConfigError(f"cannot write the PuTTY session {path}: {exc.strerror or exc}",
                              "check the folder's owner and mode") from None
        return data

    def delete(self, name: str) -> None:
        try:
            store.remove(self.where(name))
        except OSError as exc:
            raise ConfigError(f"cannot remove the PuTTY session {self.where(name)}: "
                              f"{exc.strerror or exc}", "check the folder's owner and mode"
                              ) from None


class Registry:
    """Windows PuTTY's sessions in the registry, through ``winreg`` (given: the module loads
    only on Windows, and tests hand in a stand-in)."""

    def __init__(self, winreg: Any) -> None:
        self.winreg = winreg

    def _subkey(self, name: str) -> str:
        return f"{putty.REGISTRY_KEY}\\{putty.registry_name(name)}"

    def where(self, name: str) -> str:
        return f"HKEY_CURRENT_USER\\{self._subkey(name)}"

    def read(self, name: str) -> bytes | None:
        reg = self.winreg
        try:
            handle = reg.OpenKey(reg.HKEY_CURRENT_USER, self._subkey(name), 0, reg.KEY_READ)
        except FileNotFoundError:
            return None
        values = []
        with handle:
            index = 0
            while True:
                try:
                    key, value, kind = reg.EnumValue(handle, index)
                except OSError:  # no more values
                    break
                values.append((str(key), int(kind), str(value)))
                index += 1
        return _canonical(values)

    def render(self, item: Session) -> bytes:
        reg = self.winreg
        return _canonical([(key, int(reg.REG_DWORD if isinstance(value, int) else reg.REG_SZ),
                            str(value)) for key, value in item.values()])

    def write(self, item: Session) -> bytes:
        reg = self.winreg
        self.delete(item.name)  # none of the values of what was there stays
        with reg.CreateKeyEx(reg.HKEY_CURRENT_USER, self._subkey(item.name), 0,
                             reg.KEY_WRITE) as handle:
            for key, value in item.values():
                kind = reg.REG_DWORD if isinstance(value, int) else reg.REG_SZ
                reg.SetValueEx(handle, key, 0, kind, value)
        return self.render(item)

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.winreg.DeleteKey(self.winreg.HKEY_CURRENT_USER, self._subkey(name))


def _canonical(values: list[tuple[str, int, str]]) -> bytes:
    """A registry key's values as bytes to compare: sorted, one ``name type value`` a line."""
    return "".join(f"{key}\t{kind}\t{value}\n" for key, kind, value in sorted(values)
                   ).encode("utf-8")


def default_backend() -> Backend:
    """Where PuTTY reads sessions on this system."""
    from rescale_ssh import posix

    if posix.windows():
        import importlib

        try:
            return Registry(importlib.import_module("winreg"))
        except ImportError:  # (a Python built without it)
            raise ConfigError("cannot reach the Windows registry, where PuTTY keeps its "
                              "sessions (this Python has no winreg module)",
                              "write a .reg file to import instead: --reg FILE") from None
    return Files()


# -- the records that say which sessions are ours -------------------------------------------


RECORDS = "putty"  # the records' folder in the state folder (uninstall removes it)


def _record_path(name: str) -> str:
    return os.path.join(str(paths.state_dir()), RECORDS, store.safe_name("", name))


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _ours(backend: Backend, name: str, current: bytes) -> bool:
    record = store.read_record(_record_path(name), RECORD_KEYS)
    return (record is not None and store.UNEXPECTED not in record
            and store.UNREADABLE not in record
            and record.get("session") == name and record.get("where") == backend.where(name)
            and record.get("sha256") == _digest(current))


def _remember(backend: Backend, name: str, data: bytes) -> None:
    store.write_atomic(_record_path(name), store.format_record(
        {"session": name, "where": backend.where(name), "sha256": _digest(data)}))


def _forget_record(name: str) -> None:
    store.remove(_record_path(name))


@dataclass(frozen=True)
class Saved:
    name: str
    where: str
    state: str  # ADDED, UPDATED or UNCHANGED
    replaced: bool  # a session that was not ours was replaced (replace=True)
    text: str  # what is (or would be) written, for --dry-run


def save(backend: Backend, item: Session, *, replace: bool = False,
         dry_run: bool = False) -> Saved:
    """Write ``item`` unless a session of its name that is not ours is there (ConfigError),
    or, with ``replace``, over it."""
    where = backend.where(item.name)
    current = backend.read(item.name)
    new = backend.render(item)
    # The very bytes we would write are ours to keep (a record lost with the state folder).
    ours = current is None or current == new or _ours(backend, item.name, current)
    if not ours and not replace:
        raise ConfigError(
            f"the PuTTY session {item.name} ({where}) was not written by rescale-ssh, or was "
            "changed in PuTTY since: not replacing it",
            "rename or delete that session in PuTTY, or pass --replace to overwrite it")
    state = ADDED if current is None else UNCHANGED if current == new else UPDATED
    text = new.decode("utf-8")
    if not dry_run and state != UNCHANGED:
        backend.write(item)
    if not dry_run:
        _remember(backend, item.name, new)
    return Saved(item.name, where, state, replaced=not ours, text=text)


def recorded(job: str) -> bool:
    """Whether a session of ours was written for ``job`` (and not dropped since)."""
    return store.read_record(_record_path(putty.session_name(job)), RECORD_KEYS) is not None


REMOVED, CHANGED, GONE = "removed", "changed", "gone"


@dataclass(frozen=True)
class Dropped:
    job: str
    name: str
    where: str
    outcome: str  # REMOVED; CHANGED (kept: not ours any more); GONE (already deleted)


def drop(backend: Backend | None, jobs: Iterable[str], *, dry_run: bool = False
         ) -> list[Dropped]:
    """Remove the sessions of ``jobs`` that are ours; a job with no record is left alone
    (and not listed): no session of ours was made for it. ``backend`` None: the system's,
    reached only when there is a record (a job with none never needs the registry)."""
    dropped = []
    for job in jobs:
        name = putty.session_name(job)
        if not recorded(job):
            continue
        backend = backend or default_backend()
        current = backend.read(name)
        if current is None:
            outcome = GONE
        elif _ours(backend, name, current):
            outcome = REMOVED
            if not dry_run:
                backend.delete(name)
        else:
            outcome = CHANGED
        if not dry_run:
            _forget_record(name)
        dropped.append(Dropped(job, name, backend.where(name), outcome))
    return dropped


def drop_all(backend: Backend | None = None, *, dry_run: bool = False) -> list[Dropped]:
    """`uninstall`: every session of ours goes (those changed since stay)."""
    folder = os.path.join(str(paths.state_dir()), RECORDS)
    try:
        names = sorted(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    jobs = []
    for file in names:
        record = store.read_record(os.path.join(folder, file), RECORD_KEYS) or {}
        name = record.get("session", "")
        job = name[len("rescale-"):] if name.startswith("rescale-") else ""
        if job.isascii() and job.isalnum():
            jobs.append(job)
    return drop(backend, jobs, dry_run=dry_run)
