"""The marked section of the user's ssh config that rescale-ssh owns, spliced at byte level.

Every byte outside the section is kept exactly (CRLF, tabs, no final newline, non-UTF-8
comments). The section is the only thing rescale-ssh writes into the user's file, at the very
top: OpenSSH takes the first value it obtains, so our blocks must come before the user's global
options and ``Host *``. It holds the static blocks of added jobs, then ``Host *`` (a Host block
runs to the next Host or Match line, ssh_config(5): the user's lines below stay global), then an
``Include`` of the tool's own ``<state>/ssh.conf`` (included.py): the host-key policy of the
blocks above and, when installed, the hook's ``Match``. OpenSSH restores the including file's
scope after an Include (readconf.c, verified on 9.2), so nothing in that file leaks below.

Putting what changes between versions (the hook's Match, its script, ``accept-new``) into the
tool's own file keeps the user's file readable by every OpenSSH from 7.3 on, and by parsers
that stop at ``Match`` or skip ``Include``; and an upgrade never needs to touch it.

Configs written by earlier versions also had a hook region at the end of the file (``# >>>
rescale-ssh hook``); it is read, and removed by the next write, which puts the Include here.
A line of the user's own found between our markers is never dropped: the command stops and
says which line to move (:func:`foreign_lines`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from rescale_ssh.errors import ConfigError
from rescale_ssh.sshconfig import hostblock
from rescale_ssh.sshconfig.hostblock import HostEntry
from rescale_ssh.sshconfig.parser import metas, parse_blocks, split_option

BEGIN = b"# >>> rescale-ssh managed section: change it with `rescale-ssh`, not by hand >>>"
END = b"# <<< rescale-ssh managed section <<<"
HOOK_BEGIN = b"# >>> rescale-ssh hook: `rescale-ssh uninstall` removes it >>>"
HOOK_BEGIN_ADDED = (  # the file had no final newline: this region brought the one above it
    b"# >>> rescale-ssh hook (with the newline above): `rescale-ssh uninstall` removes it >>>"
)
HOOK_END = b"# <<< rescale-ssh hook <<<"
HOOK_META = "# rescale-ssh hook state="  # the hook is installed; its files are in that folder
STATE_META = "# rescale-ssh state="  # no hook: the folder of the Include'd host-key policy
_BEGIN_PREFIX = b"# >>> rescale-ssh managed"
_END_PREFIX = b"# <<< rescale-ssh managed"
_HOOK_BEGIN_PREFIX = b"# >>> rescale-ssh hook"
_HOOK_END_PREFIX = b"# <<< rescale-ssh hook"
SCOPE_RESET = "Host *"
INTRO = (
    "# Hosts for Rescale jobs: `rescale-ssh list` shows them, `rescale-ssh remove JOB`",
    "# drops one. The scope reset at the end keeps the lines below this section global;",
    "# the Include adds rescale-ssh's host-key policy and, if installed, its hook.",
)
# Comment lines earlier versions wrote inside their regions: ours, not the user's.
_OLD_COMMENTS = frozenset((
    "# drops one. The scope reset at the end keeps the lines below this section global.",
    "# Jobs reached before through the hook (see the end of this file).",
    "# Jobs reached before through the hook (see the end of this file): first, as",
    "# the lines below set options for every host.",
))
_OUR_COMMENTS = frozenset(INTRO) | _OLD_COMMENTS
# What our blocks set (hostblock.render, and earlier versions), once each: any other line in
# a job's block is the user's.
_LOGIN_KEYWORDS = ("hostname", "port", "user", "identityfile", "identitiesonly", "hostkeyalias",
                   "userknownhostsfile", "stricthostkeychecking")
_HEAD_KEYWORDS = frozenset((*_LOGIN_KEYWORDS, "serveraliveinterval", "serveralivecountmax"))
_WORKER_KEYWORDS = frozenset((*_LOGIN_KEYWORDS, "proxyjump"))


@dataclass(frozen=True)
class HookSpec:
    """``install`` put the hook in: its files (the script the Match line runs, hook.conf, the
    blocks it writes) are in ``state_dir``."""

    state_dir: str


@dataclass
class Section:
    """What the tool owns: one Host block per added job, the hook when installed, and the
    folder of the tool's files that the section includes (``state_dir``; None: not yet
    chosen, the caller's default applies)."""

    entries: dict[str, HostEntry] = field(default_factory=dict)
    hook: HookSpec | None = None
    state_dir: str | None = None
    legacy: bool = False  # read from a layout an earlier version wrote

    def is_empty(self) -> bool:
        return not self.entries and self.hook is None

    def folder(self) -> str:
        """The state folder the Include names: the hook's, else the one read, else ours."""
        if self.hook is not None:
            return self.hook.state_dir
        if self.state_dir is not None:
            return self.state_dir
        from rescale_ssh import paths

        return str(paths.state_dir())

    def includable(self) -> bool:
        """The folder can be named in an Include (validate_state_dir). When it cannot (a home
        folder with a ``%`` or a glob character), the static blocks carry their host-key
        policy themselves and nothing is included; the hook is refused for such a folder."""
        from rescale_ssh.errors import InvalidValueError

        try:
            validate_state_dir(self.folder())
        except InvalidValueError:
            return self.hook is not None  # let render() raise: install refuses it
        return True

    def included_file(self) -> str:
        from rescale_ssh.sshconfig import included

        return f"{self.folder()}/{included.FILE}"

    def render(self) -> bytes:
        """The whole region, or nothing when there is nothing to hold: every line here is read
        by every ssh run (bench/ item 2)."""
        if self.is_empty():
            return b""
        if not self.includable():
            lines = [*INTRO[:2], "",
                     *hostblock.render_all(self.entries.values(), accept_new=True), SCOPE_RESET]
            return BEGIN + b"\n" + "\n".join(lines).encode("utf-8") + b"\n" + END + b"\n"
        meta = HOOK_META if self.hook is not None else STATE_META
        lines = [
            *INTRO,
            f"{meta}{validate_state_dir(self.folder())}",
            "",
            *hostblock.render_all(self.entries.values()),
            SCOPE_RESET,
            f"Include {hostblock.quote_path(self.included_file(), field='state folder')}",
        ]
        body = "\n".join(lines).encode("utf-8") + b"\n"
        return BEGIN + b"\n" + body + END + b"\n"


@dataclass(frozen=True)
class Outline:
    """What a section holds, read from its marker and meta comments alone (no block is parsed):
    enough to write the files it includes, from a section this tool just rendered."""

    aliases: tuple[str, ...]
    hook: HookSpec | None
    state_dir: str | None

    def section(self) -> Section:
        return Section(hook=self.hook, state_dir=self.state_dir)

    def is_empty(self) -> bool:
        return not self.aliases and self.hook is None


def outline(data: bytes, *, path: str) -> Outline:
    located = locate(data, path=path)
    lines = [*located.lines(located.top), *located.lines(located.hook)]
    heads, workers = metas(lines)
    aliases = (*heads, *(alias for by_index in workers.values() for alias in by_index.values()))
    hook = state = None
    source = f"the rescale-ssh section of {path}"
    for line in lines:
        text = line.strip()
        if text.startswith(HOOK_META):
            hook = HookSpec(validate_state_dir(text[len(HOOK_META):].strip(), source=source))
        elif text.startswith(STATE_META):
            state = validate_state_dir(text[len(STATE_META):].strip(), source=source)
    return Outline(aliases=tuple(aliases), hook=hook, state_dir=state)


@dataclass(frozen=True)
class Span:
    """Where a region is: ``data[start:stop]``. ``flag`` is the width of the newline an old hook
    region brought before it (the file had no final newline; 2 once the user made the file
    CRLF): ``data[start:start + flag]`` is that newline."""

    start: int
    stop: int
    flag: int = 0


@dataclass(frozen=True)
class Located:
    data: bytes
    top: Span | None
    hook: Span | None

    def lines(self, span: Span | None) -> list[str]:
        """The lines between the markers of a region."""
        return [text for _, text in self.numbered(span)]

    def numbered(self, span: Span | None) -> list[tuple[int, str]]:
        """(line number in the file, text) of each line between the markers of a region."""
        if span is None:
            return []
        if span is self.top:
            return self._top_lines
        return self._numbered(span)

    @cached_property
    def _top_lines(self) -> list[tuple[int, str]]:  # read several times per command
        return self._numbered(self.top)

    def _numbered(self, span: Span | None) -> list[tuple[int, str]]:
        if span is None:
            return []
        start = span.start + span.flag
        first = self.data.count(b"\n", 0, start) + 1
        inner = self.data[start : span.stop].split(b"\n")
        if inner and inner[-1] in (b"", b"\r"):
            inner.pop()
        return [(first + index, line.decode("utf-8", "replace").rstrip("\r"))
                for index, line in enumerate(inner[1:-1], start=1)]


def _span(data: bytes, begin: bytes, end: bytes, full_end: bytes, what: str,
          path: str) -> Span | None:
    """The region between a line starting with ``begin`` and one starting with ``end`` (after
    spaces or tabs: indentation means nothing to ssh).

    It ends right after the end marker's line ending; if the user appended text to the marker
    line itself (a file whose final newline they had removed), that text is theirs and stays
    outside the region. Markers are found with a search, not a walk over every line: a config
    of 5,000 lines is read several times per command (bench/ item 5)."""
    begins = [line for line, _ in _marker_lines(data, begin)]
    ends: list[int] = []
    for line, marker in _marker_lines(data, end):
        line_end = data.find(b"\n", line)
        line_end = len(data) if line_end < 0 else line_end + 1
        tail = data[marker + len(full_end) : line_end] if data.startswith(full_end, marker) \
            else b""
        ends.append(marker + len(full_end) if tail.strip() else line_end)
    if not begins and not ends:
        return None
    hint = (
        f"open {path}, keep exactly one pair of '{begin.decode()}' / '{end.decode()}' lines (or "
        "delete both with everything between them), then run the command again"
    )
    if len(begins) != 1 or len(ends) != 1:
        problem = f"two {what}s" if len(begins) > 1 or len(ends) > 1 else (
            "a start marker without an end marker" if begins else "an end marker without a start"
        )
        raise ConfigError(f"the rescale-ssh {what} of {path} is damaged ({problem})", hint)
    start, stop = begins[0], ends[0]
    if stop <= start:
        raise ConfigError(
            f"the rescale-ssh {what} of {path} is damaged (end marker before start marker)", hint
        )
    width = 0
    if data[start:].startswith(HOOK_BEGIN_ADDED) and start > 0 and data[start - 1] == 10:
        width = 2 if data[start - 2 : start] == b"\r\n" else 1
    return Span(start - width, stop, width)


def _marker_lines(data: bytes, marker: bytes) -> list[tuple[int, int]]:
    """(start of the line, offset of the marker) of each line that starts with ``marker``
    after nothing but spaces and tabs."""
    found = []
    offset = data.find(marker)
    while offset >= 0:
        line = data.rfind(b"\n", 0, offset) + 1
        if not data[line:offset].strip(b" \t"):
            found.append((line, offset))
        offset = data.find(marker, offset + 1)
    return found


def locate(data: bytes, *, path: str) -> Located:
    """Find our regions; refuse to guess when one was damaged by hand."""
    top = _span(data, _BEGIN_PREFIX, _END_PREFIX, END, "section", path)
    hook = _span(data, _HOOK_BEGIN_PREFIX, _HOOK_END_PREFIX, HOOK_END, "hook", path)
    if top is not None and hook is not None and top.start < hook.stop and hook.start < top.stop:
        raise ConfigError(f"the rescale-ssh section and hook of {path} overlap",
                          f"remove both from {path} by hand, then add the jobs again")
    return Located(data, top, hook)


def read(data: bytes, *, path: str) -> Section:
    from rescale_ssh.errors import InvalidValueError

    located = locate(data, path=path)
    source = f"the rescale-ssh section of {path}"
    top_lines = located.lines(located.top)
    try:
        entries = parse_blocks(top_lines, source=source)
    except InvalidValueError:
        refuse_foreign(located, path)  # a line of the user's broke a block: name the line
        raise
    hook = None
    state = None
    for line in [*top_lines, *located.lines(located.hook)]:
        text = line.strip()
        if text.startswith(HOOK_META):
            hook = HookSpec(validate_state_dir(text[len(HOOK_META):].strip(), source=source))
        elif text.startswith(STATE_META):
            state = validate_state_dir(text[len(STATE_META):].strip(), source=source)
    if located.hook is not None and hook is None:
        raise ConfigError(f"the rescale-ssh hook of {path} is damaged (no state line)",
                          "run `rescale-ssh uninstall`, then `rescale-ssh install`")
    current = Section(entries={entry.job: entry for entry in entries}, hook=hook,
                      state_dir=state)
    current.legacy = located.hook is not None or (
        located.top is not None and data[located.top.start : located.top.stop]
        != current.render())
    return current


def validate_state_dir(value: str, *, source: str | None = None) -> str:
    """The tool's folder appears in Include lines: no glob characters, and no
    ``%``: OpenSSH 9.2 takes Include arguments without %-token expansion (verified: ``%%``
    stays doubled), so no spelling of a literal ``%`` works there in every version."""
    from rescale_ssh import validate
    from rescale_ssh.errors import InvalidValueError

    checked = validate.local_path(value, field="state folder", source=source)
    if any(char in checked for char in "*?[]%"):
        raise InvalidValueError("state folder", value, "no *, ?, [, ] or %", source=source)
    return checked


def foreign_lines(located: Located) -> list[tuple[int, str]]:
    """Lines between our markers that rescale-ssh never writes: the user's (line number, text).

    Ours, block by block as :meth:`Section.render` (or an earlier version) writes them: blank
    lines and our comments; ``Host *`` and the Host line of each job whose marker comment is
    there; in a job's block, each option such a block has, once; an Include (after ``Host *``,
    or under the old hook's ``Match``) of a file in a state folder the section names. Anything
    else, an option of ours where we never put it included, is the user's."""
    found: list[tuple[int, str]] = []
    numbered = [*located.numbered(located.top), *located.numbered(located.hook)]
    heads, workers = metas([text for _, text in numbered])
    worker_aliases = {alias for by_index in workers.values() for alias in by_index.values()}
    folders = [_slashes(text.strip().split("=", 1)[1].strip()) for _, text in numbered
               if text.strip().startswith((HOOK_META, STATE_META))]
    block = ""  # "", "*", "head", "worker", "match" (ours), or "theirs"
    seen: set[str] = set()
    for number, raw in numbered:
        text = raw.strip()
        if not text:
            continue
        if text.startswith("#"):
            if not (text in _OUR_COMMENTS or text.startswith(
                    ("# rescale-ssh ", "# >>> rescale-ssh", "# <<< rescale-ssh"))):
                found.append((number, raw))
            continue
        keyword, rest = split_option(text)
        if keyword in ("host", "match"):
            seen = set()
            if keyword == "match":  # earlier versions' hook: rescale-ssh hook for rescale-*
                block = "match" if rest.startswith("originalhost ") and "rescale-*" in rest \
                    else "theirs"
            else:
                block = {"*": "*"}.get(rest) or ("head" if rest in heads else "worker"
                                                 if rest in worker_aliases else "theirs")
            if block == "theirs":
                found.append((number, raw))
            continue
        if block in ("head", "worker"):
            allowed = _HEAD_KEYWORDS if block == "head" else _WORKER_KEYWORDS
            if keyword in allowed and keyword not in seen:
                seen.add(keyword)
                continue
            if block == "head" and keyword == "localforward":  # `forward --save`: any number
                continue
        elif block in ("*", "match") and keyword == "include" and any(
                folder and folder in _slashes(rest) for folder in folders):
            continue
        found.append((number, raw))
    return found


def _slashes(path: str) -> str:
    return path.replace("\\", "/")  # quote_path writes Windows' backslashes as /


def refuse_foreign(located: Located, path: str) -> None:
    """ConfigError naming the first line of the user's inside our regions, if there is one."""
    theirs = foreign_lines(located)
    if theirs:
        number, text = theirs[0]
        more = f" (and {len(theirs) - 1} more)" if len(theirs) > 1 else ""
        raise ConfigError(
            f"{path} line {number} is inside the rescale-ssh section, which rescale-ssh "
            f"rewrites: {text.strip()[:80]!r}{more}",
            "move your lines above the '# >>> rescale-ssh' line or below the "
            "'# <<< rescale-ssh' line, then run the command again (nothing was changed)")


def by_hand(data: bytes) -> str:
    """Our regions of a config's planned content: what a user whose config rescale-ssh may not
    write (a dotfile manager's) can put in it themselves. Empty when nothing of ours remains."""
    located = locate(data, path="the planned config")
    regions = [data[span.start : span.stop].lstrip(b"\r\n")
               for span in (located.top, located.hook) if span is not None]
    return b"\n".join(regions).decode("utf-8", "replace")


def splice(data: bytes, section: Section, *, path: str) -> bytes:
    """``data`` with our region replaced, or inserted (or moved back) at the top of the file,
    any hook region of an earlier version removed. Never joins, splits or drops a line of the
    user's: a region is removed with its own line endings only (an old hook region's added
    newline stays when the user wrote something after it), and a region holding a line of
    theirs is not touched at all (ConfigError naming the line)."""
    located = locate(data, path=path)
    top = section.render()
    edits: list[tuple[int, int, bytes]] = []
    moved = located.top is not None and located.top.start > 0
    if located.top is not None:
        # Lines of the user's above the section (prepended since): the section goes back to
        # the top, so that their lines are contiguous again and mean what they would mean
        # without rescale-ssh (a Host line of theirs above would otherwise end at our Host
        # lines, and ours would no longer come first).
        edits.append((located.top.start, located.top.stop, b"" if moved else top))
    if located.hook is not None:
        span = located.hook
        # The newline an old region brought goes only when nothing of the user's follows it.
        start = span.start + span.flag if data[span.stop:] else span.start
        edits.append((start, span.stop, b""))
    changes = [(start, stop, new) for start, stop, new in edits if data[start:stop] != new]
    if changes:
        refuse_foreign(located, path)
    for start, stop, replacement in sorted(changes, reverse=True):
        data = data[:start] + replacement + data[stop:]
    if (located.top is None or moved) and top:
        data = top + data
    return data
