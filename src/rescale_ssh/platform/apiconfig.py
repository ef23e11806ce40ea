"""The Rescale CLI's profile file, ``~/.config/rescale/apiconfig``, shared with that tool.

An INI file, one section per profile, keys ``apikey`` and ``apibaseurl`` (rescale-api.md; the
newest Rescale client also writes ``api_key`` and ``platform_url``). Edited line by line: the
other sections, comments, order and line endings stay as they were; in the chosen section only
the lines of the keys set are replaced in place (whichever spelling is there, so no stale copy
of an old key is left under the other spelling) or added, ``apibaseurl`` before ``apikey`` as
Rescale's docs show them. Written atomically, mode 0600; the Rescale CLI's own folder is kept
at 0700 (it holds API keys).
"""

from __future__ import annotations

import configparser
import contextlib
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rescale_ssh import configfile, paths, posix
from rescale_ssh.errors import ConfigError
from rescale_ssh.settings import DEFAULT_PROFILE, KEY_NAMES, URL_NAMES

DEFAULT_SECTION = DEFAULT_PROFILE  # what every Rescale tool reads when no profile is chosen
API_KEY = KEY_NAMES[0]
BASE_URL = URL_NAMES[0]
SPELLINGS = {API_KEY: KEY_NAMES, BASE_URL: URL_NAMES}
# An option line as configparser reads it: the name ends at the first "=" or ":".
_OPTION = re.compile(r"(?P<name>[^=:]*?)(?P<pre>[ \t]*)(?P<sep>[=:])(?P<space>[ \t]*)"
                     r"(?P<value>.*?)(?P<end>\r?\n)?\Z", re.DOTALL)
# Lines as configparser reads them: split at "\n" only (str.splitlines also splits at \f,
# \x1c, U+2028 and more, which configparser keeps inside a value).
_LINE = re.compile(r"[^\n]*\n|[^\n]+")


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


def section_for(chosen: str | None) -> str:
    """The section ``login`` writes: the chosen profile, else ``[default]`` (the one Rescale's
    tools read), even in a file whose first section is another."""
    return chosen or DEFAULT_SECTION


def store(path: Path, section: str, values: dict[str, str]) -> None:
    """Set ``values`` (canonical names: ``apibaseurl``, ``apikey``) in ``section``, created at
    the end when missing; new lines go in the order of ``values``."""
    _check_name(section)
    for value in values.values():
        if not value.isprintable() or value != value.strip():
            raise ConfigError("refusing to write a value with line breaks or spaces around it")
    _edit(path, lambda lines, newline: _set(lines, section, values, newline))


def remove(path: Path, section: str, keys: tuple[str, ...]) -> bool:
    """Remove ``keys`` (every spelling) from ``section``; True when something was removed."""
    removed: list[bool] = []
    names = _spellings(keys)

    def compute(lines: list[str], newline: str) -> list[str]:
        kept = _drop(lines, section, names)
        removed.append(len(kept) != len(lines))
        return kept

    if not path.exists():
        return False
    _edit(path, compute)
    return removed[-1]


def _spellings(keys: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(name for key in keys for name in SPELLINGS.get(key, (key,)))


def _check_name(section: str) -> None:
    if not section or not section.isprintable() or any(c in section for c in "[]\n\r"):
        raise ConfigError(f"invalid profile name {section!r}",
                          "use letters, digits, '-' and '_'")


HEADER, OPTION, CONTINUATION, OTHER = "header", "option", "continuation", "other"


def _classify(lines: list[str]) -> list[tuple[str, str | None]]:
    """Each line as configparser's reader sees it (RawConfigParser defaults): a section header
    (its name), an option (its name, lower case), a continuation of the option above (indented
    deeper), or other (blank, comment, a line it would refuse). Mirrors ``_read`` so that a
    line is never taken for a key the Rescale CLI would read as part of a value."""
    kinds: list[tuple[str, str | None]] = []
    in_section = False
    option: str | None = None
    indent = 0
    for line in lines:
        text = line.strip()
        if not text or text.startswith(("#", ";")):
            kinds.append((OTHER, None))  # neither ends a value (empty lines belong to it)
            continue
        level = len(line) - len(line.lstrip())
        if in_section and option and level > indent:
            kinds.append((CONTINUATION, None))
            continue
        indent = level
        header = configparser.RawConfigParser.SECTCRE.match(text)
        if header:
            in_section, option = True, None
            kinds.append((HEADER, header["header"]))
            continue
        found = _OPTION.match(text)
        if in_section and found and found["name"]:
            option = found["name"].lower()
            kinds.append((OPTION, option))
        else:
            kinds.append((OTHER, None))
    return kinds


def _spans(kinds: list[tuple[str, str | None]], section: str) -> tuple[int, int] | None:
    """Lines ``[start, stop)`` of the section's body (after its first header)."""
    start = None
    for index, (kind, name) in enumerate(kinds):
        if kind != HEADER:
            continue
        if start is not None:
            return start, index
        if name == section:
            start = index + 1
    return (start, len(kinds)) if start is not None else None


def _drop(lines: list[str], section: str, keys: tuple[str, ...]) -> list[str]:
    """The lines without the section's ``keys`` lines and their continuation lines."""
    kinds = _classify(lines)
    span = _spans(kinds, section)
    if span is None:
        return lines
    start, stop = span
    kept: list[str] = []
    skipping = False
    for line, (kind, name) in zip(lines[start:stop], kinds[start:stop], strict=True):
        if skipping and kind == CONTINUATION:
            continue
        skipping = kind == OPTION and name in keys
        if not skipping:
            kept.append(line)
    return [*lines[:start], *kept, *lines[stop:]]


def _set(lines: list[str], section: str, values: dict[str, str], newline: str) -> list[str]:
    kinds = _classify(lines)
    span = _spans(kinds, section)
    if span is None:
        if lines and not lines[-1].endswith("\n"):
            lines = [*lines[:-1], lines[-1] + newline]
        gap = [newline] if lines and lines[-1].strip() else []
        new = [f"{key} = {value}{newline}" for key, value in values.items()]
        return [*lines, *gap, f"[{section}]{newline}", *new]
    start, stop = span
    canonical = {name: key for key in values for name in SPELLINGS.get(key, (key,))}
    body: list[str] = []
    at: dict[str, int] = {}  # key → index in body of its (last) line
    skipping = False
    for line, (kind, name) in zip(lines[start:stop], kinds[start:stop], strict=True):
        if skipping and kind == CONTINUATION:
            continue  # the old value's continuation lines go with it
        key = canonical.get(name or "") if kind == OPTION else None
        skipping = key is not None
        if key is None:
            body.append(line)
        else:
            body.append(_replaced(line, values[key]))
            at[key] = len(body) - 1
    head = lines[start - 1]
    if not head.endswith("\n"):
        head += newline
    order = list(values)
    for index, key in enumerate(order):
        if key in at:
            continue
        # Next to its neighbours: after the keys that come before it, else before the ones
        # after it, else right after the header.
        before = [at[k] for k in order[:index] if k in at]
        after = [at[k] for k in order[index + 1:] if k in at]
        where = max(before) + 1 if before else min(after) if after else 0
        if where and not body[where - 1].endswith("\n"):
            body[where - 1] += newline
        body.insert(where, f"{key} = {values[key]}{newline}")
        at = {k: i + (i >= where) for k, i in at.items()}
        at[key] = where
    return [*lines[: start - 1], head, *body, *lines[stop:]]


def _replaced(line: str, value: str) -> str:
    """The line with its value replaced; its name's spelling, separator, spacing and line
    ending stay."""
    found = _OPTION.match(line)
    assert found is not None  # _key matched it
    space = found["space"] or (" " if found["pre"] else "")
    return f"{line[: found.end('sep')]}{space}{value}{found['end'] or ''}"


Edit = Callable[[list[str], str], list[str]]


def _edit(path: Path, compute: Edit) -> None:
    folder = path.parent
    if not folder.is_dir():
        paths.private_dir(folder)  # every folder made here is 0700
    elif (path == paths.home() / ".config" / "rescale" / "apiconfig"
          and folder.stat().st_uid == posix.uid() and stat.S_IMODE(folder.stat().st_mode) & 0o077):
        # ~/.config/rescale/ holds API keys and nothing else. A RESCALE_CONFIG_FILE's folder
        # may hold anything (a project, $HOME): its mode is the user's business.
        with contextlib.suppress(OSError):
            os.chmod(folder, 0o700)
    with configfile.locked(path):
        try:
            old = path.read_bytes()
        except FileNotFoundError:
            old = b""
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
        text = old.decode("utf-8", "surrogateescape")
        newline = "\r\n" if "\r\n" in text else "\n"
        lines = _LINE.findall(text)
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
