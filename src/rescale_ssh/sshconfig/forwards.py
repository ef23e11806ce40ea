"""Port forwards to a job's cluster: what the user asked for (``8888``, ``8888:9999``,
``w1:6006``, ``HOST:PORT[:LOCAL]``), the local ports they get, and the forwards saved in a job's
Host block as ``LocalForward`` lines (``forward --save``).

A forward's far end is always reached from the head node: ``localhost`` is the head itself,
``wN`` is worker N at the private address the head reaches it by, and any other HOST is looked
up by the head (ssh -L resolves it on the server side). Local ports listen on 127.0.0.1 only.

Saved forwards live in the block itself (hostblock.forward_line, read back by
parser.parse_blocks), so every re-render of the block (``add``, ``sync``) keeps them
(:func:`carried`); ``remove`` and ``prune`` drop them with the block. No two jobs' saved
forwards share a local port: the section is the registry (:func:`taken_ports`).
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rescale_ssh import posix, validate
from rescale_ssh.configfile import Change
from rescale_ssh.errors import InvalidValueError, UsageError
from rescale_ssh.settings import Settings
from rescale_ssh.sshconfig.hostblock import Forward, HostEntry
from rescale_ssh.target import Target, alias_for, worker_alias

if TYPE_CHECKING:
    from rescale_ssh.platform.client import Client

HEAD = "localhost"  # the far end on the head node itself
SPEC_HINT = ("a forward is REMOTE_PORT[:LOCAL_PORT], or HOST:REMOTE_PORT[:LOCAL_PORT] for "
             "a port on another node (HOST: wN for worker N, or a name or address the head "
             "node reaches), e.g. 8888, 8888:9999, w1:6006")
FIRST_UNPRIVILEGED = 1024


@dataclass(frozen=True)
class Spec:
    """One forward as asked for: ``worker`` (1, 2, ...) or ``host`` (None and 0: the head)."""

    text: str
    remote: int
    local: int | None = None
    host: str | None = None
    worker: int = 0


def parse(text: str) -> Spec:
    """``REMOTE[:LOCAL]``, ``HOST:REMOTE[:LOCAL]``, ``wN:REMOTE[:LOCAL]`` or
    ``[IPv6]:REMOTE[:LOCAL]``; anything else is a usage error (exit 2), the syntax its hint."""
    host: str | None = None
    rest = text
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise UsageError(f"invalid forward {text!r}", SPEC_HINT)
        host, rest = inside, rest[1:]
    elif text.count(":") in (1, 2) and not text.split(":", 1)[0].isdigit():
        host, _, rest = text.partition(":")
    parts = rest.split(":")
    if len(parts) > 2 or not all(parts):
        raise UsageError(f"invalid forward {text!r}", SPEC_HINT)
    try:
        remote = validate.port(parts[0], source="the command line")
        local = validate.port(parts[1], source="the command line") if len(parts) == 2 else None
    except InvalidValueError as error:
        raise UsageError(f"invalid forward {text!r}: {error.message}", SPEC_HINT) from None
    worker = 0
    if host is not None and host[:1] == "w" and host[1:].isascii() and host[1:].isdigit():
        worker, host = int(host[1:]), None
        if worker < 1:
            raise UsageError(f"invalid forward {text!r}: workers are numbered from 1", SPEC_HINT)
    elif host is not None:
        try:
            host = validate.host(host, source="the command line")
        except InvalidValueError as error:
            raise UsageError(f"invalid forward {text!r}: {error.message}", SPEC_HINT) from None
        if host in (HEAD, "127.0.0.1", "::1"):
            host = None
    return Spec(text=text, remote=remote, local=local, host=host, worker=worker)


def far_host(spec: Spec, target: Target) -> str:
    """The host the head node connects to for ``spec``."""
    if spec.worker:
        if spec.worker > len(target.workers):
            count = len(target.workers)
            raise UsageError(
                f"{alias_for(target.job)} has no worker {spec.worker} (it has "
                f"{count} worker{'' if count == 1 else 's'})",
                f"`rescale-ssh status {target.job}` lists the nodes; after the cluster "
                f"grew, `rescale-ssh add {target.job}` learns the new ones")
        address, _, through_head = target.workers[spec.worker - 1]
        if not through_head:
            raise UsageError(
                f"worker {spec.worker} of {target.job} is reached at its public address, and "
                "its address inside the cluster is not known here",
                f"give the address the head node knows it by: `ssh "
                f"{worker_alias(target.job, spec.worker)} hostname -I` prints it; then "
                f"rescale-ssh forward {target.job} ADDRESS:{spec.remote}")
        return address
    return spec.host or HEAD


def describe(forward: Forward, target: Target) -> str:
    """The far end for people: ``rescale-JOB:8888``, ``rescale-JOB-1:6006``, or
    ``10.0.0.9:5000 via rescale-JOB``."""
    _, host, remote = forward
    if host == HEAD:
        return f"{alias_for(target.job)}:{remote}"
    for index, (address, _, through_head) in enumerate(target.workers, start=1):
        if through_head and address == host:
            return f"{worker_alias(target.job, index)}:{remote}"
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{remote} via {alias_for(target.job)}"


def url(local: int) -> str:
    return f"http://localhost:{local}"


# -- local ports -----------------------------------------------------------------------------


_NO_ADDRESS = frozenset((errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT))


def is_free(port: int) -> bool:
    """Nothing listens on ``port`` of 127.0.0.1, nor of ::1 where there is IPv6: a browser
    given ``localhost`` may try ::1 first, and must not reach another program there."""
    for family, address in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            continue  # no IPv6 here
        with sock:
            if not posix.windows():  # as ssh's own listener: a port in TIME_WAIT is free
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((address, port))
            except OSError as exc:
                if family == socket.AF_INET6 and exc.errno in _NO_ADDRESS:
                    continue  # IPv6 without ::1
                return False
    return True


def pick_local(remote: int, taken: set[int]) -> int:
    """The remote port itself when free here and not taken, else the next such port up."""
    candidates: list[int] = [remote, *range(max(remote + 1, FIRST_UNPRIVILEGED), 65536)]
    for port in candidates:
        if port not in taken and is_free(port):
            return port
    raise UsageError(f"no free local port for remote port {remote}",
                     "give one: REMOTE_PORT:LOCAL_PORT")


def taken_ports(entries: dict[str, HostEntry], *, but: str | None = None) -> dict[int, str]:
    """Local port -> job, of every saved forward (but those of job ``but``)."""
    return {forward[0]: job for job, entry in entries.items() if job != but
            for forward in entry.forwards}


# -- saved forwards ----------------------------------------------------------------------------


def carried(before: HostEntry | None, target: Target) -> tuple[Forward, ...]:
    """The saved forwards of a block written again for ``target`` (``add``, ``sync``): a
    forward to worker N of the old cluster goes to worker N of the new one."""
    if before is None:
        return ()
    old = {address: index for index, (address, _, through_head)
           in enumerate(before.target.workers) if through_head}
    kept: list[Forward] = []
    for local, host, remote in before.forwards:
        index = old.get(host)
        if index is not None and index < len(target.workers) and target.workers[index][2]:
            host = target.workers[index][0]
        kept.append((local, host, remote))
    return tuple(kept)


def with_saved(entry: HostEntry, specs: list[Spec], taken: dict[int, str]
               ) -> tuple[HostEntry, list[Forward]]:
    """The entry with ``specs`` saved, and the forwards they are (already saved ones again).
    An explicit local port saved for another job, or for another far end of this one, is
    refused, naming it."""
    forwards = list(entry.forwards)
    wanted: list[Forward] = []
    for spec in specs:
        host = far_host(spec, entry.target)
        same = [f for f in forwards if (f[1], f[2]) == (host, spec.remote)
                and spec.local in (None, f[0])]
        if same:
            wanted.append(same[0])
            continue
        if spec.local is None:
            local = pick_local(spec.remote, {*taken, *(f[0] for f in forwards)})
        else:
            local = spec.local
            if local in taken:
                other = taken[local]
                raise UsageError(
                    f"local port {local} is already saved for {alias_for(other)}",
                    f"choose another: rescale-ssh forward {entry.job} {_with_local(spec, '')}"
                    f"LOCAL_PORT --save, or drop that one: rescale-ssh forward {other} "
                    f"--remove {local}")
            mine = [f for f in forwards if f[0] == local]
            if mine:
                raise UsageError(
                    f"local port {local} is already saved for {describe(mine[0], entry.target)}",
                    f"choose another local port, or first: rescale-ssh forward {entry.job} "
                    f"--remove {local}")
        forward = (local, host, spec.remote)
        forwards.append(forward)
        wanted.append(forward)
    return _entry(entry, forwards), wanted


def without(entry: HostEntry, specs: list[Spec]) -> tuple[HostEntry, list[Forward]]:
    """The entry without the saved forwards ``specs`` name: a bare number is a local port
    or, failing that, a remote port on the head; ``HOST:PORT`` a far end."""
    gone: list[Forward] = []
    for spec in specs:
        if spec.host is None and not spec.worker and spec.local is None:
            found = [f for f in entry.forwards if f[0] == spec.remote] or \
                [f for f in entry.forwards if (f[1], f[2]) == (HEAD, spec.remote)]
        else:
            host = far_host(spec, entry.target)
            found = [f for f in entry.forwards if (f[1], f[2]) == (host, spec.remote)
                     and spec.local in (None, f[0])]
        if not found:
            saved = ", ".join(str(f[0]) for f in entry.forwards) or "none"
            raise UsageError(f"{entry.alias} has no saved forward {spec.text} (saved local "
                             f"ports: {saved})", f"`rescale-ssh forward {entry.job}` lists them")
        gone += [f for f in found if f not in gone]
    return _entry(entry, [f for f in entry.forwards if f not in gone]), gone


def _entry(entry: HostEntry, forwards: list[Forward]) -> HostEntry:
    return HostEntry(target=entry.target, identity=entry.identity,
                     known_hosts=entry.known_hosts, forwards=tuple(forwards))


def _with_local(spec: Spec, local: str) -> str:
    far = f"w{spec.worker}:" if spec.worker else (f"{spec.host}:" if spec.host else "")
    return f"{far}{spec.remote}:{local}"


# -- the job, and its block ---------------------------------------------------------------------


@dataclass(frozen=True)
class Located:
    target: Target
    entry: HostEntry | None  # the job's block, if it has one
    others: dict[int, str]  # local port -> job, of the other jobs' saved forwards
    added: bool = False  # the block was written just now


def locate(settings: Settings, job: str, connect: Callable[[Settings], Client]) -> Located:
    """The job's target: its block, else the hook's record of it, else the platform through
    the client ``connect`` opens (then the block is written, as `shell` does)."""
    from rescale_ssh import configfile, errors
    from rescale_ssh.sshconfig import hosts, section

    job = validate.job_id(job, source="the command line")
    path = settings.ssh_config
    current = section.read(configfile.read_bytes(path) or b"", path=str(path))
    others = taken_ports(current.entries, but=job)
    if job in current.entries:
        entry = current.entries[job]
        return Located(entry.target, entry, others)
    if current.hook is not None:
        from rescale_ssh.hook import hookconf, matcher

        cached = matcher.ensure(hookconf.load(current.hook.state_dir), job)
        if cached.target is None:
            raise errors.from_code(cached.code, cached.reason, cached.hint or None, job=job)
        return Located(cached.target, None, others)
    from rescale_ssh.platform import resolver

    with connect(settings) as client:
        target = resolver.resolve(client, job)
    result = hosts.add(settings, target)
    return Located(target, result.entry, others, added=True)


def one_off(located: Located, specs: list[Spec]) -> list[Forward]:
    """The forwards of a one-off tunnel: the local port asked for (it must be free), else the
    remote one if free, else the next free one up, never one saved for another job (nor one
    saved for another far end of this one)."""
    target = located.target
    own = located.entry.forwards if located.entry is not None else ()
    chosen: list[Forward] = []
    for spec in specs:
        host = far_host(spec, target)
        used = {*located.others, *(f[0] for f in chosen),
                *(f[0] for f in own if (f[1], f[2]) != (host, spec.remote))}
        if spec.local is not None:
            if spec.local in (f[0] for f in chosen) or not is_free(spec.local):
                raise UsageError(f"local port {spec.local} is in use",
                                 f"choose another ({_with_local(spec, 'LOCAL_PORT')}), or "
                                 f"leave it out: {_with_local(spec, '')[:-1]} takes a free one")
            local = spec.local
        else:
            local = pick_local(spec.remote, used)
        chosen.append((local, host, spec.remote))
    return chosen


@dataclass(frozen=True)
class Saved:
    entry: HostEntry
    forwards: list[Forward]
    change: Change
    busy: list[int]  # local ports something else listens on now


def save(settings: Settings, located: Located, specs: list[Spec], *, remove: bool = False,
         dry_run: bool = False) -> Saved:
    """Write (``remove``: take out) saved forwards of the job's block (written first from the
    hook's record when the job had none)."""
    from rescale_ssh.sshconfig import hosts, section, toolfiles

    target = located.target
    if located.entry is None and not remove and not dry_run:
        hosts.add(settings, target)
    path = settings.ssh_config
    result: list[tuple[HostEntry, list[Forward]]] = []

    def compute(data: bytes) -> bytes:
        current = section.read(data, path=str(path))
        entry = current.entries.get(target.job) or HostEntry(
            target=target, identity=settings.identity, known_hosts=settings.known_hosts)
        if remove:
            result[:] = [without(entry, specs)]
        else:
            result[:] = [with_saved(entry, specs, taken_ports(current.entries, but=target.job))]
        current.entries[target.job] = result[0][0]
        return section.splice(data, current, path=str(path))

    if remove and located.entry is None:
        raise UsageError(f"{alias_for(target.job)} has no saved forwards",
                         f"save one: rescale-ssh forward {target.job} 8888 --save")
    change = toolfiles.write_section(settings, compute, dry_run=dry_run,
                                     action=None if remove else f"save forwards of {target.job}")
    entry, forwards = result[0]
    busy = [] if remove else [f[0] for f in forwards if change.changed and not is_free(f[0])]
    return Saved(entry, forwards, change, busy)
