"""The managed hosts: add, remove and list the Host blocks in the ssh config's section."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rescale_ssh import configfile, errors, validate
from rescale_ssh.configfile import Change
from rescale_ssh.errors import NotFoundError
from rescale_ssh.settings import Settings
from rescale_ssh.sshconfig import forwards, knownhosts, section, toolfiles
from rescale_ssh.sshconfig.hostblock import HostEntry
from rescale_ssh.target import Target, alias_for


@dataclass(frozen=True)
class AddResult:
    entry: HostEntry
    previous: HostEntry | None
    change: Change
    dry_run: bool
    identity_missing: bool
    forgotten_keys: int


@dataclass(frozen=True)
class RemoveResult:
    job: str
    removed: HostEntry | None
    change: Change
    dry_run: bool
    forgotten_keys: int


def entries(settings: Settings) -> list[HostEntry]:
    path = settings.ssh_config
    data = configfile.read_bytes(path) or b""
    return sorted(section.read(data, path=str(path)).entries.values(), key=lambda e: e.job)


def find(settings: Settings, job: str) -> HostEntry:
    job = validate.job_id(job, source="the command line")
    for entry in entries(settings):
        if entry.job == job:
            return entry
    raise NotFoundError(
        f"no host for job {job} in {settings.ssh_config}", f"run `rescale-ssh add {job}`",
        job=job,
    )



def add(settings: Settings, target: Target, *, dry_run: bool = False) -> AddResult:
    path = settings.ssh_config
    entry = HostEntry(target=target, identity=settings.identity, known_hosts=settings.known_hosts)
    previous: list[HostEntry] = []
    folders: list[str] = []
    written: list[HostEntry] = [entry]

    def compute(data: bytes) -> bytes:
        current = section.read(data, path=str(path))
        folders[:] = [current.folder()]
        previous[:] = [current.entries[target.job]] if target.job in current.entries else []
        # The forwards saved with `forward --save` stay (forwards.py).
        written[:] = [HostEntry(target=target, identity=entry.identity,
                                known_hosts=entry.known_hosts,
                                forwards=forwards.carried(previous[0] if previous else None,
                                                          target))]
        current.entries[target.job] = written[0]
        return section.splice(data, current, path=str(path))

    change = toolfiles.write_section(settings, compute, dry_run=dry_run,
                                     action=f"add job {target.job}")
    if not dry_run:
        knownhosts.ensure(Path(entry.known_hosts))
    before = previous[0] if previous else None
    entry = written[0]
    forgotten = 0
    if before is not None and (before.target.host, before.target.port) != (target.host,
                                                                           target.port):
        # A new cluster for the job: its host key is new, the old one must not trip ssh;
        # a shared connection still open is to the old one.
        forgotten = knownhosts.forget(Path(entry.known_hosts), [target.alias], dry_run=dry_run)
        if not dry_run and folders:
            from rescale_ssh.sshconfig import mux

            mux.stop(folders[0], target.job)
    return AddResult(
        entry=entry,
        previous=before,
        change=change,
        dry_run=dry_run,
        identity_missing=not os.path.exists(entry.identity or ""),
        forgotten_keys=forgotten,
    )


def remove(settings: Settings, job: str, *, dry_run: bool = False) -> RemoveResult:
    job = validate.job_id(job, source="the command line")
    path = settings.ssh_config
    removed: list[HostEntry] = []
    folders: list[str] = []

    def compute(data: bytes) -> bytes:
        current = section.read(data, path=str(path))
        folders[:] = [current.folder()]
        if job not in current.entries:
            removed.clear()
            return data
        removed[:] = [current.entries.pop(job)]
        return section.splice(data, current, path=str(path))

    change = toolfiles.write_section(settings, compute, dry_run=dry_run, action=None)
    entry = removed[0] if removed else None
    known = Path(entry.known_hosts if entry else settings.known_hosts)
    forgotten = knownhosts.forget(known, [alias_for(job)], dry_run=dry_run)
    if entry is not None and not dry_run and folders:
        from rescale_ssh.sshconfig import mux

        # The block and its Control lines are gone: the master takes no new sessions and
        # ends with the last one (-O stop), rather than cutting off a session in use.
        mux.stop(folders[0], job, graceful=True)
    return RemoveResult(job=job, removed=entry, change=change, dry_run=dry_run,
                        forgotten_keys=forgotten)


@dataclass(frozen=True)
class Where:
    alias: str
    workdir: str
    static: bool


def locate(settings: Settings, job: str) -> Where:
    """A job's alias and working directory: its block, else what the hook cached for it."""
    job = validate.job_id(job, source="the command line")
    path = settings.ssh_config
    current = section.read(configfile.read_bytes(path) or b"", path=str(path))
    if job in current.entries:
        entry = current.entries[job]
        return Where(entry.alias, entry.target.workdir, static=True)
    if current.hook is not None:
        from rescale_ssh.hook import hookconf, matcher

        conf = hookconf.load(current.hook.state_dir)
        cached = matcher.ensure(conf, job)
        if cached.target is not None:
            return Where(alias_for(job), cached.target.workdir, static=False)
        raise errors.from_code(cached.code, cached.reason, cached.hint or None, job=job)
    raise NotFoundError(
        f"no host for job {job} in {path}",
        f"run `rescale-ssh add {job}`, or `rescale-ssh install` for every job", job=job,
    )


def remote_path(alias: str, workdir: str, subpath: str | None) -> str:
    """``rescale-<JOB>:<workdir>[/SUBPATH]`` for scp and rsync."""
    if subpath:
        workdir = workdir.rstrip("/") + "/" + subpath.lstrip("/")
    return f"{alias}:{workdir}"
