"""Reading back the Host blocks of the marked section (section.py): the options through
sshconf, the job, working directory and worker numbers from the marker comments, every value
validated again; and how OpenSSH splits a config line into keyword and value."""

from __future__ import annotations

import re

from rescale_ssh.sshconfig import hostblock
from rescale_ssh.sshconfig.hostblock import HostEntry, unquote_path
from rescale_ssh.target import Target, alias_for, worker_alias

_OPTION = re.compile(r"\s*([^\s=]+)(?:\s*=\s*|\s+)?(.*)", re.S)


def split_option(text: str) -> tuple[str, str]:
    """A config line's keyword (lowercased) and its value, as OpenSSH splits them: at the first
    whitespace or ``=`` (``Port 22``, ``Port=22``, ``Port = 22``, ``Port\t22``)."""
    found = _OPTION.match(text)
    if found is None:
        return "", text.strip()
    return found.group(1).lower(), found.group(2).strip()


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
    forwards_of: dict[str, list[str]] = {}  # LocalForward: every one, not the first
    order: list[str] = []
    # sshconf misreads `Key=Value` and `Key = Value` (our lines, edited by hand): it reads them
    # as OpenSSH does once written `Key Value`.
    plain = [line if line.strip().startswith("#") or not line.strip()
             else " ".join(part for part in split_option(line) if part) for line in lines]
    for parsed_line in SshConfigFile(plain).lines_:
        if parsed_line.host is None or parsed_line.key is None:
            continue
        key = parsed_line.key.lower()
        if key == "host":
            order.append(parsed_line.host)
            continue
        if key == "localforward":
            forwards_of.setdefault(parsed_line.host, []).append(parsed_line.value)
            continue
        options_of.setdefault(parsed_line.host, {}).setdefault(key, parsed_line.value)
    heads, workers = metas(lines)
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
                           options_of.get(found[i], {}).get("port"),
                           "proxyjump" in options_of.get(found[i], {}))
                          for i in sorted(found)),
        )
        entries.append(
            HostEntry(
                target=target,
                identity=None if identity is None else unquote_path(identity),
                known_hosts=unquote_path(known),
                forwards=tuple(hostblock.parse_forward(value, source=source)
                               for value in forwards_of.get(alias, [])),
            )
        )
    return entries


def metas(lines: list[str]) -> tuple[dict[str, tuple[str, str]], dict[str, dict[int, str]]]:
    """The marker comments: heads (alias -> (job, workdir)) and workers (job -> {n: alias})."""
    heads: dict[str, tuple[str, str]] = {}
    workers: dict[str, dict[int, str]] = {}
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
    return heads, workers
