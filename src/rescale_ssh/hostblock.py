"""The only way text enters an ssh config file: typed, validated values rendered into lines.

Nothing here accepts free text. A :class:`HostEntry` is built from a validated
:class:`~rescale_ssh.target.Target` plus local paths checked by :func:`validate.local_path`;
rendering re-validates, so a value that bypassed construction still cannot inject a line,
a ``%`` token, an environment reference or a second argument.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from rescale_ssh import validate
from rescale_ssh.target import Target, alias_for

INDENT = "    "
KEEPALIVE_INTERVAL = 30
KEEPALIVE_COUNT = 4
_META = re.compile(r"#\s*rescale-ssh\s+job=(?P<job>\S+)\s+workdir=(?P<workdir>\S+)\s*$")


@dataclass(frozen=True)
class HostEntry:
    """One job's Host block."""

    target: Target
    identity: str | None
    known_hosts: str

    @property
    def job(self) -> str:
        return self.target.job

    @property
    def alias(self) -> str:
        return self.target.alias


def quote_path(path: str, *, field: str) -> str:
    """A local path as one ssh_config argument.

    ssh_config(5) TOKENS: ``%%`` is a literal ``%``; a value with spaces is double-quoted (the
    tokenizer has no escape for ``"`` itself, so validate.local_path refuses it). Backslashes are
    written as ``/`` because ssh's tokenizer collapses ``\\\\`` and Windows OpenSSH accepts ``/``.
    """
    value = validate.local_path(path, field=field).replace("\\", "/").replace("%", "%%")
    if any(char.isspace() or char in "#'" for char in value):
        return f'"{value}"'
    return value


def unquote_path(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return value.replace("%%", "%")


def render(entry: HostEntry) -> list[str]:
    """The lines of one Host block (without line endings)."""
    t = entry.target
    job = validate.job_id(t.job)
    workdir = validate.remote_path(t.workdir)
    lines = [
        f"Host {alias_for(job)}",
        f"{INDENT}# rescale-ssh job={job} workdir={workdir}",
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
    return lines


def render_all(entries: Iterable[HostEntry]) -> list[str]:
    lines: list[str] = []
    for entry in sorted(entries, key=lambda e: e.job):
        lines += render(entry)
        lines.append("")
    return lines


def parse_all(lines: list[str], *, source: str) -> list[HostEntry]:
    """Read back blocks written by :func:`render`, validating every value again.

    sshconf reads the options (it is fine for our own, regular blocks; design.md forbids it on
    the user's content); the job and working directory come from the marker comment.
    """
    from sshconf import SshConfigFile

    parsed = SshConfigFile(lines)
    metas: dict[str, tuple[str, str]] = {}
    for line in lines:
        match = _META.match(line.strip())
        if match:
            metas[alias_for(match["job"])] = (match["job"], match["workdir"])
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
