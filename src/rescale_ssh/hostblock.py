"""The only way text enters an ssh config file: typed, validated values rendered into lines.

Nothing here accepts free text. A :class:`HostEntry` holds a validated
:class:`~rescale_ssh.target.Target` plus local paths; rendering validates every value again, so a
value that bypassed construction still cannot inject a line, a ``%`` token, an environment
reference or a second argument. Import-light: the ssh hook renders blocks on every run.
"""

from __future__ import annotations

from collections.abc import Iterable

from rescale_ssh import validate
from rescale_ssh.target import Target, alias_for

INDENT = "    "
KEEPALIVE_INTERVAL = 30
KEEPALIVE_COUNT = 4
META_PREFIX = "# rescale-ssh job="


class HostEntry:
    """One job's Host block: where it is, and the local files ssh should use for it."""

    __slots__ = ("identity", "known_hosts", "target")

    def __init__(self, *, target: Target, identity: str | None, known_hosts: str) -> None:
        self.target = target
        self.identity = identity
        self.known_hosts = known_hosts

    @property
    def job(self) -> str:
        return self.target.job

    @property
    def alias(self) -> str:
        return self.target.alias

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HostEntry) and (
            (self.target, self.identity, self.known_hosts)
            == (other.target, other.identity, other.known_hosts)
        )

    def __hash__(self) -> int:
        return hash((self.target, self.identity, self.known_hosts))

    def __repr__(self) -> str:
        return (f"HostEntry(target={self.target!r}, identity={self.identity!r}, "
                f"known_hosts={self.known_hosts!r})")


def quote_path(path: str, *, field: str) -> str:
    """A local path as one ssh_config argument.

    ssh_config(5) TOKENS: ``%%`` is a literal ``%``; a value with spaces is double-quoted (the
    tokenizer has no escape for ``"`` itself, so validate.local_path refuses it). Backslashes are
    written as ``/`` because ssh's tokenizer collapses ``\\\\`` and Windows OpenSSH accepts ``/``.
    """
    value = validate.local_path(path, field=field).replace("\\", "/").replace("%", "%%")
    if any(char.isspace() for char in value):
        return f'"{value}"'
    return value


def unquote_path(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return value.replace("%%", "%")


def shell_word(path: str, *, field: str) -> str:
    """A local path as one word of a shell command that ssh runs (ProxyCommand, Match exec).

    Single-quoted, so the shell takes it literally (validate.local_path refuses ``'`` itself);
    ``%`` is doubled because ssh expands tokens in those commands first.
    """
    return "'" + validate.local_path(path, field=field).replace("%", "%%") + "'"


def render(entry: HostEntry, *, proxy: str | None = None) -> list[str]:
    """The lines of one Host block (without line endings).

    ``proxy`` is the rescale-ssh executable for blocks written by the hook: ssh then connects
    through ``rescale-ssh proxy`` (ProxyUseFdpass: it hands the socket over and exits).
    """
    t = entry.target
    job = validate.job_id(t.job)
    workdir = validate.remote_path(t.workdir)
    lines = [
        f"Host {alias_for(job)}",
        f"{INDENT}{META_PREFIX}{job} workdir={workdir}",
        f"{INDENT}HostName {validate.host(t.host)}",
        f"{INDENT}Port {validate.port(t.port)}",
        f"{INDENT}User {validate.user(t.user)}",
    ]
    if entry.identity is not None:
        lines += [
            f"{INDENT}IdentityFile {quote_path(entry.identity, field='identity file')}",
            f"{INDENT}IdentitiesOnly yes",
        ]
    lines += [
        # HostKeyAlias takes no %-tokens (verified on 9.2), so the alias is written literally:
        # a new cluster reusing an old IP never trips "host key changed" for another job.
        f"{INDENT}HostKeyAlias {alias_for(job)}",
        f"{INDENT}UserKnownHostsFile {quote_path(entry.known_hosts, field='known_hosts file')}",
        f"{INDENT}StrictHostKeyChecking accept-new",
        f"{INDENT}ServerAliveInterval {KEEPALIVE_INTERVAL}",
        f"{INDENT}ServerAliveCountMax {KEEPALIVE_COUNT}",
    ]
    if proxy is not None:
        lines += proxy_lines(job, proxy)
    return lines


def proxy_lines(job: str, proxy: str) -> list[str]:
    command = f"{shell_word(proxy, field='rescale-ssh program')} proxy --job {validate.job_id(job)}"
    return [f"{INDENT}ProxyCommand {command} %h %p", f"{INDENT}ProxyUseFdpass yes"]


def render_all(entries: Iterable[HostEntry]) -> list[str]:
    lines: list[str] = []
    for entry in sorted(entries, key=lambda e: e.job):
        lines += render(entry)
        lines.append("")
    return lines
