"""``rescale-ssh hook ALIAS``: run by ssh (``Match originalhost rescale-* exec``) while it reads
its config, to make ``rescale-<JOB>`` resolvable in that same ssh run.

It writes the job's Host block into a tool-owned file that the config ``Include``s right after
the Match line (OpenSSH reads that Include after the hook ran): blockfile.py. Warm path (a job
resolved less than ``ttl`` ago): read the cache record, validate it, render the block, compare:
standard library only, no network. Cold path: one resolution per job at a time (an flock; the
others wait and reuse its result), bounded by ``timeout``, then cached. A job that cannot be
reached gets a block whose proxy prints the reason, so ssh fails within seconds with our line
last, not "Could not resolve hostname".
"""

from __future__ import annotations

import os
import sys
import time

from rescale_ssh import store
from rescale_ssh.errors import (
    ConfigError,
    ExitCode,
    InvalidValueError,
    JobEndedError,
    NotFoundError,
    RescaleSSHError,
)
from rescale_ssh.hook import blockfile, jobcache
from rescale_ssh.hook.hookconf import HookConf
from rescale_ssh.hook.jobcache import FAILED, OK, Entry
from rescale_ssh.target import Target

USAGE = "usage: rescale-ssh hook [--state DIR] ALIAS | --check"
NOT_OURS = 1  # the alias is a host of the user's own (claims.py): ssh goes on without us


def main(argv: list[str]) -> int:
    from rescale_ssh.hook import hookconf
    from rescale_ssh.target import job_from_alias

    args = list(argv)
    state_dir = None
    if len(args) == 3 and args[0] == "--state":
        state_dir = args[1]
        args = args[2:]
    if args == ["--check"]:  # doctor: this interpreter starts the hook's code
        print("rescale-ssh hook: ok")
        return 0
    if len(args) != 1:
        print(USAGE, file=sys.stderr)
        return ExitCode.USAGE
    try:
        if state_dir is None:  # installed configs always pass --state: pathlib only here
            from rescale_ssh import paths

            state_dir = str(paths.state_dir())
        trusted(state_dir)
        conf = hookconf.load(state_dir)
        try:
            job = job_from_alias(args[0], source="the ssh command line")
        except InvalidValueError:
            if users_own(conf, args[0]):  # rescale-my_box, rescale-box.lan: theirs, not a job
                return NOT_OURS
            raise
        trusted(state_dir, jobcache.path_for(state_dir, job))
        entry = cached(conf, job)
        if (entry is None or entry.state != OK) and users_own(conf, args[0]):
            # Theirs (maybe written after a failed try left a record): no block of ours.
            jobcache.drop(conf.state_dir, job)
            blockfile.forget(conf, [job])
            return NOT_OURS
        ensure(conf, job, entry, looked=True)
    except RescaleSSHError as error:
        # Not even a failure block could be written: say why; ssh goes on without our block.
        print(f"rescale-ssh: error: {error.message}", file=sys.stderr)
        if error.hint:
            print(f"hint: {error.hint}", file=sys.stderr)
        return error.exit_code
    except OSError as exc:
        # A full disk, a folder that is not ours: one line (ssh shows it), never a traceback.
        print(f"rescale-ssh: error: cannot write {exc.filename or state_dir}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return ExitCode.CONFIG
    return 0


def trusted(state_dir: str, record: str | None = None) -> None:
    """Refuse a state folder (or a record in it) that is not the user's own, or that others
    can write (ownership.py): nothing is read from it or written to it, so nothing root or
    another user put there runs, and nothing this run writes is left for them."""
    from rescale_ssh import ownership, posix

    found = ownership.problems(state_dir, records=False) if record is None else [
        p for p in [ownership.entry_problem(record, posix.euid(), inside_ours=True)] if p]
    if found:
        raise ConfigError(found[0].message, found[0].fix)


def users_own(conf: HookConf, alias: str) -> bool:
    """The alias is a host of the user's, added to their config after ``install`` (which
    excluded the ones it saw): no request goes to the platform; the Match line is rewritten to
    leave it alone from now on. Only off the warm path (no record of a job reached)."""
    from rescale_ssh import configfile
    from rescale_ssh.sshconfig import claims, included

    # hook.conf of an earlier version names no config: the one ssh most likely read.
    config = conf.config or os.environ.get("RESCALE_SSH_CONFIG") or os.path.expanduser(
        "~/.ssh/config")
    names = claims.names(config, skip=(conf.state_dir,))
    if alias not in names:
        return False
    # Under the config's own lock: the commands that write the section rewrite ssh.conf too.
    lock = configfile.lock_file(config, conf.state_dir)
    with store.Locked(lock, timeout=max(conf.timeout, 1.0)):
        text = included.read(conf.state_dir)
        static = included.static_aliases(text)
        proxy = conf.program if included.static_proxy(text) else None
        included.write(conf.state_dir, included.render(
            conf.state_dir, hook=True, claimed=names, static=static, proxy=proxy,
            persist=included.persist_of(text)))
    return True


def ensure(conf: HookConf, job: str, entry: Entry | None = None, *,
           looked: bool = False) -> Entry:
    """Make the job's block current; returns what is known of the job. ``looked``: ``entry``
    is the record, read already."""
    if not looked:
        entry = cached(conf, job)
    if entry is None or not is_fresh(conf, entry):
        entry = refresh(conf, job, previous=entry)
    publish(conf, job, entry)
    return entry


def cached(conf: HookConf, job: str) -> Entry | None:
    """The cache record. A tampered or damaged one is refused, naming the field: it counts as
    a fresh failure (so ssh explains it), and after ``failure_ttl`` the job is resolved anew."""
    try:
        return jobcache.load(conf.state_dir, job)
    except InvalidValueError as error:
        refused = failure(error, conf)
        refused.hint = "rescale-ssh resolves the job again in a few seconds"
        jobcache.save(conf.state_dir, job, refused)
        return refused


def is_fresh(conf: HookConf, entry: Entry | None, now: float | None = None) -> bool:
    """A record still to be used as it is. A failure only while what it depended on is the
    same: another platform, API key, login or identity resolves the job again at once."""
    if entry is None:
        return False
    age = entry.age(now)
    if entry.state == OK:
        return -60.0 < age < conf.ttl
    return -60.0 < age < conf.failure_ttl and entry.cause == circumstances(conf)


def failure(error: RescaleSSHError, conf: HookConf, *, resolved: float | None = None) -> Entry:
    return Entry(
        state=FAILED,
        resolved=time.time() if resolved is None else resolved,
        reason=error.message,
        hint=error.hint or "",
        code=error.exit_code,
        cause=circumstances(conf),
    )


# What a resolution reads besides hook.conf (settings.py, account.py): a failure is tied to it.
_CAUSE_VARIABLES = ("RESCALE_API_URL", "RESCALE_API_BASE_URL", "RESCALE_PROFILE",
                    "RESCALE_CONFIG_FILE", "RESCALE_API_KEY")


def circumstances(conf: HookConf) -> str:
    """A digest of everything a failed resolution read: the platform and profile chosen
    (hook.conf, environment), the API key in the environment, and which profile files are
    there as they are now (inode, size, mtime: `login` and `logout` rewrite them). A digest,
    so the record never holds the key. Computed on the failure path only: hashlib would cost
    the warm path about 1 ms."""
    import hashlib

    home = os.path.expanduser("~")
    files = [conf.apiconfig, os.environ.get("RESCALE_CONFIG_FILE", ""),
             os.path.join(home, ".config", "rescale", "apiconfig"),
             os.path.join(os.environ.get("XDG_CONFIG_HOME", ""), "rescale", "apiconfig")]
    parts = [conf.platform, conf.profile, conf.apiconfig]
    parts += [os.environ.get(name, "") for name in _CAUSE_VARIABLES]
    for name in files:
        try:
            info = os.stat(os.path.expanduser(name)) if name else None
        except OSError:
            info = None
        parts.append(f"{info.st_ino}/{info.st_size}/{info.st_mtime_ns}" if info else "-")
    text = "\0".join(parts).encode("utf-8", "surrogateescape")
    return hashlib.sha256(text).hexdigest()[:32]


def refresh(
    conf: HookConf, job: str, *, previous: Entry | None, newer_than: float | None = None
) -> Entry:
    """Resolve the job through the platform, one process per job at a time.

    Waiting processes reuse the result of the one that held the lock: a fresh record (or, with
    ``newer_than``, one resolved after that moment) is taken as it is.
    """
    started = time.monotonic()
    lock = os.path.join(conf.state_dir, "locks", store.safe_name("job-", job))
    with store.Locked(lock, timeout=conf.timeout) as got:
        if not got:
            return Entry(state=FAILED, resolved=time.time(), code=ExitCode.UNAVAILABLE,
                         reason=f"job {job} is still being resolved by another ssh",
                         hint="try again in a few seconds")
        current = cached(conf, job)
        if current is not None and current is not previous and (
            current.resolved >= newer_than if newer_than is not None
            else is_fresh(conf, current)
        ):
            return current
        budget = conf.timeout - (time.monotonic() - started)
        entry = resolve(conf, job, budget)
        old = previous.target if previous is not None else None
        new = entry.target
        if old is not None and new is not None:
            nodes = changed_nodes(old, new)
            forget_host_keys(conf, job, nodes)  # replaced: new host keys
            if nodes:
                end_masters(conf, job)  # connected to the old addresses
        jobcache.save(conf.state_dir, job, entry)
        forget_unused(conf, keep=job)
        return entry


def resolve(conf: HookConf, job: str, budget: float) -> Entry:
    """The cold path. Through the standard library's transport (no requests: ~100 ms of
    imports), but with a proxy variable set, which only requests follows."""
    if budget <= 0.5:
        return Entry(state=FAILED, resolved=time.time(), code=ExitCode.UNAVAILABLE,
                     reason=f"no time left to resolve job {job}", hint="try again")
    from rescale_ssh.platform import preconnect, transport_stdlib
    from rescale_ssh.platform.transport import REQUESTS, Transport

    # Two: the instances and the logs are asked for at once (resolver.py).
    spare = preconnect.start(conf.platform, count=2, timeout=min(5.0, budget / 2))
    enable_site_packages()  # requests, or certifi's CA bundle
    if transport_stdlib.usable():
        # The CA bundle loads while the rest is imported (the default platform is https).
        tls = transport_stdlib.TLS()
        if not conf.platform.lower().startswith("http://"):
            tls.ahead()
            if spare is not None:  # the TLS handshakes too, while the rest is imported
                host = spare.host
                spare.arm(lambda sock: tls.context().wrap_socket(sock, server_hostname=host))
        channel: str | Transport = transport_stdlib.StdlibTransport(spare, tls)
    else:
        channel = REQUESTS
    from rescale_ssh import validate
    from rescale_ssh.platform.account import key_source
    from rescale_ssh.platform.client import Client
    from rescale_ssh.platform.resolver import resolve as resolve_job
    from rescale_ssh.settings import Settings, normalize_platform

    settings = Settings(platform_flag=conf.platform or None, profile_flag=conf.profile or None,
                        config_file_flag=conf.apiconfig or None)
    try:
        # hook.conf is read on the warm path without these checks (they import urllib).
        source = f"the hook settings {os.path.join(conf.state_dir, 'hook.conf')}"
        if conf.platform:
            normalize_platform(conf.platform, source=source, in_file=True)
        if conf.profile:
            validate.profile(conf.profile, source=source)
        with Client(
            settings.platform(),
            settings.api_key(),
            # One deadline for the whole resolution (every request, page, retry and back-off)
            # bounds ssh's wait whatever the platform does; a sane cap on pages and bytes.
            deadline=budget,
            total=budget,
            # Half the budget at most per attempt: a stalled connection leaves time for a retry.
            connect_timeout=min(5.0, budget / 2),
            read_timeout=min(10.0, budget / 2),
            retries=2,
            max_pages=100,
            max_body=8 * 1024 * 1024,
            key_source=key_source(settings)[0],
            transport=channel,  # with the spare connections, if any (closed below)
        ) as client:
            target = resolve_job(client, job)
    except RescaleSSHError as error:
        if isinstance(error, JobEndedError | NotFoundError):
            end_masters(conf, job)  # a master of a cluster that is gone would only hang
        if isinstance(error, NotFoundError):
            from rescale_ssh.hook import caseless

            error.hint = caseless.hint(job, conf.state_dir, error.hint)
        return failure(error, conf)
    finally:
        if spare is not None:
            spare.close()  # what no request took
    return Entry(state=OK, resolved=time.time(), target=target)


def publish(conf: HookConf, job: str, entry: Entry) -> None:
    """Make the job's block (or the one that explains its failure) what ssh reads next."""
    blockfile.publish(conf, job, entry)


UNUSED_AFTER = 7 * 24 * 3600.0  # a job not resolved for a week: its record and block go


def forget_unused(conf: HookConf, *, keep: str) -> int:
    """Drop the records and blocks of jobs not resolved for a week, so that hosts.conf (read by
    every ssh run where the config includes it: blockfile.py) does not grow without end.
    Runs on the cold path only; `prune` also drops the jobs whose cluster stopped.
    """
    now = time.time()
    dropped = []
    for job in jobcache.cached_jobs(conf.state_dir):
        if job == keep:
            continue
        entry = cached(conf, job)
        if entry is not None and entry.age(now) < UNUSED_AFTER:
            continue
        jobcache.drop(conf.state_dir, job)
        dropped.append(job)
    if dropped:
        blockfile.forget(conf, dropped)
    return len(dropped)


def changed_nodes(old: Target, new: Target) -> list[int]:
    """The nodes whose address changed (0: the head; n: worker n), whose host keys are new."""
    changed = [0] if (old.host, old.port) != (new.host, new.port) else []
    for index in range(1, max(len(old.workers), len(new.workers)) + 1):
        before = old.workers[index - 1] if index <= len(old.workers) else None
        after = new.workers[index - 1] if index <= len(new.workers) else None
        if before != after:
            changed.append(index)
    return changed


def forget_host_keys(conf: HookConf, job: str, nodes: list[int]) -> None:
    if not nodes:
        return
    from pathlib import Path

    from rescale_ssh.sshconfig import knownhosts
    from rescale_ssh.target import alias_for, worker_alias

    knownhosts.forget(Path(conf.known_hosts),
                      [alias_for(job) if n == 0 else worker_alias(job, n) for n in nodes])


def end_masters(conf: HookConf, job: str) -> None:
    """Tell the job's shared connections to exit (mux.py): none is started for a gone job."""
    from rescale_ssh.sshconfig import mux

    mux.stop(conf.state_dir, job)


def enable_site_packages() -> None:
    """The launcher runs Python with -S; the cold path needs site-packages (requests)."""
    if "site" not in sys.modules:
        import site

        site.main()
