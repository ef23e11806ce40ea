"""The user's own hosts named like jobs: ``Host rescale-build`` is theirs, not a job's.

The hook's ``Match`` sits at the top of the user's config (included.py), before their own
blocks: without this, ``ssh rescale-build`` would run the hook and send ``build`` to the
Rescale platform, and the hook's failure block would win over the user's host. A host is
claimed by a name that a ``Host`` line, or a ``host``/``originalhost`` criterion of a ``Match``
line, gives literally (no ``*``, ``?`` or ``!``) and that starts with ``rescale-``: those are
excluded from the hook by name. A pattern such as ``Host rescale-*`` is not a host of the
user's but options for every job, as it would be without rescale-ssh; it claims nothing.

Read from the config and every file it includes (as ssh would: relative to ~/.ssh, globs,
16 levels at most), skipping the tool's own region and files. Standard library only (the hook's
cold path asks before it would make a request).
"""

from __future__ import annotations

import os

PREFIX = "rescale-"
MAX_DEPTH = 16


class Claim:
    __slots__ = ("line", "name", "path")

    def __init__(self, name: str, path: str, line: int) -> None:
        self.name = name
        self.path = path
        self.line = line

    def __repr__(self) -> str:
        return f"Claim({self.name!r}, {self.path!r}, {self.line})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Claim) and (self.name, self.path, self.line) == (
            other.name, other.path, other.line)

    def __hash__(self) -> int:
        return hash((self.name, self.path, self.line))

    def where(self) -> str:
        return f"{self.path} line {self.line}"


def find(config: str, data: bytes | None = None, *, skip: tuple[str, ...] = ()) -> list[Claim]:
    """The user's hosts named ``rescale-...`` in ``config`` (its bytes, when given) and what it
    includes; ``skip`` names folders of the tool's own (never read)."""
    found: list[Claim] = []
    if data is None:
        data = _read(config)
        if data is None:
            return found
    _scan(config, _without_ours(data, config), found, 0, skip)
    return found


def names(config: str, data: bytes | None = None, *, skip: tuple[str, ...] = ()) -> list[str]:
    return sorted({claim.name for claim in find(config, data, skip=skip)})


def routes(config: str, data: bytes | None = None, *, skip: tuple[str, ...] = ()) -> bool:
    """The user's config (or a file it includes) sets a ProxyCommand or ProxyJump anywhere,
    for any host: a ``Host *`` line may send every connection through their bastion, which
    the static blocks then keep on using (included.py puts no proxy of ours before it)."""
    if data is None:
        data = _read(config)
        if data is None:
            return False
    return _routes(config, _without_ours(data, config), 0, skip)


_ROUTING = (b"proxycommand", b"proxyjump", b"include")


def _routes(path: str, data: bytes, depth: int, skip: tuple[str, ...]) -> bool:
    for raw in data.split(b"\n"):
        if not raw.lstrip(b" \t")[:12].lower().startswith(_ROUTING):
            continue
        words = _words(raw.decode("utf-8", "replace"))
        keyword = words[0].lower() if words else ""
        if keyword in ("proxycommand", "proxyjump"):
            return True
        if keyword == "include" and depth < MAX_DEPTH:
            for included in _included(words[1:], skip):
                text = _read(included)
                if text is not None and _routes(included, text, depth + 1, skip):
                    return True
    return False


def _without_ours(data: bytes, path: str) -> bytes:
    """The file with our regions blanked (their lines kept as empty ones: numbers stay)."""
    from rescale_ssh.errors import ConfigError
    from rescale_ssh.sshconfig import section

    try:
        located = section.locate(data, path=path)
    except ConfigError:
        return data
    for span in sorted((s for s in (located.top, located.hook) if s), key=lambda s: -s.start):
        region = data[span.start : span.stop]
        data = data[:span.start] + b"\n" * region.count(b"\n") + data[span.stop:]
    return data


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read(4 * 1024 * 1024)
    except OSError:
        return None


_KEYWORDS = (b"host", b"match", b"include")


def _scan(path: str, data: bytes, found: list[Claim], depth: int, skip: tuple[str, ...]) -> None:
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.lstrip(b" \t")[:7].lower().startswith(_KEYWORDS):
            continue  # most lines: no need to split them into words
        words = _words(raw.decode("utf-8", "replace"))
        if not words:
            continue
        keyword = words[0].lower()
        if keyword == "host":
            found += [Claim(name, path, number) for name in words[1:] if _literal(name)]
        elif keyword == "match":
            found += [Claim(name, path, number) for name in _match_names(words[1:])]
        elif keyword == "include" and depth < MAX_DEPTH:
            for included in _included(words[1:], skip):
                text = _read(included)
                if text is not None:
                    _scan(included, text, found, depth + 1, skip)


def _words(line: str) -> list[str]:
    """A config line's keyword and arguments: ``Key value``, ``Key=value``, quoted words."""
    text = line.strip()
    if not text or text.startswith("#"):
        return []
    head, sep, rest = text.partition("=")
    if sep and " " not in head.strip() and "\t" not in head.strip():
        text = f"{head.strip()} {rest}"
    words: list[str] = []
    current: list[str] = []
    quote = ""
    started = False
    for char in text:
        if quote:
            if char == quote:
                quote = ""
            else:
                current.append(char)
        elif char in "\"'":
            quote, started = char, True
        elif char.isspace():
            if started or current:
                words.append("".join(current))
            current, started = [], False
        elif char == "#" and not current and not started:
            break  # a comment at the start of a word ends the line (OpenSSH 8.9+)
        else:
            current.append(char)
    if started or current:
        words.append("".join(current))
    return words


def _literal(name: str) -> bool:
    return name.startswith(PREFIX) and len(name) > len(PREFIX) and not any(
        char in name for char in "*?!")


def _match_names(words: list[str]) -> list[str]:
    found = []
    for index, word in enumerate(words[:-1]):
        if word.lower() in ("host", "originalhost"):
            found += [name for name in words[index + 1].split(",") if _literal(name)]
    return found


def _included(words: list[str], skip: tuple[str, ...]) -> list[str]:
    import glob

    base = os.path.join(os.path.expanduser("~"), ".ssh")
    files: list[str] = []
    for word in words:
        pattern = os.path.expanduser(word)
        if not os.path.isabs(pattern):
            pattern = os.path.join(base, pattern)
        for match in sorted(glob.glob(pattern)):
            real = os.path.realpath(match)
            if any(real.startswith(folder.rstrip("/") + "/") for folder in skip):
                continue
            if os.path.isfile(real):
                files.append(match)
    return files
