"""The SSH key a job's cluster was launched with, compared with the user's own.

A cluster accepts the public key that was in Settings → Job Settings (or in the job's own
settings) when the job was submitted, and keeps it while it runs (rescale-api.md, "SSH key").
A user whose key is another one gets nothing but ssh's ``Permission denied (publickey)``; this
module tells them before they connect. The cluster's key is the v2 job detail's ``publicKey``
(one request; v2, the far larger rate limit); the user's is the public half of the identity
the block uses. Keys are compared by type and blob (their fingerprint), never by comment.

What was learned is remembered in the state folder (file ``launchkeys``: per platform and job,
the fingerprints of the keys the cluster was launched with, no more than :data:`REMEMBERED`
jobs), because a running cluster's key never changes: ``jobs``, ``shell`` and ``code`` then
warn without asking the platform, and ``add``/``sync`` ask once per job. The verdict itself is
not remembered: the user may change their identity at any time.

Anything that cannot be told (the detail fails: 403, 404, 429, a timeout; no ``publicKey``, an
empty or unreadable one; no key at the identity path) is :data:`UNKNOWN`, and nothing is said
(``doctor JOB`` explains those). An empty ``publicKey`` may well mean a cluster no key can
reach, but the platform's meaning of it is not confirmed: only ``doctor`` says so.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rescale_ssh import paths, store
from rescale_ssh.errors import RescaleSSHError

if TYPE_CHECKING:
    from rescale_ssh.keys.keypair import PublicKey
    from rescale_ssh.platform.client import Client

log = logging.getLogger("rescale_ssh.platform.launchkey")

MATCHES, DIFFERS, UNKNOWN = "matches", "differs", "unknown"
FILE = "launchkeys"
REMEMBERED = 400  # jobs kept in FILE (~70 bytes each: well under store's 64 KiB a record)
MAX_KEYS = 4  # keys kept per job (publicKey may hold several lines)
WHERE = "account Settings → Job Settings → SSH Public Key"
HINT = (f"paste your public key (`rescale-ssh key show`) into {WHERE}, save, and submit the job "
        "again: a running cluster keeps the key it was launched with (a job given its own key "
        "in its settings, #RESCALE_PUBLIC_KEY, needs yours there); or use --identity with the "
        "private key of the key it was launched with")

Key = tuple[str, str]  # (type, SHA256 fingerprint): what two copies of one key share


@dataclass(frozen=True)
class Verdict:
    state: str  # MATCHES, DIFFERS or UNKNOWN
    launched: tuple[Key, ...] = ()  # the cluster's keys, when known
    yours: Key | None = None
    identity: str | None = None

    def message(self, job: str) -> str | None:
        """What to tell the user (None unless the keys differ)."""
        if self.state != DIFFERS or self.yours is None:
            return None
        theirs = ", ".join(fingerprint for _, fingerprint in self.launched)
        return (f"job {job}'s cluster was launched with key {theirs}, not your key "
                f"{self.yours[1]} ({self.identity}): ssh to it fails with 'Permission denied "
                "(publickey)'")

    def summary(self) -> str | None:
        """One line for ``status``: None when unknown."""
        if self.state == MATCHES and self.yours is not None:
            return f"matches your key {self.yours[1]} ({self.identity})"
        if self.state == DIFFERS and self.yours is not None:
            theirs = ", ".join(fingerprint for _, fingerprint in self.launched)
            return f"differs: the cluster has {theirs}, not your key {self.yours[1]}"
        return None


def parse(value: object) -> list[PublicKey]:
    """The OpenSSH public keys in a job's ``publicKey`` (one a line; unreadable lines left
    out; PuTTY users' keys end in a comment such as ``rsa-key-20191205``)."""
    from rescale_ssh.keys import keypair

    if not isinstance(value, str):
        return []
    found = []
    for line in value.strip().splitlines()[:16]:
        try:
            found.append(keypair.PublicKey.parse(line, what="the job's public key"))
        except (RescaleSSHError, ValueError):
            continue
    return found


def key_of(public: PublicKey) -> Key:
    return public.kind, public.fingerprint


def yours(identity: str) -> Key | None:
    """The public half of the key at ``identity``; None when there is none to read (the
    missing-identity warnings say so elsewhere)."""
    from rescale_ssh.keys import keypair

    try:
        return key_of(keypair.inspect(identity).public)
    except (RescaleSSHError, OSError, ValueError) as exc:
        log.debug("launch key: no key to compare at %s: %s", identity, exc)
        return None


def judge(launched: tuple[Key, ...] | None, identity: str) -> Verdict:
    if not launched:
        return Verdict(UNKNOWN, identity=identity)
    mine = yours(identity)
    if mine is None:
        return Verdict(UNKNOWN, launched, identity=identity)
    return Verdict(MATCHES if mine in launched else DIFFERS, launched, mine, identity)


def fetch(client: Client, job: str) -> tuple[Key, ...] | None:
    """The cluster's keys, from the v2 job detail (one request); None when it cannot be told."""
    try:
        body = client.get(f"/api/v2/jobs/{job}/", what=f"job {job}")
    except RescaleSSHError as error:
        log.debug("launch key of job %s: %s", job, error.message)
        return None
    value = body.get("publicKey") if isinstance(body, dict) else None
    launched = tuple(dict.fromkeys(key_of(k) for k in parse(value)))[:MAX_KEYS]
    if not launched:
        log.debug("launch key of job %s: the job detail names no readable key", job)
    return launched or None


# -- what was learned ---------------------------------------------------------------------------


def _path() -> str:
    return os.path.join(str(paths.state_dir()), FILE)


def _name(platform: str, job: str) -> str:
    return f"{store.crc32(platform.rstrip('/').encode()):08x}/{job}"


def _read() -> dict[str, str]:
    record = store.read_record(_path()) or {}
    return {k: v for k, v in record.items() if not k.startswith("\0")}


def _decode(value: str) -> tuple[Key, ...] | None:
    found = []
    for part in value.split(",")[:MAX_KEYS]:
        kind, _, fingerprint = part.strip().partition(" ")
        if kind and fingerprint.startswith("SHA256:") and " " not in fingerprint:
            found.append((kind, fingerprint))
    return tuple(found) or None


def known(platform: str, jobs: Iterable[str]) -> dict[str, tuple[Key, ...]]:
    """The keys remembered for ``jobs`` on ``platform`` (no request)."""
    record = _read()
    found = {}
    for job in jobs:
        value = record.get(_name(platform, job))
        launched = _decode(value) if value is not None else None
        if launched:
            found[job] = launched
    return found


def remember(platform: str, learned: Mapping[str, tuple[Key, ...] | None]) -> None:
    """Keep what was learned (a cache: a read-only state folder, or a race with another
    command, costs a request next time, nothing else)."""
    fresh = {job: keys for job, keys in learned.items() if keys}
    if not fresh:
        return
    record = _read()
    for job, launched in fresh.items():
        name = _name(platform, job)
        record.pop(name, None)  # the newest last: the oldest go first
        record[name] = ",".join(f"{kind} {fingerprint}" for kind, fingerprint in launched)
    kept = dict(list(record.items())[-REMEMBERED:])
    with contextlib.suppress(OSError, RescaleSSHError):
        store.write_atomic(_path(), store.format_record(kept), durable=False)


def check(client: Client, job: str, identity: str) -> Verdict:
    """The verdict for one job: what was remembered, else the job detail (then remembered);
    no request when there is no key of the user's to compare with."""
    return check_each(client, [job], identity, fetch_missing=True)[0][job]


def check_each(client: Client, jobs: Iterable[str], identity: str, *, fetch_missing: bool,
               limit: int | None = None, concurrency: int = 8, save: bool = True
               ) -> tuple[dict[str, Verdict], list[str]]:
    """Verdicts for ``jobs``: remembered ones free; with ``fetch_missing`` the others from
    their job details (at most ``limit`` of them, ``concurrency`` at a time), remembered
    unless not ``save`` (--dry-run). Also returns the jobs left unchecked by the limit."""
    from concurrent.futures import ThreadPoolExecutor

    wanted = list(dict.fromkeys(jobs))
    launched: dict[str, tuple[Key, ...] | None] = dict(known(client.base_url, wanted))
    missing = [job for job in wanted if job not in launched]
    left: list[str] = []
    mine = yours(identity) if launched or (fetch_missing and missing) else None
    if mine is None:  # nothing to compare with: ask nothing
        return {job: Verdict(UNKNOWN, launched.get(job) or (), identity=identity)
                for job in wanted}, []
    if fetch_missing and missing:
        if limit is not None:
            missing, left = missing[:limit], missing[limit:]
        if len(missing) == 1:  # on this thread: its connection may be open already
            fetched = {missing[0]: fetch(client, missing[0])}
        else:
            with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(missing)))) as pool:
                fetched = dict(zip(missing, pool.map(lambda job: fetch(client, job), missing),
                                   strict=True))
        if save:
            remember(client.base_url, fetched)
        launched.update(fetched)
    verdicts = {}
    for job in wanted:
        keys = launched.get(job)
        if not keys:
            verdicts[job] = Verdict(UNKNOWN, keys or (), identity=identity)
        else:
            verdicts[job] = Verdict(MATCHES if mine in keys else DIFFERS, keys, mine, identity)
    return verdicts, left


def known_verdict(platform: str, job: str, identity: str) -> Verdict:
    """The verdict from what was remembered alone (``shell``, ``code``: no request)."""
    launched = known(platform, [job]).get(job)
    return judge(launched, identity) if launched else Verdict(UNKNOWN, identity=identity)
