"""The only way text enters an ssh config file: typed, validated values rendered into lines.

Nothing here accepts free text. A :class:`HostEntry` holds a validated
:class:`~rescale_ssh.target.Target` plus local paths; rendering validates every value again, so a
value that bypassed construction still cannot inject a line, a ``%`` token, an environment
reference or a second argument. Import-light: the ssh hook renders blocks on every run.
"""

from __future__ import annotations

from rescale_ssh import validate
from rescale_ssh.target import alias_for, worker_alias

# Not ``from typing import TYPE_CHECKING``: typing costs the hook ~10 ms (mypy knows the name).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from rescale_ssh.target import Target

INDENT = "    "
FORWARD_BIND = "127.0.0.1"  # a saved forward listens on loopback only, never on every interface
Forward = tuple[int, str, int]  # local port, host as the head node sees it, port there
# A peer silent for 45 s ends the connection: with a shared connection (mux.py), that is also
# how long a master of a cluster that vanished can hold up a new ssh before it gives up on it.
KEEPALIVE_INTERVAL = 15
KEEPALIVE_COUNT = 3
META_PREFIX = "# rescale-ssh job="
PYTHON_FLAGS = ("-I", "-S")  # the only words of a program that are not quoted paths


class HostEntry:
    """One job's Host block: where it is, and the local files ssh should use for it."""

    __slots__ = ("forwards", "identity", "known_hosts", "target")

    def __init__(self, *, target: Target, identity: str | None, known_hosts: str,
                 forwards: tuple[Forward, ...] = ()) -> None:
        self.target = target
        self.identity = identity
        self.known_hosts = known_hosts
        self.forwards = tuple(sorted(forwards))  # saved with `forward --save` (forwards.py)

    @property
    def job(self) -> str:
        return self.target.job

    @property
    def alias(self) -> str:
        return self.target.alias

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HostEntry) and (
            (self.target, self.identity, self.known_hosts, self.forwards)
            == (other.target, other.identity, other.known_hosts, other.forwards)
        )

    def __hash__(self) -> int:
        return hash((self.target, self.identity, self.known_hosts, self.forwards))

    def __repr__(self) -> str:
        return (f"HostEntry(target={self.target!r}, identity={self.identity!r}, "
                f"known_hosts={self.known_hosts!r}, forwards={self.forwards!r})")


def quote_path(path: str, *, field: str) -> str:
    """A local path as one ssh_config argument.

    ssh_config(5) TOKENS: ``%%`` is a literal ``%``; a value with spaces is double-quoted (the
    tokenizer has no escape for ``"`` itself, so validate.local_path refuses it). Backslashes
    (allowed in Windows paths only) are written as ``/``: ssh's tokenizer collapses ``\\\\``, and
    Windows OpenSSH accepts ``/``.
    """
    value = validate.local_path(path, field=field).replace("\\", "/").replace("%", "%%")
    if value.split(maxsplit=1) != [value]:  # any whitespace (str.split, at C speed)
        return f'"{value}"'
    return value


def unquote_path(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return value.replace("%%", "%")


def shell_word(path: str, *, field: str, tokens: bool = True) -> str:
    """A local path as one word of a shell command that ssh runs (ProxyCommand, Match exec).

    Single-quoted, so the shell takes it literally (validate.local_path refuses ``'`` itself);
    ``%`` is doubled because ssh expands tokens in those commands first (``tokens=False``: for a
    script of our own, which no ssh expands).
    """
    value = validate.local_path(path, field=field)
    return "'" + (value.replace("%", "%%") if tokens else value) + "'"


def render(entry: HostEntry, *, proxy: list[str] | None = None,
           accept_new: bool = False, mux: tuple[str, str] | None = None) -> list[str]:
    """The lines of one Host block (without line endings).

    ``proxy`` (from :func:`proxy_lines`) is added to blocks written by the hook: ssh then connects
    through ``rescale-ssh proxy``, which hands the socket over and exits (ProxyUseFdpass).
    ``accept_new`` writes ``StrictHostKeyChecking accept-new`` into the block (the hook's, in
    the tool's own files); the static blocks in the user's file get it from the tool's
    included file instead (included.py), so that file holds nothing an OpenSSH older than 7.6
    refuses to read (a config shared through dotfiles with an older machine). ``mux`` (the
    state folder and ControlPersist) shares connections (mux.py): the hook's blocks only, the
    static ones get it from the included file too.
    """
    t = entry.target
    job = validate.job_id(t.job)
    meta = f"{job} workdir={validate.remote_path(t.workdir)}"
    lines = [
        *_login_lines(entry, alias_for(job), meta, t.host, t.port, accept_new),
        f"{INDENT}ServerAliveInterval {KEEPALIVE_INTERVAL}",
        f"{INDENT}ServerAliveCountMax {KEEPALIVE_COUNT}",
        *(forward_line(forward) for forward in entry.forwards),
    ]
    if proxy is not None:
        lines += proxy
    lines += _mux_lines(mux, alias_for(job))
    for index, (host, port, jump) in enumerate(t.workers, start=1):
        lines += ["", *render_worker(entry, index, host, port, jump=jump,
                                     accept_new=accept_new, mux=mux)]
    return lines


def _mux_lines(mux: tuple[str, str] | None, alias: str) -> list[str]:
    if mux is None:
        return []
    from rescale_ssh.sshconfig import mux as sharing

    state_dir, persist = mux
    if persist == sharing.OFF or not sharing.supported() or not sharing.fits(state_dir, alias):
        return []
    return sharing.control_lines(state_dir, persist, INDENT)


def forward_line(forward: Forward) -> str:
    """``LocalForward 127.0.0.1:LOCAL HOST:PORT``: ssh_config(5) takes ``[bind_address:]port
    host:hostport``, an IPv6 host in brackets. Every value validated again here."""
    local, host, remote = forward
    checked = validate.host(host)
    far = f"[{checked}]" if ":" in checked else checked
    return (f"{INDENT}LocalForward {FORWARD_BIND}:{validate.port(local)} "
            f"{far}:{validate.port(remote)}")


def parse_forward(value: str, *, source: str) -> Forward:
    """A LocalForward value this module wrote (``127.0.0.1:8888 localhost:8888``) read back.
    Any other bind address is refused: ours listen on loopback only."""
    from rescale_ssh.errors import InvalidValueError

    parts = value.split()
    if len(parts) == 2:
        bind, _, local = parts[0].rpartition(":")
        host, _, remote = parts[1].rpartition(":")
        if bind.strip("[]") == FORWARD_BIND and host:
            return (validate.port(local, source=source), validate.host(host.strip("[]"),
                    source=source), validate.port(remote, source=source))
    raise InvalidValueError("LocalForward", value, f"{FORWARD_BIND}:PORT HOST:PORT",
                            source=source)


def render_worker(entry: HostEntry, index: int, host: str, port: int, *, jump: bool = True,
                  accept_new: bool = False, mux: tuple[str, str] | None = None) -> list[str]:
    """A worker node: at its own public address and port, or through the head node
    (``ProxyJump rescale-<JOB>``) at its private one."""
    job = validate.job_id(entry.target.job)
    alias = worker_alias(job, index)
    lines = _login_lines(entry, alias, f"{job} worker={index}", host, port, accept_new)
    if jump:
        lines.append(f"{INDENT}ProxyJump {alias_for(job)}")
    return lines + _mux_lines(mux, alias)


def _login_lines(entry: HostEntry, alias: str, meta: str, host: str, port: int,
                 accept_new: bool) -> list[str]:
    """What every block has: where, who, which key, and the per-alias host key."""
    lines = [
        f"Host {alias}",
        f"{INDENT}{META_PREFIX}{meta}",
        f"{INDENT}HostName {validate.host(host)}",
        f"{INDENT}Port {validate.port(port)}",
        f"{INDENT}User {validate.user(entry.target.user)}",
    ]
    if entry.identity is not None:
        lines += [
            f"{INDENT}IdentityFile {quote_path(entry.identity, field='identity file')}",
            f"{INDENT}IdentitiesOnly yes",
        ]
    lines += [
        # HostKeyAlias takes no %-tokens (verified on 9.2), so the alias is written literally:
        # a new cluster reusing an old IP never trips "host key changed" for another job.
        f"{INDENT}HostKeyAlias {alias}",
        f"{INDENT}UserKnownHostsFile {quote_path(entry.known_hosts, field='known_hosts file')}",
    ]
    if accept_new:  # OpenSSH 7.6 and newer (openssh.py)
        lines.append(f"{INDENT}StrictHostKeyChecking accept-new")
    return lines


def command(program: list[str], *, tokens: bool = True) -> str:
    """The words that start rescale-ssh, shell-quoted (e.g. python -I -S launch.py)."""
    return " ".join(
        word if word in PYTHON_FLAGS
        else shell_word(word, field="rescale-ssh program", tokens=tokens)
        for word in program
    )


def proxy_lines(job: str, program: list[str], state_dir: str) -> list[str]:
    """ProxyCommand through ``rescale-ssh proxy`` for a job (ssh expands %h and %p)."""
    words = f"{command(program)} proxy --state {shell_word(state_dir, field='state folder')}"
    return [
        f"{INDENT}ProxyCommand {words} --job {validate.job_id(job)} %h %p",
        f"{INDENT}ProxyUseFdpass yes",
    ]


def failure_block(job: str, program: list[str], state_dir: str) -> list[str]:
    """A block for a job that cannot be reached: the proxy prints why, and ssh keeps quiet
    (LogLevel QUIET), so the reason is the last thing the user sees."""
    job = validate.job_id(job)
    return [
        f"Host {alias_for(job)}",
        f"{INDENT}# rescale-ssh job={job} cannot be reached; the proxy says why",
        *proxy_lines(job, program, state_dir),
        f"{INDENT}LogLevel QUIET",
    ]


def render_all(entries: Iterable[HostEntry], *, accept_new: bool = False) -> list[str]:
    lines: list[str] = []
    for entry in sorted(entries, key=lambda e: e.job):
        lines += render(entry, accept_new=accept_new)
        lines.append("")
    return lines
