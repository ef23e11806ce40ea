"""The tool-owned known_hosts file (UserKnownHostsFile of every managed block).

Entries are recorded under the per-job HostKeyAlias (``rescale-<JOB>``, or ``[rescale-<JOB>]:PORT``
for a non-default port), so dropping a job drops exactly its keys. ssh lowercases HostKeyAlias
before using it (ssh.c; seen on 9.2), so names are compared case-insensitively. ssh hashes the
names when ``HashKnownHosts yes`` applies, which Debian's and Ubuntu's /etc/ssh/ssh_config set for
``Host *``: hashed entries are matched too (ssh writes the alias there without a port).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
from collections.abc import Iterable
from pathlib import Path

from rescale_ssh import configfile, posix, store
from rescale_ssh.errors import ConfigError


def _names(line: bytes) -> set[bytes]:
    fields = line.split()
    if not fields or fields[0].startswith(b"#"):
        return set()
    first = fields[1] if fields[0].startswith(b"@") and len(fields) > 1 else fields[0]
    names = set()
    for name in first.split(b","):
        if name.startswith(b"[") and b"]:" in name:
            name = name[1 : name.index(b"]:")]
        names.add(name if name.startswith(b"|1|") else name.lower())
    return names


def _hashed_match(name: bytes, drop: set[bytes]) -> bool:
    """``|1|base64(salt)|base64(HMAC-SHA1(salt, host))`` (HashKnownHosts) for one of ``drop``."""
    try:
        salt, digest = (base64.b64decode(part, validate=True) for part in name[3:].split(b"|"))
    except (ValueError, binascii.Error):
        return False
    return any(
        hmac.compare_digest(hmac.new(salt, alias, hashlib.sha1).digest(), digest) for alias in drop
    )


def _drops(line: bytes, drop: set[bytes]) -> bool:
    return any(
        _hashed_match(name, drop) if name.startswith(b"|1|") else name in drop
        for name in _names(line)
    )


def without(data: bytes, aliases: Iterable[str]) -> bytes:
    drop = {alias.lower().encode() for alias in aliases}
    kept = [line for line in data.splitlines(keepends=True) if not _drops(line, drop)]
    return b"".join(kept)


def ensure(path: Path) -> None:
    """Create the file empty, mode 0600, when missing: ssh would create it with the umask's
    mode (fopen "a" in hostfile.c) the first time it accepts a host key. A link there is
    refused: ssh would add host keys to whatever it points at."""
    store.ensure_dir(str(path.parent))
    _not_a_link(path)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, posix.NOFOLLOW | os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _not_a_link(path: Path) -> None:
    """The tool's known_hosts is its own file, never a link (configfile.update, below, writes
    through links: right for the user's ssh config, not here)."""
    if os.path.islink(path):
        raise ConfigError(f"{path} is a symbolic link (rescale-ssh never makes one there)",
                          f"remove it (`rm {path}`), then run `rescale-ssh install` again")


def forget(path: Path, aliases: Iterable[str], *, dry_run: bool = False) -> int:
    """Remove every key recorded for ``aliases``; returns how many lines were dropped."""
    aliases = list(aliases)
    _not_a_link(path)
    if configfile.read_bytes(path) is None:
        return 0
    change = configfile.update(path, lambda data: without(data, aliases), dry_run=dry_run)
    return len(change.old.splitlines()) - len(change.new.splitlines())


def host_keys(path: Path, alias: str) -> list[bytes]:
    """The public key blobs recorded for ``alias`` (plain or hashed names, ``[alias]:port``
    too); ``@cert-authority`` and ``@revoked`` lines are no key of the host's."""
    data = configfile.read_bytes(path) or b""
    wanted = {alias.lower().encode()}
    found: list[bytes] = []
    for line in data.splitlines():
        fields = line.split()
        if len(fields) < 3 or fields[0].startswith((b"#", b"@")) or not _drops(line, wanted):
            continue
        try:
            blob = base64.b64decode(fields[2], validate=True)
        except (ValueError, binascii.Error):
            continue
        if blob not in found:
            found.append(blob)
    return found
