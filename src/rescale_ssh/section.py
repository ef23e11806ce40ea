"""The marked section of the user's ssh config that rescale-ssh owns, spliced at byte level.

Every byte outside the section is kept exactly (CRLF, tabs, no final newline, non-UTF-8
comments). The section is inserted at the very top of the file: OpenSSH takes the first value it
obtains, so our Host blocks must come before the user's global options and ``Host *``. It ends
with ``Host *`` so the user's global lines that follow stay global (ssh_config(5): a Host block
runs to the next Host or Match line).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rescale_ssh import hostblock
from rescale_ssh.errors import ConfigError
from rescale_ssh.hostblock import HostEntry, unquote_path
from rescale_ssh.target import Target, alias_for

BEGIN = b"# >>> rescale-ssh managed section: change it with `rescale-ssh`, not by hand >>>"
END = b"# <<< rescale-ssh managed section <<<"
_BEGIN_PREFIX = b"# >>> rescale-ssh"
_END_PREFIX = b"# <<< rescale-ssh"
SCOPE_RESET = "Host *"


@dataclass
class Section:
    """What the section holds: one Host block per job."""

    entries: dict[str, HostEntry] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not self.entries

    def render(self) -> bytes:
        if self.is_empty():
            return b""
        lines = [
            "# Hosts for Rescale jobs: `rescale-ssh list` shows them, `rescale-ssh remove JOB`",
            "# drops one. The scope reset at the end keeps the lines below this section global.",
            "",
            *hostblock.render_all(self.entries.values()),
            SCOPE_RESET,
        ]
        body = "\n".join(lines).encode("utf-8") + b"\n"
        return BEGIN + b"\n" + body + END + b"\n"


@dataclass(frozen=True)
class Located:
    """The file split around the section: ``before + section + after == file``."""

    before: bytes
    section: bytes
    after: bytes

    @property
    def present(self) -> bool:
        return bool(self.section)

    def body_lines(self) -> list[str]:
        inner = self.section.rstrip(b"\r\n").split(b"\n")[1:-1]
        return [line.decode("utf-8", "replace").rstrip("\r") for line in inner]


def locate(data: bytes, *, path: str) -> Located:
    """Find the section; refuse to guess when it was damaged by hand."""
    begins: list[int] = []
    ends: list[int] = []
    offset = 0
    for line in data.splitlines(keepends=True):
        stripped = line.lstrip(b" \t")
        if stripped.startswith(_BEGIN_PREFIX):
            begins.append(offset)
        elif stripped.startswith(_END_PREFIX):
            ends.append(offset + len(line))
        offset += len(line)
    hint = (
        f"open {path}, keep exactly one pair of '# >>> rescale-ssh' / '# <<< rescale-ssh' "
        "lines (or delete both with everything between them), then run the command again"
    )
    if not begins and not ends:
        return Located(before=b"", section=b"", after=data)
    if len(begins) != 1 or len(ends) != 1:
        what = "two sections" if len(begins) > 1 or len(ends) > 1 else (
            "a start marker without an end marker" if begins else "an end marker without a start"
        )
        raise ConfigError(f"the rescale-ssh section of {path} is damaged ({what})", hint)
    start, stop = begins[0], ends[0]
    if stop <= start:
        raise ConfigError(
            f"the rescale-ssh section of {path} is damaged (end marker before start marker)", hint
        )
    return Located(before=data[:start], section=data[start:stop], after=data[stop:])


def read(data: bytes, *, path: str) -> Section:
    located = locate(data, path=path)
    if not located.present:
        return Section()
    entries = parse_blocks(located.body_lines(), source=f"the rescale-ssh section of {path}")
    return Section(entries={entry.job: entry for entry in entries})


def parse_blocks(lines: list[str], *, source: str) -> list[HostEntry]:
    """Read back blocks written by :func:`hostblock.render`, validating every value again.

    sshconf reads the options (it is fine for our own, regular blocks; design.md forbids it on
    the user's content); the job and working directory come from the marker comment.
    """
    from sshconf import SshConfigFile

    parsed = SshConfigFile(lines)
    metas: dict[str, tuple[str, str]] = {}
    for line in lines:
        text = line.strip()
        if text.startswith(hostblock.META_PREFIX):
            job, _, rest = text[len(hostblock.META_PREFIX) :].partition(" workdir=")
            metas[alias_for(job)] = (job, rest.strip())
    entries = []
    for alias in parsed.hosts():
        if alias not in metas:
            continue
        job, workdir = metas[alias]
        options = parsed.host(alias)
        identity = options.get("identityfile")
        known = options.get("userknownhostsfile")
        if not isinstance(known, str) or not (identity is None or isinstance(identity, str)):
            continue
        target = Target.checked(
            job=job,
            user=options.get("user"),
            host=options.get("hostname"),
            port=options.get("port"),
            workdir=workdir,
            source=source,
        )
        entries.append(
            HostEntry(
                target=target,
                identity=None if identity is None else unquote_path(identity),
                known_hosts=unquote_path(known),
            )
        )
    return entries


def splice(data: bytes, section: Section, *, path: str) -> bytes:
    """``data`` with the section replaced (or inserted at the top, or removed when empty)."""
    located = locate(data, path=path)
    rendered = section.render()
    if located.present:
        after = located.after
        if located.section.endswith(b"\n") is False and rendered:
            # The end marker was the last line without a newline: keep it that way.
            rendered = rendered[:-1]
        return located.before + rendered + after
    return rendered + data
