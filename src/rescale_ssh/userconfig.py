"""The user's settings file: ``$XDG_CONFIG_HOME/rescale-ssh/config.toml``.

It holds what would otherwise be given to every command: ``identity``, ``platform``,
``profile`` and ``ssh_config``, read after the flags and the environment (settings.py). Only a
strict subset of TOML is read, the same on every Python (``tomllib`` is 3.11+ and cannot keep
comments on a rewrite anyway): ``key = "basic string"`` or ``key = 'literal string'`` lines,
each with an optional trailing ``# comment``, comment lines and blank lines. Anything else is a
ConfigError naming the file and line. ``config set`` and ``config unset`` change one line and
keep every other byte, written atomically (store.py) with mode 0600 in a 0700 folder.

The file is refused, as ssh refuses its own config (readconf.c), unless it is the user's (or
root's) and nobody else can write it or a folder above it (ownership.py's rules): it chooses
the platform the API key is sent to. The hook never reads it: ``install`` copies what the hook
needs into hook.conf.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from rescale_ssh import ownership, paths, posix, store
from rescale_ssh.errors import ConfigError, UsageError, shorten

KEYS = ("identity", "platform", "profile", "ssh_config", "multiplex")
MAX_SIZE = 64 * 1024
_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}
SUBSET = ('lines `key = "value"` (keys: ' + ", ".join(KEYS) + "), `# comments` and blank "
          "lines")


def path() -> str:
    return str(paths.settings_file())


@dataclass(frozen=True)
class Line:
    """One line of the file as read: a setting (key, value), or something kept as it is."""

    text: str  # without its line end
    end: str  # "\n", "\r\n" or "" (the last line without one)
    key: str | None = None
    value: str = ""
    comment: str = ""  # a trailing "# ..." (with the blanks before it), kept on a rewrite


@dataclass(frozen=True)
class Document:
    path: str
    lines: tuple[Line, ...]
    exists: bool

    def values(self) -> dict[str, tuple[str, int]]:
        """Each setting: (value, line number)."""
        return {line.key: (line.value, number) for number, line in enumerate(self.lines, 1)
                if line.key is not None}

    def text(self) -> str:
        return "".join(line.text + line.end for line in self.lines)


def _error(where: str, problem: str) -> ConfigError:
    return ConfigError(f"{where}: {problem}",
                       f"the file may hold only {SUBSET}: fix or remove that line")


def _string(rest: str, where: str) -> tuple[str, str]:
    """A TOML basic or literal string at the start of ``rest``: (value, what follows)."""
    quote = rest[0]
    out: list[str] = []
    i = 1
    while i < len(rest):
        char = rest[i]
        if char == quote:
            return "".join(out), rest[i + 1:]
        if (ord(char) < 32 and char != "\t") or ord(char) == 127:
            raise _error(where, "a control character in a string")
        if char == "\\" and quote == '"':
            code = rest[i + 1: i + 2]
            if code in _ESCAPES:
                out.append(_ESCAPES[code])
                i += 2
                continue
            if code in ("u", "U"):
                width = 4 if code == "u" else 8
                digits = rest[i + 2: i + 2 + width]
                if len(digits) == width and all(c in "0123456789abcdefABCDEF" for c in digits):
                    number = int(digits, 16)
                    if number <= 0x10FFFF and not 0xD800 <= number <= 0xDFFF:
                        out.append(chr(number))
                        i += 2 + width
                        continue
            raise _error(where, f"an invalid escape {shorten(rest[i:i + 2])}")
        out.append(char)
        i += 1
    raise _error(where, "a string that does not end on its line (no closing quote)")


def _parse_line(text: str, where: str) -> Line:
    body = text.strip(" \t")
    if not body or body.startswith("#"):
        return Line(text, "")
    key = ""
    i = 0
    while i < len(body) and body[i] in _BARE:
        key += body[i]
        i += 1
    rest = body[i:].lstrip(" \t")
    if not key or not rest.startswith("="):
        if body.startswith("["):
            raise _error(where, "a [table] (the file has no sections)")
        raise _error(where, f"not a `key = \"value\"` line: {shorten(body)}")
    rest = rest[1:].lstrip(" \t")
    if not rest or rest[0] not in "\"'":
        raise _error(where, f"the value of {key} is not a quoted string: {shorten(rest)}")
    if rest.startswith(('"""', "'''")):
        raise _error(where, "a multi-line string")
    value, after = _string(rest, where)
    tail = after.lstrip(" \t")
    if tail and not tail.startswith("#"):
        raise _error(where, f"more after the value of {key}: {shorten(tail)}")
    if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in tail):
        raise _error(where, "a control character in a comment")
    return Line(text, "", key, value, after if tail else "")


def parse(data: str, where: str) -> tuple[Line, ...]:
    lines: list[Line] = []
    seen: dict[str, int] = {}
    chunks = data.split("\n")
    for number, chunk in enumerate(chunks, 1):
        end = "\n" if number < len(chunks) else ""
        if chunk.endswith("\r"):
            chunk, end = chunk[:-1], "\r" + end
        if number == len(chunks) and not chunk:
            break
        if "\r" in chunk:
            raise _error(f"{where} line {number}", "a carriage return inside a line")
        line = _parse_line(chunk, f"{where} line {number}")
        if line.key is not None:
            if line.key in seen:
                raise _error(f"{where} line {number}",
                             f"{line.key} is set twice (also on line {seen[line.key]})")
            seen[line.key] = number
        lines.append(Line(chunk, end, line.key, line.value, line.comment))
    return tuple(lines)


def _check_safe(file: str) -> None:
    """Refuse a file that someone else could have written (readconf.c's rule for ssh's own
    config: owned by the user or root, writable by no one else; ownership.py's for the folders
    above it)."""
    uid = posix.euid()
    if uid is None:  # pragma: no cover - Windows: no owners to compare
        return
    target = os.path.realpath(file)
    for name, st in ((file, os.lstat(file)), (target, os.stat(target))):
        if st.st_uid not in (uid, 0):
            raise ConfigError(f"{name} is owned by {ownership.describe(st.st_uid)}, not by you "
                              f"({ownership.describe(uid)}): it chooses where your API key is "
                              "sent", f"remove it (`rm {name}`) and set what you need again "
                              "with `rescale-ssh config set`")
    st = os.stat(target)
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{target} is not a regular file", f"remove it (`rm {target}`)")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(f"{target} is writable by group or others (mode "
                          f"{stat.S_IMODE(st.st_mode):04o}): it chooses where your API key "
                          "is sent", f"run `chmod go-w {target}`")
    for where in dict.fromkeys((file, target)):
        found = ownership.parent_problem(where, uid)
        if found is not None:
            folder = os.stat(found.path)
            why = (f"is owned by {ownership.describe(folder.st_uid)}"
                   if folder.st_uid not in (uid, 0) else
                   f"is writable by group or others (mode {stat.S_IMODE(folder.st_mode):04o})")
            raise ConfigError(f"{found.path} (a folder above the settings file {where}) {why}: "
                              "others could replace the file",
                              f"run `chmod go-w {found.path}`, or set XDG_CONFIG_HOME to a "
                              "folder of your own")


def load(file: str | None = None) -> Document:
    """The file as it is (a missing one is empty); ConfigError for one outside the subset,
    unsafe, or unreadable."""
    file = file or path()
    try:
        os.lstat(file)
    except FileNotFoundError:
        return Document(file, (), exists=False)
    except OSError as exc:
        raise ConfigError(f"cannot read {file}: {exc.strerror}") from None
    _check_safe(file)
    try:
        with open(file, "rb") as handle:
            raw = handle.read(MAX_SIZE + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {file}: {exc.strerror}",
                          f"check its permissions (`ls -l {file}`)") from None
    if len(raw) > MAX_SIZE:
        raise ConfigError(f"{file} is larger than {MAX_SIZE // 1024} KiB",
                          f"it may hold only {SUBSET}")
    try:
        data = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise _error(f"{file} line {line}", "bytes that are not UTF-8") from None
    return Document(file, parse(data, file), exists=True)


def read() -> dict[str, tuple[str, str]]:
    """Each setting the file holds: (value, where: "FILE line N"). Unknown keys are errors."""
    return _known(load())


def _known(document: Document) -> dict[str, tuple[str, str]]:
    found = {}
    for key, (value, number) in document.values().items():
        where = f"{document.path} line {number}"
        if key not in KEYS:
            raise ConfigError(f"unknown setting {key!r} in {where}",
                              f"known settings: {', '.join(KEYS)}; remove the line, or run "
                              f"`rescale-ssh config unset {key}`")
        found[key] = (value, where)
    return found


def quoted(value: str) -> str:
    """A TOML basic string that reads back as ``value``."""
    out = []
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 32 or ord(char) == 127:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


@dataclass(frozen=True)
class Edit:
    path: str
    key: str
    before: str | None  # the value the file held (None: none)
    after: str | None  # the value it holds now (None: removed)

    @property
    def changed(self) -> bool:
        return self.before != self.after


def known_key(key: str) -> str:
    if key not in KEYS:
        raise UsageError(f"unknown setting {key!r}", f"known settings: {', '.join(KEYS)}")
    return key


def _write(document: Document, lines: list[Line]) -> None:
    owner = ownership.foreign_owner(document.path)
    if owner is not None:
        raise ConfigError(f"running as root on the files of {ownership.describe(owner)} "
                          f"({document.path}): what root writes there would be root's",
                          "run rescale-ssh as that user, without sudo")
    text = "".join(line.text + line.end for line in lines)
    # A link (a dotfile manager's) is written through to its target, never replaced; a
    # folder made here is 0700 (store.ensure_dir).
    target = os.path.realpath(document.path) if document.exists else document.path
    try:
        store.write_atomic(target, text, mode=0o600)
    except OSError as exc:
        raise ConfigError(f"cannot write {target}: {exc.strerror}",
                          f"check the permissions of {os.path.dirname(target)}") from None


def set_value(key: str, value: str) -> Edit:
    """Write ``key = "value"`` (``value`` validated by the caller): in place of the line that
    set it (keeping its trailing comment), else at the end."""
    known_key(key)
    document = load()
    _known(document)  # a key this version does not know: `config unset` it first
    lines = list(document.lines)
    before = document.values().get(key)
    new = f"{key} = {quoted(value)}"
    if before is not None:
        index = before[1] - 1
        old = lines[index]
        lines[index] = Line(new + old.comment, old.end, key, value, old.comment)
    else:
        if lines and not lines[-1].end:
            last = lines[-1]
            lines[-1] = Line(last.text, "\r\n" if _crlf(lines) else "\n", last.key, last.value,
                             last.comment)
        if not lines:
            lines.append(Line("# rescale-ssh settings: `rescale-ssh config --help` tells "
                              "more", "\n"))
        lines.append(Line(new, "\r\n" if _crlf(lines) else "\n", key, value))
    edit = Edit(document.path, key, None if before is None else before[0], value)
    if edit.changed:
        _write(document, lines)
    return edit


def unset(key: str) -> Edit:
    """Remove the line that sets ``key`` (any key the file holds, even one unknown here)."""
    document = load()
    before = document.values().get(key)
    if before is None:
        known_key(key)
        return Edit(document.path, key, None, None)
    lines = [line for number, line in enumerate(document.lines, 1) if number != before[1]]
    _write(document, lines)
    return Edit(document.path, key, before[0], None)


def _crlf(lines: list[Line]) -> bool:
    return any(line.end == "\r\n" for line in lines)


# What hook.conf holds of the settings file (hookconf.py): the hook never reads the file.
HOOK_KEYS = ("identity", "platform", "profile", "multiplex")
