"""The files of Host blocks that the hook writes and the config ``Include``s.

OpenSSH reads an ``Include``'s files on every run, for every host, even inside a block that does
not apply (readconf.c passes SSHCONF_NEVERMATCH down): whatever sits in these files costs every
``ssh`` the user runs, ``git push`` included (bench/ item 2). So the files are named without a
glob and stay small:

``fresh.conf`` (read right after the hook, under its ``Match`` in ssh.conf: included.py)
    The blocks that ssh runs need *now*: the job just resolved, or the one that cannot be reached
    (its proxy explains why). An entry lives :data:`FRESH_FOR` seconds; the file is deleted once
    every entry is older, so most of the time it does not exist and costs one failed ``stat``.
    The Match sits at the top of the user's config, so these blocks win over the user's own
    ``Host *`` from a job's very first connection.

``hosts.conf`` (only for configs written by an earlier version)
    Before, the Match sat at the end of the file, and every job reached through the hook was
    repeated here, included at the top, when the user's config set options of ours for every
    host (``conf.precedence``). Kept up to date while a hook.conf of that layout is in use; the
    next command that writes the section (an upgrade) removes it.

Both are rendered from the validated cache records (never copied from the files themselves,
which a same-user attacker could have edited), under one lock, and replaced atomically.
Standard library only: the hook's warm path reads them.
"""

from __future__ import annotations

import os
import time

from rescale_ssh import posix, store
from rescale_ssh.errors import InvalidValueError, RescaleSSHError
from rescale_ssh.hook import jobcache
from rescale_ssh.hook.hookconf import HookConf
from rescale_ssh.hook.jobcache import FAILED, OK, Entry
from rescale_ssh.sshconfig import hostblock
from rescale_ssh.sshconfig.hostblock import HostEntry
from rescale_ssh.target import alias_for, worker_alias

FRESH_FOR = 60.0  # seconds a block stays in fresh.conf (ssh reads it microseconds after the hook)
GRACE = 3.0  # seconds between taking an entry's markers away and taking the entry away
MARKERS = "live"
MARK = "# rescale-ssh block job="
# ssh opens an included file even under a Match that does not apply, and stops for every host
# when it cannot read one: a file written by root (sudo with the user's HOME) must stay
# readable. Nothing is lost: the state folder is 0700 (a folder root made there, 0700 and its
# own, is one ssh cannot enter: the Include then matches nothing, which ssh ignores).
INCLUDED_MODE = 0o644
HEADER = ("# Written by the rescale-ssh hook from its records (rescale-ssh list, status);\n"
          "# edits here are overwritten. `rescale-ssh uninstall` removes this file.\n")


def block_for(conf: HookConf, job: str, entry: Entry) -> str:
    """The job's block: where it is, or (a failed entry) a proxy that says why not."""
    if entry.state == OK and entry.target is not None:
        lines = hostblock.render(
            HostEntry(target=entry.target, identity=conf.identity, known_hosts=conf.known_hosts),
            proxy=hostblock.proxy_lines(job, conf.program, conf.state_dir),
            accept_new=True,  # install refused an OpenSSH older than 7.6 (openssh.py)
            mux=conf.sharing,
        )
    else:
        lines = hostblock.failure_block(job, conf.program, conf.state_dir)
    return "\n".join(lines) + "\n"


def top_block(conf: HookConf, job: str, entry: Entry) -> str:
    """The job's entry in hosts.conf: its Host lines and the options the user's config sets for
    every host (a ProxyJump there competes with our ProxyCommand: then that goes first too)."""
    from rescale_ssh.hook.hookconf import ALL

    if ALL in conf.precedence:
        return block_for(conf, job, entry)
    keep = set(conf.precedence)
    if keep & {"proxyjump", "proxycommand"}:
        keep |= {"proxycommand", "proxyusefdpass"}
    lines = [line for line in block_for(conf, job, entry).split("\n")
             if line.startswith("Host ") or line.strip().partition(" ")[0].lower() in keep]
    return "\n".join(lines) + "\n"


def publish(conf: HookConf, job: str, entry: Entry, *, now: float | None = None) -> None:
    """Make sure the ssh run that called the hook reads the job's current block.

    Warm path (nothing changed): read one or two small files, compare, return. Otherwise
    rewrite what changed, under the lock.
    """
    now = time.time() if now is None else now
    block = block_for(conf, job, entry)
    _legacy(conf, job, entry, block)
    hosts_current = True
    if conf.precedence:
        found = _find(_read(conf.hosts_file), job)
        reached = entry.state == OK and entry.target is not None
        hosts_current = found == top_block(conf, job, entry) if reached else found is None
    written = _fresh_at(conf, _read(conf.fresh_file), job, block, now)
    if hosts_current and written is not None:
        _mark(conf, job, entry, written)  # a marker lasts as long as the block it points at
        return
    with store.Locked(_lock(conf), timeout=max(conf.timeout, 1.0)):
        _current_script(conf)
        if not hosts_current:
            _write_hosts(conf, changed={job: entry})
        # Stale entries are the sweeper's to drop (markers first): not where there is none.
        stale = set() if posix.can_fork() else _stale(conf, time.time())
        _write_fresh(conf, add=job, entry=entry, drop=stale)
        _mark(conf, job, entry, now)
    sweep_later(conf)


def _current_script(conf: HookConf) -> None:
    """The script ssh runs, as this version writes it: after an upgrade, the one an earlier
    version wrote (which honoured a marker however old) is replaced the first time the hook
    writes a block, not only by the next command that writes the section."""
    try:
        with open(conf.script_file, encoding="utf-8") as handle:
            text = handle.read(64 * 1024)
        wanted = conf.script_text()
        if text != wanted:
            store.write_atomic(conf.script_file, wanted, mode=0o700)
    except (OSError, UnicodeDecodeError, RescaleSSHError):
        pass  # the hook still runs; `rescale-ssh install` (or doctor) deals with the script


def _mark(conf: HookConf, job: str, entry: Entry, now: float) -> None:
    """While the job's block is in fresh.conf and its record stays fresh, the config's exec
    command finds ``<state>/live/<alias>`` and skips Python altogether (a shell test):
    connections within a minute of each other cost no hook run. Not for a failure (the hook
    must run again to retry), nor for a record that would outlive its ``ttl`` meanwhile."""
    lasting = entry.age(now) + fresh_for(conf) + GRACE < conf.ttl
    if entry.state != OK or entry.target is None or not lasting:
        _unmark(conf, job)
        return
    folder = os.path.join(conf.state_dir, MARKERS)
    names = [alias_for(job), *(worker_alias(job, index)
                               for index in range(1, len(entry.target.workers) + 1))]
    # The marker's mtime is when it stops counting (the script compares it with a file it
    # touches): a sweeper that died, or a reboot, cannot keep a job on the warm path.
    until = now + fresh_for(conf) - GRACE
    for name in names:
        # One lstat when it is there; never made or touched through a link.
        store.mark(os.path.join(folder, name), until)


def _unmark(conf: HookConf, job: str) -> None:
    folder = os.path.join(conf.state_dir, MARKERS)
    try:
        names = os.listdir(folder)
    except OSError:
        return
    alias = alias_for(job)
    for name in names:
        if name == alias or (name.startswith(f"{alias}-") and name[len(alias) + 1:].isdigit()):
            store.remove(os.path.join(folder, name))


def _stale(conf: HookConf, now: float) -> set[str]:
    return {job for job, at in jobs_in(_read(conf.fresh_file))
            if abs(now - at) >= fresh_for(conf)}


LEGACY = ("hosts", "failed")  # 0.1.0: one file per job, named by an Include glob


def _legacy(conf: HookConf, job: str, entry: Entry, block: str) -> None:
    """A config written by 0.1.0 includes ``<state>/hosts/*.conf`` and ``failed/*.conf``: keep
    it working until ``install`` runs again (which removes those folders; one ``stat`` here)."""
    if not os.path.isdir(os.path.join(conf.state_dir, LEGACY[0])):
        return
    name = store.safe_name("rescale-", job) + ".conf"
    good, bad = (os.path.join(conf.state_dir, folder, name) for folder in LEGACY)
    if entry.state == OK and entry.target is not None:
        store.write_atomic(good, block, mode=INCLUDED_MODE)
        store.remove(bad)
    else:
        store.write_atomic(bad, block, mode=INCLUDED_MODE)
        store.remove(good)


def fresh_for(conf: HookConf) -> float:
    """How long a block stays in fresh.conf: longer than any hook run can wait for a lock and
    the platform, so a block another run wrote while this one waited is still there."""
    return max(FRESH_FOR, 2 * conf.timeout + 5.0)


def forget(conf: HookConf, jobs: list[str]) -> None:
    """Drop jobs from both files (their records are gone or about to go)."""
    with store.Locked(_lock(conf), timeout=max(conf.timeout, 1.0)):
        if conf.precedence:
            _write_hosts(conf, dropped=set(jobs))
        _write_fresh(conf, drop=set(jobs) | _stale(conf, time.time()))


def rebuild(conf: HookConf) -> None:
    """Both files from the records, as ``conf`` wants them (``install`` may have just turned
    ``precedence`` on or off, or changed the ttl the markers were made for)."""
    with store.Locked(_lock(conf), timeout=max(conf.timeout, 1.0)):
        folder = os.path.join(conf.state_dir, MARKERS)
        for name in os.listdir(folder) if os.path.isdir(folder) else []:
            store.remove(os.path.join(folder, name))
        if conf.precedence:
            _write_hosts(conf)
        else:
            store.remove(conf.hosts_file)
        _write_fresh(conf, drop=_stale(conf, time.time()))


def expire(conf: HookConf, *, now: float | None = None, grace: float = 0.0) -> None:
    """Take what is stale out of fresh.conf: the markers first, then, ``grace`` seconds later,
    the entries. An ssh whose script found a marker reads fresh.conf microseconds later, and
    must still find the block there."""
    clock = time.time() if now is None else now
    if not _stale(conf, clock):
        return
    with store.Locked(_lock(conf), timeout=max(conf.timeout, 1.0)):
        stale = _stale(conf, clock)
        for job in stale:
            _unmark(conf, job)
    if grace:
        time.sleep(grace)
    with store.Locked(_lock(conf), timeout=max(conf.timeout, 1.0)):
        later = time.time() if now is None else now
        _write_fresh(conf, drop=stale & _stale(conf, later))


def sweep_later(conf: HookConf) -> None:
    """Make sure fresh.conf is deleted once its entries are stale, even if no hook runs again.

    One sweeper per state folder (it holds ``locks/sweeper``): a process detached from ssh
    (new session, /dev/null for every stream, so nothing waits for it) that sleeps until the
    newest entry is stale, prunes, and exits when the file is gone: at most a minute or so
    after the last hook run. Where there is no fork (Windows), the next hook run prunes.
    """
    if not posix.can_fork():
        return
    lock = store.Locked(os.path.join(conf.state_dir, "locks", "sweeper"), timeout=0.0)
    if not lock.__enter__():
        return  # a sweeper is at work: it sees the new entries when it wakes
    try:
        child = posix.fork()
    except OSError:  # no process to spare: the next hook run prunes instead
        lock.release()
        return
    if child:
        lock.detach()  # the lock stays with the sweeper (its copy of the descriptor, or claim)
        os.waitpid(child, 0)
        return
    try:  # the first child: detach, then leave the work to a grandchild init adopts
        posix.new_session()
        null = os.open(os.devnull, os.O_RDWR)
        for stream in (0, 1, 2):
            os.dup2(null, stream)
        fd = lock.fd  # -1 when a lock file stands in for flock (store.Locked)
        if fd < 0:
            os.closerange(3, 65536)
        else:
            os.closerange(3, fd)
            os.closerange(fd + 1, 65536)
        if posix.fork() == 0:
            lock.adopt()
            try:
                _sweep(conf)
            finally:
                lock.release()
    finally:
        os._exit(0)


def _sweep(conf: HookConf) -> None:
    os.chdir("/")
    window = fresh_for(conf)
    while True:
        stamps = [at for _, at in jobs_in(_read(conf.fresh_file))]
        if not stamps:
            return
        wait = max(stamps) + window - time.time()
        time.sleep(min(max(wait, 0.0), window) + 0.5)  # never long: a clock set back
        if not os.path.exists(conf.fresh_file):
            return  # gone meanwhile (uninstall): do not make the folders again for a lock
        expire(conf, grace=GRACE)


def jobs_in(text: str) -> list[tuple[str, float]]:
    """(job, written at) of each block in a file's text, in order."""
    found = []
    for line in text.split("\n"):
        if line.startswith(MARK):
            job, _, rest = line[len(MARK):].partition(" at=")
            try:
                at = float(rest) if rest else 0.0
            except ValueError:
                at = 0.0
            found.append((job, at))
    return found


def _lock(conf: HookConf) -> str:
    return os.path.join(conf.state_dir, "locks", "blocks")


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return ""


def _find(text: str, job: str, at: str = "") -> str | None:
    """The block after ``job``'s mark (``at`` is the rest of the mark: `` at=...`` in
    fresh.conf), up to the next mark; None when the job has none."""
    mark = f"{MARK}{job}{at}\n"
    if text.startswith(mark):
        start = len(mark)
    else:
        found = text.find(f"\n{mark}")
        if found < 0:
            return None
        start = found + 1 + len(mark)
    stop = text.find(f"\n{MARK}", start)
    return text[start:] if stop < 0 else text[start : stop + 1]


def _fresh_at(conf: HookConf, text: str, job: str, block: str, now: float) -> float | None:
    """When the job's current block was written to fresh.conf, if it is there and stays long
    enough for this ssh run to read it (another hook run drops entries older than
    FRESH_FOR)."""
    for name, at in reversed(jobs_in(text)):
        if name == job:
            young = abs(now - at) < fresh_for(conf) / 2
            return at if young and _find(text, job, f" at={at:.3f}") == block else None
    return None


def _entry(conf: HookConf, job: str) -> Entry | None:
    try:
        return jobcache.load(conf.state_dir, job)
    except InvalidValueError:
        return None  # the hook refuses it (and explains) when that job is used next


def _write_hosts(conf: HookConf, *, changed: dict[str, Entry] | None = None,
                 dropped: set[str] | None = None) -> None:
    """hosts.conf from every record of a job that was reached (a failed one is left out: its
    block in fresh.conf explains it)."""
    changed = changed or {}
    parts = [HEADER]
    for job in sorted(set(jobcache.cached_jobs(conf.state_dir)) | set(changed)):
        if dropped and job in dropped:
            continue
        entry = changed[job] if job in changed else _entry(conf, job)
        if entry is not None and entry.state == OK and entry.target is not None:
            parts.append(f"{MARK}{job}\n{top_block(conf, job, entry)}")
    store.write_atomic(conf.hosts_file, "".join(parts), mode=INCLUDED_MODE)


def _write_fresh(conf: HookConf, *, add: str | None = None, entry: Entry | None = None,
                 drop: set[str] | None = None) -> None:
    """fresh.conf: its entries (rendered again from their records) but those in ``drop``
    (whose markers go too), plus ``add`` stamped now; deleted when nothing is left. Called
    with the lock held: ``now`` is taken here, so stamps only grow."""
    now = time.time()
    drop = drop or set()
    keep: dict[str, float] = {}
    for job, at in jobs_in(_read(conf.fresh_file)):
        if job != add and job not in drop:
            keep[job] = at
    parts = []
    for job, at in sorted(keep.items(), key=lambda item: item[1]):
        current = _entry(conf, job)
        if current is None and os.path.exists(jobcache.path_for(conf.state_dir, job)):
            # A record that no longer reads as valid: its block becomes the failure block (which
            # says why through the proxy), not nothing, since an ssh that found the marker a
            # moment ago is about to read this file. The marker goes: the hook runs next time.
            current = Entry(state=FAILED, resolved=now)
            _unmark(conf, job)
        if current is None:
            drop.add(job)
        else:
            parts.append(f"{MARK}{job} at={at:.3f}\n{block_for(conf, job, current)}")
    for job in drop:
        _unmark(conf, job)
    if add is not None and entry is not None:
        parts.append(f"{MARK}{add} at={now:.3f}\n{block_for(conf, add, entry)}")
    if parts:
        store.write_atomic(conf.fresh_file, HEADER + "".join(parts), durable=False,
                           mode=INCLUDED_MODE)
    else:
        store.remove(conf.fresh_file)
