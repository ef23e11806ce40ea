"""The tool-owned known_hosts file (UserKnownHostsFile of every managed block).

Entries are recorded under the per-job HostKeyAlias (``rescale-<JOB>``, or ``[rescale-<JOB>]:PORT``
for a non-default port), so dropping a job drops exactly its keys. ssh lowercases HostKeyAlias
before using it (ssh.c; seen on 9.2), so names are compared case-insensitively.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rescale_ssh import configfile


def _names(line: bytes) -> set[bytes]:
    fields = line.split()
    if not fields or fields[0].startswith(b"#"):
        return set()
    first = fields[1] if fields[0].startswith(b"@") and len(fields) > 1 else fields[0]
    names = set()
    for name in first.split(b","):
        if name.startswith(b"[") and b"]:" in name:
            name = name[1 : name.index(b"]:")]
        names.add(name.lower())
    return names


def without(data: bytes, aliases: Iterable[str]) -> bytes:
    drop = {alias.lower().encode() for alias in aliases}
    kept = [line for line in data.splitlines(keepends=True) if not (_names(line) & drop)]
    return b"".join(kept)


def forget(path: Path, aliases: Iterable[str], *, dry_run: bool = False) -> int:
    """Remove every key recorded for ``aliases``; returns how many lines were dropped."""
    aliases = list(aliases)
    if configfile.read_bytes(path) is None:
        return 0
    change = configfile.update(path, lambda data: without(data, aliases), dry_run=dry_run)
    return len(change.old.splitlines()) - len(change.new.splitlines())
