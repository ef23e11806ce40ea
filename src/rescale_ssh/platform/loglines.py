"""Parsing of the Job Logs line that announces SSH access (rescale-api.md, "Job logs").

    Instance ready for ssh access. Command: ssh -i </path/to/key> uprod_Fotxeb@203.0.113.7;
    working directory: /enc/uprod_Fotxeb/work

Standard library only. The parser tolerates extra whitespace, a trailing period, a missing
working directory and ``-p PORT`` (also ``-pPORT``, ``-o Port=N``); it returns raw strings and
leaves validation to :mod:`rescale_ssh.validate`. Any other option that takes a value
(``-oProxyCommand=...``, ``-J``, ``-F``) or a word after the destination (a remote command) is
returned as ``unexpected``, as is a separator other than space and tab (``\\v``, U+2028): such a
line is not one the platform writes, and is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Options of ssh(1) that take an argument; the destination is the first other word.
_OPTS_WITH_ARG = set("BbcDEeFIiJLlmOoPpQRSWw")
_COMMAND = re.compile(r"Command:\s*ssh\s+(?P<args>.*)", re.IGNORECASE)
# rescale-api.md, "Username": uprod_<jobId> (platform.rescale.com), ujpprod_<jobId> (.jp);
# other regions plausibly u<region>prod_<jobId>. The working directory is /enc/<username>/...
_JOB_USER = re.compile(r"u[a-z]*prod_(?P<job>[A-Za-z0-9]+)")
_WORKDIR = re.compile(r";?\s*working\s+directory\s*:\s*(?P<wd>\S+)(?P<rest>.*)", re.IGNORECASE)


@dataclass(frozen=True)
class SSHLine:
    user: str | None
    host: str
    port: str | None
    workdir: str | None
    unexpected: str | None = None  # the first option or word no SSH-access line has


def find(text: str) -> SSHLine | None:
    """The last SSH-access line in ``text`` (a single line or a whole pasted log), parsed.

    Lines end at ``\\n`` (a ``\\r`` before it is dropped) and nowhere else: a ``\\r``, U+2028
    or NEL inside a line stays in it, where it is refused, instead of starting a line of its own.
    """
    found: SSHLine | None = None
    for line in text.split("\n"):
        parsed = parse(line[:-1] if line.endswith("\r") else line)
        if parsed is not None:
            found = parsed
    return found


def parse(line: str) -> SSHLine | None:
    """One line, or one log entry of the platform: an entry that goes on after the SSH line
    (a line break, then more text) is not one the platform writes."""
    match = _COMMAND.search(line)
    if match is None:
        return None
    args = match.group("args").rstrip(" \t\r")
    unexpected: str | None = None
    if line[match.end() :].strip():
        unexpected = line[match.end() :].strip()
    workdir = None
    wd_match = _WORKDIR.search(args)
    if wd_match is not None:
        workdir = wd_match.group("wd").rstrip(".;,")  # validated as a remote path
        rest = wd_match.group("rest").strip(" \t.")
        if rest:
            unexpected = unexpected or rest
        args = args[: wd_match.start()]
    # Only spaces and tabs separate words: a \v, NEL or U+2028 would otherwise cut a value
    # short without a word. Other odd characters stay in their word, which validation refuses.
    odd = [c for c in args if c.isspace() and c not in " \t"]
    if odd:
        unexpected = unexpected or f"{odd[0]!r} in {args!r}"
    words = _split(args)
    port: str | None = None
    login: str | None = None
    destination: str | None = None
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("-") and len(word) > 1:
            letter, rest = word[1], word[2:]
            if letter in _OPTS_WITH_ARG:
                value = rest if rest else (words[i + 1] if i + 1 < len(words) else "")
                i += 1 if rest else 2
                if letter == "p":
                    port = value
                elif letter == "l":
                    login = value
                elif letter == "o" and value.lower().startswith("port="):
                    port = value.split("=", 1)[1]
                elif letter != "i":
                    unexpected = unexpected or (word if rest else f"{word} {value}")
                continue
            i += 1  # a flag (-4, -v, -A): nothing a config would take from it
            continue
        if destination is None:
            destination = word
        else:
            unexpected = unexpected or word
        i += 1
    if destination is None:
        # Cut short by a line break inside one log entry: refused, not skipped.
        return SSHLine(None, "", None, None, unexpected) if unexpected else None
    destination = destination.rstrip(".;,")
    user, sep, host = destination.rpartition("@")
    if not sep:
        user = login or ""
    return SSHLine(user=user or None, host=host, port=port, workdir=workdir,
                   unexpected=unexpected)


def _split(args: str) -> list[str]:
    """Whitespace split that keeps ``<...>`` placeholders (``-i </path/to/key>``) as one word."""
    words: list[str] = []
    for match in re.finditer(r"<[^>]*>|\S+", args):
        words.append(match.group(0))
    return words


def job_named(user: str | None, workdir: str | None) -> tuple[str, str] | None:
    """The job a line's user or working folder is named after (``uprod_<JOB>``,
    ``/enc/ujpprod_<JOB>/work``), with what named it; None for a user of no such shape."""
    match = _JOB_USER.fullmatch(user or "")
    if match is not None:
        return match.group("job"), f"user {user}"
    parts = (workdir or "").split("/")
    if len(parts) > 2 and parts[1] == "enc":
        match = _JOB_USER.fullmatch(parts[2])
        if match is not None:
            return match.group("job"), f"working directory {workdir}"
    return None
