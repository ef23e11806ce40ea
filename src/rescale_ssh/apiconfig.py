"""The Rescale CLI's profile file, ``~/.config/rescale/apiconfig``, shared with that tool.

An INI file, one section per profile, keys ``apikey`` and ``apibaseurl`` (rescale-api.md).
Edited line by line: the other sections, comments, order and line endings stay as they were;
only the chosen section's two keys are replaced, added or removed. Written atomically, mode
0600 in a folder kept at 0700 (it holds API keys).
"""

from __future__ import annotations

import configparser
import contextlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rescale_ssh import configfile, paths
from rescale_ssh.errors import ConfigError

DEFAULT_SECTION = "prod"  # what the Rescale CLI's own examples use
API_KEY = "apikey"
BASE_URL = "apibaseurl"


@dataclass(frozen=True)
class Profiles:
    path: Path
    sections: list[str]  # in file order

    def has(self, name: str) -> bool:
        return name in self.sections


def read(path: Path) -> Profiles:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Profiles(path, [])
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {type(exc).__name__}",
                          "fix or remove the file") from None
    parser = configparser.RawConfigParser()
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"cannot read {path}: {first}", "fix or remove the file") from None
    return Profiles(path, parser.sections())


def section_for(path: Path, chosen: str | None) -> str:
    """The section ``login`` writes: the chosen profile, else the one the tools read by default
    (the first), else ``prod``."""
    if chosen:
        return chosen
    sections = read(path).sections
    return sections[0] if sections else DEFAULT_SECTION


def store(path: Path, section: str, values: dict[str, str]) -> None:
    """Set ``values`` in ``section`` (created at the end when missing)."""
    _check_name(section)
    for value in values.values():
        if not value.isprintable() or value != value.strip():
            raise ConfigError("refusing to write a value with line breaks or spaces around it")
    _edit(path, lambda lines, newline: _set(lines, section, values, newline))


def remove(path: Path, section: str, keys: tuple[str, ...]) -> bool:
    """Remove ``keys`` from ``section``; True when something was removed."""
    removed: list[bool] = []

    def compute(lines: list[str], newline: str) -> list[str]:
        kept = _unset(lines, section, keys)
        removed.append(len(kept) != len(lines))
        return kept

    if not path.exists():
        return False
    _edit(path, compute)
    return removed[-1]


def _check_name(section: str) -> None:
    if not section or not section.isprintable() or any(c in section for c in "[]\n\r"):
        raise ConfigError(f"invalid profile name {section!r}",
                          "use letters, digits, '-' and '_'")


def _header(line: str) -> str | None:
    text = line.strip()
    if text.startswith("[") and "]" in text:
        return text[1 : text.index("]")]
    return None


def _key(line: str) -> str | None:
    if not line or line[0] in " \t#;" or line.lstrip().startswith(("#", ";", "[")):
        return None
    for separator in ("=", ":"):
        if separator in line:
            return line.split(separator, 1)[0].strip().lower()
    return None


def _spans(lines: list[str], section: str) -> tuple[int, int] | None:
    """Lines ``[start, stop)`` of the section's body (after its header)."""
    start = None
    for index, line in enumerate(lines):
        name = _header(line)
        if name is None:
            continue
        if start is not None:
            return start, index
        if name == section:
            start = index + 1
    return (start, len(lines)) if start is not None else None


def _drop(lines: list[str], start: int, stop: int, keys: tuple[str, ...]) -> list[str]:
    """The body without the ``keys`` lines and their continuation lines (indented)."""
    kept: list[str] = []
    skipping = False
    for line in lines[start:stop]:
        if skipping and line[:1] in (" ", "\t") and line.strip():
            continue
        skipping = _key(line) in keys
        if not skipping:
            kept.append(line)
    return kept


def _set(lines: list[str], section: str, values: dict[str, str], newline: str) -> list[str]:
    new = [f"{key} = {value}{newline}" for key, value in values.items()]
    span = _spans(lines, section)
    if span is None:
        if lines and not lines[-1].endswith(("\n", "\r")):
            lines = [*lines[:-1], lines[-1] + newline]
        gap = [newline] if lines and lines[-1].strip() else []
        return [*lines, *gap, f"[{section}]{newline}", *new]
    start, stop = span
    body = _drop(lines, start, stop, tuple(values))
    if body and not body[-1].endswith(("\n", "\r")):
        body[-1] += newline
    # New values right after the header; trailing blank lines keep separating sections.
    return [*lines[:start], *new, *body, *lines[stop:]]


def _unset(lines: list[str], section: str, keys: tuple[str, ...]) -> list[str]:
    span = _spans(lines, section)
    if span is None:
        return lines
    start, stop = span
    return [*lines[:start], *_drop(lines, start, stop, keys), *lines[stop:]]


Edit = Callable[[list[str], str], list[str]]


def _edit(path: Path, compute: Edit) -> None:
    folder = path.parent
    if not folder.is_dir():
        paths.private_dir(folder)
    elif folder.stat().st_uid == os.getuid() and stat.S_IMODE(folder.stat().st_mode) & 0o077:
        with contextlib.suppress(OSError):
            os.chmod(folder, 0o700)  # rescale/ holds API keys; nothing else lives there
    with configfile.locked(path):
        try:
            old = path.read_bytes()
        except FileNotFoundError:
            old = b""
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
        text = old.decode("utf-8", "surrogateescape")
        newline = "\r\n" if "\r\n" in text else "\n"
        lines = text.splitlines(keepends=True)
        new = "".join(compute(lines, newline)).encode("utf-8", "surrogateescape")
        _check(new, path)
        if new != old or stat.S_IMODE(_mode(path)) != 0o600:
            _replace(path, new)


def _check(data: bytes, path: Path) -> None:
    """What we write must still be readable by configparser (the Rescale CLI reads it so)."""
    try:
        configparser.RawConfigParser().read_string(data.decode("utf-8", "replace"))
    except configparser.Error:
        raise ConfigError(f"{path} would not be a valid profile file after the change",
                          "fix the file by hand (duplicate sections or keys?)") from None


def _mode(path: Path) -> int:
    try:
        return path.stat().st_mode
    except FileNotFoundError:
        return 0o600


def _replace(path: Path, data: bytes) -> None:
    from rescale_ssh import configfile

    configfile.replace_file(path, data, mode=0o600)
