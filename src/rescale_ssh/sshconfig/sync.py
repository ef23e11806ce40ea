"""``sync`` and ``prune``: keep the ssh config in step with the platform.

``sync`` writes a block for every running job that accepts SSH and drops the blocks of jobs
whose cluster stopped (or that the platform no longer knows); ``prune`` only drops. Dropping a
job also forgets its host keys and whatever the hook cached for it.

What is asked (joblist.py): the live jobs (``state=not_completed``, every page) and one page of
the newest completed ones (``sync`` always: a completed job's cluster may still be up; ``prune``
only when it holds a block or record of a job the live list does not show). A job with a block
or a hook record that neither list shows (completed long ago, deleted, or missed while the
pages moved under us) is asked directly, one request in the common case (its cluster's
statuses; joblist.ask): it is dropped when its cluster is down, or it ended without one, or the
platform does not know it (404); it is kept, with a note, when it could not be told. Never
dropped blindly, never kept forever. Instances are fetched for each job with a started cluster
(no logs: a new block gets the default working directory; an existing block keeps the one it
had). For each job ``sync`` adds, the key its cluster was launched with is compared with the
user's (launchkey.py): the job detail, one request, only for a job whose key is not known from
before (``add``, ``status``, an earlier ``sync``), and for at most :data:`KEY_CHECKS` jobs a
run; the others are checked by later runs' ``jobs --check-keys`` or ``status``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rescale_ssh import configfile
from rescale_ssh.configfile import Change
from rescale_ssh.errors import RescaleSSHError
from rescale_ssh.hook import jobcache
from rescale_ssh.platform import joblist, launchkey
from rescale_ssh.platform.client import Client
from rescale_ssh.settings import Settings
from rescale_ssh.sshconfig import knownhosts, section, toolfiles
from rescale_ssh.sshconfig.hostblock import HostEntry
from rescale_ssh.target import Target, alias_for, worker_alias

HOOKED = "; reached through the hook"  # the reason's end for a job with records, no block


@dataclass
class SyncResult:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)  # job -> why
    unchanged: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # running, but no block: why
    notes: list[str] = field(default_factory=list)
    change: Change | None = None
    forgotten_keys: int = 0
    requests: int = 0
    dry_run: bool = False
    launch_keys: dict[str, launchkey.Verdict] = field(default_factory=dict)  # differing only
    keys_unchecked: list[str] = field(default_factory=list)  # added, over KEY_CHECKS
    declined: bool = False  # approve said no: nothing was written
    masters_ended: list[str] = field(default_factory=list)  # shared connections told to exit


KEY_CHECKS = 20  # job details asked for by one sync at most (one request each)


def why_dropped(row: joblist.JobSummary | None) -> str | None:
    """Why a job's block should go, or None to keep it."""
    if row is None:
        return "not found on the platform"
    if row.ssh == joblist.STOPPED:
        if row.status == "unknown":  # asked directly: its cluster's statuses said enough
            return f"cluster {row.cluster.lower()}"
        return f"{row.status}, cluster {row.cluster.lower()}"
    return None


def known_heads(current: section.Section) -> dict[str, tuple[str, int]]:
    """Where each job's head was found before: its block, else the hook's cache."""
    heads: dict[str, tuple[str, int]] = {}
    if current.hook is not None:
        for job in jobcache.cached_jobs(current.hook.state_dir):
            try:
                entry = jobcache.load(current.hook.state_dir, job)
            except RescaleSSHError:
                continue
            if entry is not None and entry.target is not None:
                heads[job] = (entry.target.host, entry.target.port)
    for job, host in current.entries.items():
        heads[job] = (host.target.host, host.target.port)
    return heads


def heads_in(settings: Settings) -> dict[str, tuple[str, int]]:
    """:func:`known_heads` of the ssh config; none when it cannot be read (``jobs`` needs it
    only to save requests)."""
    path = settings.ssh_config
    try:
        return known_heads(section.read(configfile.read_bytes(path) or b"", path=str(path)))
    except RescaleSSHError:
        return {}


def rows_for(client: Client, jobs: list[str], *, add: bool,
             heads: dict[str, tuple[str, int]] | None = None,
             ) -> tuple[dict[str, joblist.JobSummary | None], list[str]]:
    """The platform's word on every job it lists (``sync``) or on the ``jobs`` held here
    (both), and notes on the jobs it could not tell about."""
    rows: dict[str, joblist.JobSummary | None] = dict(
        joblist.by_id(joblist.list_jobs(client, probe=add, trim=False,
                                        look_back=joblist.LOOK_BACK if add else 0,
                                        heads=heads)))
    missing = [job for job in jobs if job not in rows]
    if missing and not add:  # prune: the look-back only when it can settle something
        rows.update(joblist.merged(joblist.recent_items(client)))
        missing = [job for job in missing if job not in rows]
    notes = []
    for job, row in joblist.ask_each(client, missing).items():
        rows[job] = row
        if row is not None and row.problem is not None:
            notes.append(f"kept rescale-{job}: could not check job {job}: {row.problem}")
    return rows, notes


def sync(settings: Settings, client: Client, *, add: bool = True, dry_run: bool = False,
         approve: Callable[[SyncResult], bool] | None = None) -> SyncResult:
    """``approve`` is asked before anything is dropped (``result.change`` then holds the
    planned change); False leaves everything as it was (``result.declined``)."""
    path = settings.ssh_config
    current = section.read(configfile.read_bytes(path) or b"", path=str(path))
    hooked = jobcache.cached_jobs(current.hook.state_dir) if current.hook is not None else []
    rows, notes = rows_for(client, [*current.entries, *hooked], add=add,
                           heads=known_heads(current))
    result = SyncResult(dry_run=dry_run, notes=notes)
    wanted: dict[str, HostEntry] = {}
    for job, entry in current.entries.items():
        reason = why_dropped(rows.get(job))
        if reason is not None:
            result.dropped[job] = reason
        else:
            wanted[job] = entry
    if add:
        for row in rows.values():
            if row is None:
                continue
            if row.ssh != joblist.READY or row.target is None:
                if row.running and row.problem:
                    result.skipped[row.id] = row.problem
                continue
            result.notes += row.notes
            entry = _entry(settings, row.target, current.entries.get(row.id),
                           _hook_workdir(current, row.id))
            before = current.entries.get(row.id)
            if before is None:
                result.added.append(row.id)
            elif before != entry:
                result.updated.append(row.id)
            else:
                result.unchanged.append(row.id)
            wanted[row.id] = entry

    def compute(data: bytes) -> bytes:
        fresh = section.read(data, path=str(path))
        fresh.entries = dict(wanted)
        return section.splice(data, fresh, path=str(path))

    if current.hook is not None:
        # Jobs reached through the hook have no block, only records: drop those of stopped ones.
        for job in hooked:
            reason = why_dropped(rows.get(job))
            if reason is not None and job not in result.dropped and job not in wanted:
                result.dropped[job] = reason + HOOKED
    action = "sync" if add and result.added else None
    if approve is not None and result.dropped and not dry_run:
        # Dropping asks first (the CLI: --yes, or a person at a terminal): the change as it
        # would be written, from the answers already had: no request is made twice.
        result.change = toolfiles.write_section(settings, compute, dry_run=True, action=action)
        if not approve(result):
            result.declined = True
            result.requests = client.requests_made
            return result
    verdicts, result.keys_unchecked = launchkey.check_each(
        client, result.added, settings.identity, fetch_missing=True, limit=KEY_CHECKS,
        concurrency=joblist.CONCURRENCY, save=not dry_run)
    result.launch_keys = {job: v for job, v in verdicts.items() if v.state == launchkey.DIFFERS}
    result.change = toolfiles.write_section(settings, compute, dry_run=dry_run, action=action)
    moved = [job for job in result.updated
             if (current.entries[job].target.host, current.entries[job].target.port)
             != (wanted[job].target.host, wanted[job].target.port)]
    blocks = [job for job in result.dropped if job in current.entries]
    result.forgotten_keys = forget(settings, [*blocks, *moved], current, dry_run=dry_run)
    hook_only = [job for job in result.dropped if job not in current.entries]
    if hook_only:
        result.forgotten_keys += forget(settings, hook_only, current, dry_run=dry_run)
    if current.hook is not None and not dry_run:
        _forget_hook_records(current.hook.state_dir, list(result.dropped))
    if not dry_run:  # a master of a stopped cluster would only hold up the next ssh (mux.py)
        from rescale_ssh.sshconfig import mux

        for job in sorted({*result.dropped, *moved}):
            result.masters_ended += mux.stop(current.folder(), job)
    result.requests = client.requests_made
    return result


def _entry(settings: Settings, target: Target, before: HostEntry | None,
           learned: tuple[str, str] | None) -> HostEntry:
    """The list gives no working directory: keep the one read from the job's logs, by `add`
    (the block) or by the hook (its record), when it is for the same user."""
    known = (before.target.user, before.target.workdir) if before is not None else learned
    if known is not None and known[0] == target.user:
        target = Target(target.job, target.user, target.host, target.port, known[1],
                        target.workers)
    from rescale_ssh.sshconfig.forwards import carried

    return HostEntry(target=target, identity=settings.identity,
                     known_hosts=settings.known_hosts, forwards=carried(before, target))


def _hook_workdir(current: section.Section, job: str) -> tuple[str, str] | None:
    """(user, working directory) from the hook's record of the job, if it has a valid one."""
    if current.hook is None:
        return None
    from rescale_ssh.errors import InvalidValueError

    try:
        entry = jobcache.load(current.hook.state_dir, job)
    except InvalidValueError:
        return None
    if entry is None or entry.target is None:
        return None
    return entry.target.user, entry.target.workdir


def forget(settings: Settings, jobs: list[str], current: section.Section, *,
           dry_run: bool) -> int:
    if not jobs:
        return 0
    aliases = []
    for job in jobs:
        aliases.append(alias_for(job))
        entry = current.entries.get(job)
        count = len(entry.target.workers) if entry is not None else 0
        aliases += [worker_alias(job, i) for i in range(1, count + 1)]
    return knownhosts.forget(Path(settings.known_hosts), aliases, dry_run=dry_run)


def _forget_hook_records(state_dir: str, jobs: list[str]) -> None:
    from rescale_ssh.hook import blockfile, hookconf, jobcache

    for job in jobs:
        jobcache.drop(state_dir, job)
    if jobs:
        blockfile.forget(hookconf.load(state_dir), jobs)
