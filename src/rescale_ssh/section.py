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
from rescale_ssh.target import Target, alias_for, worker_alias

BEGIN = b"# >>> rescale-ssh managed section: change it with `rescale-ssh`, not by hand >>>"
END = b"# <<< rescale-ssh managed section <<<"
HOOK_BEGIN = b"# >>> rescale-ssh hook: `rescale-ssh uninstall` removes it >>>"
HOOK_BEGIN_ADDED = (  # the file had no final newline: this region brought the one above it
    b"# >>> rescale-ssh hook (with the newline above): `rescale-ssh uninstall` removes it >>>"
)
HOOK_END = b"# <<< rescale-ssh hook <<<"
HOOK_META = "# rescale-ssh hook state="
_BEGIN_PREFIX = b"# >>> rescale-ssh managed"
_END_PREFIX = b"# <<< rescale-ssh managed"
_HOOK_BEGIN_PREFIX = b"# >>> rescale-ssh hook"
_HOOK_END_PREFIX = b"# <<< rescale-ssh hook"
SCOPE_RESET = "Host *"


@dataclass(frozen=True)
class HookSpec:
    """What ``install`` put in: the folder of the hook's files (its script, which the Match
    line runs, included), and whether the jobs it reached need an ``Include`` at the top
    (``precedence``: the user's own config sets an option of ours for every host, which would
    win over a block at the end)."""

    state_dir: str
    precedence: bool = False

    @property
    def hosts_file(self) -> str:
        return hostblock.quote_path(f"{self.state_dir}/hosts.conf", field="state folder")

    @property
    def fresh_file(self) -> str:
        return hostblock.quote_path(f"{self.state_dir}/fresh.conf", field="state folder")


@dataclass
class Section:
    """What the tool owns: one Host block per added job, and the hook when installed."""

    entries: dict[str, HostEntry] = field(default_factory=dict)
    hook: HookSpec | None = None

    def is_empty(self) -> bool:
        return not self.entries and self.hook is None

    def render(self) -> bytes:
        """The top region: static blocks first (first value wins), then, when the hook needs
        precedence, its earlier results (``Include``), then ``Host *`` so the user's lines
        below stay global. Nothing at all when neither is there: every line here is read by
        every ssh run (bench/ item 2)."""
        if not self.entries and (self.hook is None or not self.hook.precedence):
            return b""
        lines = [
            "# Hosts for Rescale jobs: `rescale-ssh list` shows them, `rescale-ssh remove JOB`",
            "# drops one. The scope reset at the end keeps the lines below this section global.",
            "",
            *hostblock.render_all(self.entries.values()),
        ]
        if self.hook is not None and self.hook.precedence:
            lines += [
                "# Jobs reached before through the hook (see the end of this file): first, as",
                "# the lines below set options for every host.",
                SCOPE_RESET,
                f"Include {self.hook.hosts_file}",
            ]
        lines.append(SCOPE_RESET)
        body = "\n".join(lines).encode("utf-8") + b"\n"
        return BEGIN + b"\n" + body + END + b"\n"

    def render_hook(self, *, newline_added: bool) -> bytes:
        """The bottom region: ``Match ... exec`` runs the hook for aliases without a block.

        At the very end of the file, so a parser that stops at ``Match`` (VS Code issue #9683)
        loses nothing. ``originalhost`` comes before ``exec`` so other hosts never run it; the
        patterns sit in double quotes (paramiko shlex-splits Match lines) and exclude names
        with ``'``, which would end the single quotes around ``%n``.
        """
        if self.hook is None:
            return b""
        static = [f"!{alias_for(job)}{tail}" for job in sorted(self.entries) for tail in ("", "-*")]
        patterns = ",".join(["rescale-*", "!*'*", *static])
        # The script install wrote (HookConf.script_text): it tests the job's marker first.
        script = hostblock.shell_word(f"{self.hook.state_dir}/hook", field="state folder")
        command = f"{script} '%n'"
        lines = [
            HOOK_BEGIN_ADDED if newline_added else HOOK_BEGIN,
            f"{HOOK_META}{self.hook.state_dir}".encode(),
            f'Match originalhost "{patterns}" exec "{command}"'.encode(),
            f"    Include {self.hook.fresh_file}".encode(),
            HOOK_END,
        ]
        return (b"\n" if newline_added else b"") + b"\n".join(lines) + b"\n"


@dataclass(frozen=True)
class Span:
    """Where a region is: ``data[start:stop]``; ``flag`` marks a hook region that brought the
    newline before it (the file had no final newline)."""

    start: int
    stop: int
    flag: bool = False


@dataclass(frozen=True)
class Located:
    data: bytes
    top: Span | None
    hook: Span | None

    def lines(self, span: Span | None) -> list[str]:
        if span is None:
            return []
        inner = self.data[span.start : span.stop].strip(b"\r\n").split(b"\n")[1:-1]
        return [line.decode("utf-8", "replace").rstrip("\r") for line in inner]


def _span(data: bytes, begin: bytes, end: bytes, what: str, path: str) -> Span | None:
    begins: list[int] = []
    ends: list[int] = []
    offset = 0
    for line in data.splitlines(keepends=True):
        stripped = line.lstrip(b" \t")
        if stripped.startswith(begin):
            begins.append(offset)
        elif stripped.startswith(end):
            ends.append(offset + len(line))
        offset += len(line)
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
    added = data[start:].startswith(HOOK_BEGIN_ADDED) and start > 0 and data[start - 1] == 10
    return Span(start - 1 if added else start, stop, added)


def locate(data: bytes, *, path: str) -> Located:
    """Find our regions; refuse to guess when one was damaged by hand."""
    top = _span(data, _BEGIN_PREFIX, _END_PREFIX, "section", path)
    hook = _span(data, _HOOK_BEGIN_PREFIX, _HOOK_END_PREFIX, "hook", path)
    if top is not None and hook is not None and top.start < hook.stop and hook.start < top.stop:
        raise ConfigError(f"the rescale-ssh section and hook of {path} overlap",
                          f"remove both from {path} by hand, then add the jobs again")
    return Located(data, top, hook)


def read(data: bytes, *, path: str) -> Section:
    located = locate(data, path=path)
    source = f"the rescale-ssh section of {path}"
    entries = parse_blocks(located.lines(located.top), source=source)
    hook = None
    for line in located.lines(located.hook):
        if line.startswith(HOOK_META):
            hook = hook_spec(line[len(HOOK_META) :].strip(), source=source)
    if located.hook is not None and hook is None:
        raise ConfigError(f"the rescale-ssh hook of {path} is damaged (no state line)",
                          "run `rescale-ssh uninstall`, then `rescale-ssh install`")
    return Section(entries={entry.job: entry for entry in entries}, hook=hook)


def hook_spec(state_dir: str, *, source: str) -> HookSpec:
    from rescale_ssh import hookconf

    checked = validate_state_dir(state_dir, source=source)
    conf = hookconf.load(checked)
    return HookSpec(state_dir=checked, precedence=bool(conf.precedence))


def validate_state_dir(value: str, *, source: str | None = None) -> str:
    """The hook's folder appears in Include lines: no glob characters, and no
    ``%``: OpenSSH 9.2 takes Include arguments without %-token expansion (verified: ``%%``
    stays doubled), so no spelling of a literal ``%`` works there in every version."""
    from rescale_ssh import validate
    from rescale_ssh.errors import InvalidValueError

    checked = validate.local_path(value, field="state folder", source=source)
    if any(char in checked for char in "*?[]%"):
        raise InvalidValueError("state folder", value, "no *, ?, [, ] or %", source=source)
    return checked


def parse_blocks(lines: list[str], *, source: str) -> list[HostEntry]:
    """Read back blocks written by :func:`hostblock.render`, validating every value again.

    sshconf reads the options (it is fine for our own, regular blocks; design.md forbids it on
    the user's content); the job, working directory and worker number come from the marker
    comment (``# rescale-ssh job=X workdir=W`` or ``# rescale-ssh job=X worker=N``).
    """
    from sshconf import SshConfigFile

    # One pass over sshconf's parsed lines (its host() rescans every line for each host, which
    # made `add` quadratic in the number of managed hosts: bench/ item 5).
    options_of: dict[str, dict[str, str]] = {}
    order: list[str] = []
    for parsed_line in SshConfigFile(lines).lines_:
        if parsed_line.host is None or parsed_line.key is None:
            continue
        key = parsed_line.key.lower()
        if key == "host":
            order.append(parsed_line.host)
            continue
        options_of.setdefault(parsed_line.host, {}).setdefault(key, parsed_line.value)
    heads: dict[str, tuple[str, str]] = {}  # alias -> (job, workdir)
    workers: dict[str, dict[int, str]] = {}  # job -> {index: alias}
    for line in lines:
        text = line.strip()
        if not text.startswith(hostblock.META_PREFIX):
            continue
        job, _, rest = text[len(hostblock.META_PREFIX) :].partition(" ")
        key, _, value = rest.strip().partition("=")
        if key == "workdir":
            heads[alias_for(job)] = (job, value)
        elif key == "worker" and value.isdigit():
            workers.setdefault(job, {})[int(value)] = worker_alias(job, int(value))
    entries = []
    for alias in order:
        if alias not in heads:
            continue
        job, workdir = heads[alias]
        options = options_of.get(alias, {})
        identity = options.get("identityfile")
        known = options.get("userknownhostsfile")
        if not isinstance(known, str) or not (identity is None or isinstance(identity, str)):
            continue
        found = workers.get(job, {})
        target = Target.checked(
            job=job,
            user=options.get("user"),
            host=options.get("hostname"),
            port=options.get("port"),
            workdir=workdir,
            source=source,
            workers=tuple((options_of.get(found[i], {}).get("hostname"),
                           options_of.get(found[i], {}).get("port")) for i in sorted(found)),
        )
        entries.append(
            HostEntry(
                target=target,
                identity=None if identity is None else unquote_path(identity),
                known_hosts=unquote_path(known),
            )
        )
    return entries


def by_hand(data: bytes) -> str:
    """Our regions of a config's planned content: what a user whose config rescale-ssh may not
    write (a dotfile manager's) can put in it themselves. Empty when nothing of ours remains."""
    located = locate(data, path="the planned config")
    regions = [data[span.start : span.stop].lstrip(b"\r\n")
               for span in (located.top, located.hook) if span is not None]
    return b"\n".join(regions).decode("utf-8", "replace")


def splice(data: bytes, section: Section, *, path: str) -> bytes:
    """``data`` with our regions replaced, inserted (top of file / end of file) or removed."""
    located = locate(data, path=path)
    top = section.render()
    edits: list[tuple[int, int, bytes]] = []
    if located.top is not None:
        edits.append((located.top.start, located.top.stop, top))
    if located.hook is not None:
        edits.append((located.hook.start, located.hook.stop,
                      section.render_hook(newline_added=located.hook.flag)))
    for start, stop, replacement in sorted(edits, reverse=True):
        data = data[:start] + replacement + data[stop:]
    if located.top is None and top:
        data = top + data
    if located.hook is None and section.hook is not None:
        data += section.render_hook(newline_added=bool(data) and not data.endswith(b"\n"))
    return data
