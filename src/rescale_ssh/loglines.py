"""Parsing of the Job Logs line that announces SSH access (rescale-api.md, "Job logs").

    Instance ready for ssh access. Command: ssh -i </path/to/key> uprod_Fotxeb@203.0.113.7;
    working directory: /enc/uprod_Fotxeb/work

Standard library only. The parser tolerates extra whitespace, a trailing period, a missing
working directory and ``-p PORT`` (also ``-pPORT``, ``-o Port=N``); it returns raw strings and
leaves validation to :mod:`rescale_ssh.validate`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Options of ssh(1) that take an argument; the destination is the first other word.
_OPTS_WITH_ARG = set("BbcDEeFIiJLlmOoPpQRSWw")
_COMMAND = re.compile(r"Command:\s*ssh\s+(?P<args>.*)", re.IGNORECASE)
_WORKDIR = re.compile(r";?\s*working\s+directory\s*:\s*(?P<wd>\S+)", re.IGNORECASE)


@dataclass(frozen=True)
class SSHLine:
    user: str | None
    host: str
    port: str | None
    workdir: str | None


def find(text: str) -> SSHLine | None:
    """The last SSH-access line in ``text`` (a single line or a whole pasted log), parsed."""
    found: SSHLine | None = None
    for line in text.splitlines():
        parsed = parse(line)
        if parsed is not None:
            found = parsed
    return found


def parse(line: str) -> SSHLine | None:
    match = _COMMAND.search(line)
    if match is None:
        return None
    args = match.group("args")
    workdir = None
    wd_match = _WORKDIR.search(args)
    if wd_match is not None:
        workdir = wd_match.group("wd").rstrip(".;,")
        args = args[: wd_match.start()]
    words = _split(args)
    port: str | None = None
    login: str | None = None
    destination: str | None = None
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("-") and len(word) > 1 and destination is None:
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
                continue
            i += 1
            continue
        if destination is None:
            destination = word
        i += 1
    if destination is None:
        return None
    destination = destination.rstrip(".;,")
    user, sep, host = destination.rpartition("@")
    if not sep:
        user = login or ""
    return SSHLine(user=user or None, host=host, port=port, workdir=workdir)


def _split(args: str) -> list[str]:
    """Whitespace split that keeps ``<...>`` placeholders (``-i </path/to/key>``) as one word."""
    words: list[str] = []
    for match in re.finditer(r"<[^>]*>|\S+", args):
        words.append(match.group(0))
    return words
