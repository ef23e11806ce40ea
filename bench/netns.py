"""A network namespace joined to the host by a veth pair with ``tc netem`` on both ends: the
kernel-emulated WAN link of bench/items/wan.py (issue 16, item 3), the alternative to bench/relay.py
when the benchmark runs as root on a kernel with netem (``CONFIG_NET_SCH_NETEM``).

One namespace per run, ``rsbench-<pid>``; its veth pair ``rsb<pid>h`` (host side) and
``rsb<pid>n`` (inside) with a /30 of 10.213.0.0/16 of its own, so that two runs at once do not
collide. The servers listen inside, on :attr:`Namespace.address`; the clients stay on the host:
every byte between them crosses the veth, where netem delays each direction by RTT/2 and paces
it to the rate. No other interface is touched (others' tests run on the host's loopback); the
namespace's own ``lo`` is brought up so that its servers can bind 127.0.0.1 while they start.

:func:`namespace` always deletes what it made: in a ``finally``, on SIGINT and on SIGTERM (made
to raise while it runs). It first removes ``rsbench-<pid>`` namespaces whose process is gone,
and refuses to start when its own name is taken.

Linux only (``setns(2)`` through ctypes: the servers' sockets are made in the namespace by the
benchmark's own thread, which goes back to the host's namespace at once).
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import math
import os
import re
import shlex
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

PREFIX = "rsbench-"
NETWORK = ipaddress.ip_network("10.213.0.0/16")
CLONE_NEWNET = 0x40000000  # sched.h
MTU = 1500
QUEUE = 0.1  # seconds of data netem may hold beyond what is on the wire (rate × delay)
MIN_LIMIT = 1000  # packets (netem's default limit)
RUN_NETNS = Path("/run/netns")  # where `ip netns add` mounts the namespaces it names


class NetnsError(RuntimeError):
    """The namespace could not be made or shaped; str() says why and what ran."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run(["ip", *args], check=check)


def _run(argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetnsError(f"$ {shlex.join(argv)}: {exc}") from exc
    if check and proc.returncode != 0:
        raise NetnsError(f"$ {shlex.join(argv)}\nexit {proc.returncode}: "
                         f"{(proc.stderr or proc.stdout).strip()}")
    return proc


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise NetnsError(f"setns: {os.strerror(errno)}")


def netem_limit(delay_ms: float, rate_mbit: float) -> int:
    """Packets netem may hold: those on the wire one way (rate × delay) and QUEUE seconds
    more, counted as full MTU-sized packets, twice over (ACKs and small packets count too)."""
    if rate_mbit <= 0:
        return MIN_LIMIT * 10
    packets = rate_mbit * 1e6 / 8 * (delay_ms / 1000 + QUEUE) / MTU
    return max(MIN_LIMIT, math.ceil(2 * packets))


_N = TypeVar("_N", bound="Namespace")


@dataclass
class Namespace:
    name: str
    host_if: str  # the veth's end on the host
    inner_if: str  # its end in the namespace
    host_address: str  # on host_if
    address: str  # on inner_if: where the servers listen
    shaped: str = ""  # the netem line last applied, for the report

    @classmethod
    def for_pid(cls: type[_N], pid: int) -> _N:
        index = pid % (NETWORK.num_addresses // 4)  # a /30 per pid
        base = int(NETWORK.network_address) + 4 * index
        return cls(f"{PREFIX}{pid}", f"rsb{pid}h", f"rsb{pid}n",
                   str(ipaddress.ip_address(base + 1)), str(ipaddress.ip_address(base + 2)))

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"{self.host_address}/30", strict=False)

    def create(self) -> None:
        """The namespace, the veth pair and their addresses, unshaped (:meth:`shape`).
        Deletes what it made when a step fails."""
        self.add()
        try:
            _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.inner_if,
                "netns", self.name)
            self.address_links()
        except BaseException:
            self.delete()
            raise

    def add(self) -> None:
        """The namespace alone (its ``lo`` up), after checking that its name, its subnet and
        its interfaces' names are free."""
        if self.name in names():
            raise NetnsError(f"a network namespace {self.name} exists already (a leftover?): "
                             f"remove it with `ip netns del {self.name}`")
        taken = [line for line in _ip("-o", "-4", "addr", "show").stdout.splitlines()
                 if _overlaps(line, self.subnet)]
        if taken:
            raise NetnsError(f"{self.subnet} is in use on this machine: {taken[0].strip()}")
        if _ip("link", "show", self.host_if, check=False).returncode == 0:
            raise NetnsError(f"an interface {self.host_if} exists already")
        _ip("netns", "add", self.name)
        try:
            _ip("-n", self.name, "link", "set", "lo", "up")  # the namespace's own
        except BaseException:
            self.delete()
            raise

    def address_links(self) -> None:
        """Each end's /30 address, and both ends up (a veth pair's, or bench/tunlink.py's)."""
        _ip("addr", "add", f"{self.host_address}/30", "dev", self.host_if)
        _ip("link", "set", self.host_if, "up")
        _ip("-n", self.name, "addr", "add", f"{self.address}/30", "dev", self.inner_if)
        _ip("-n", self.name, "link", "set", self.inner_if, "up")

    def shape(self, delay_ms: float, rate_mbit: float) -> None:
        """``tc qdisc replace … root netem delay D rate R limit L`` on both ends of the veth:
        each direction gets ``delay_ms`` (one way; RTT = 2 ×) and ``rate_mbit`` (0: none)."""
        options = ["delay", f"{delay_ms:g}ms"]
        if rate_mbit > 0:
            options += ["rate", f"{rate_mbit:g}mbit"]
        options += ["limit", str(netem_limit(delay_ms, rate_mbit))]
        for prefix, dev in ((["tc"], self.host_if), (["tc", "-n", self.name], self.inner_if)):
            argv = [*prefix, "qdisc", "replace", "dev", dev, "root", "netem", *options]
            proc = _run(argv, check=False)
            if proc.returncode != 0:
                why = (proc.stderr or proc.stdout).strip()
                if "unknown" in why.lower():
                    why += " (this kernel has no netem: CONFIG_NET_SCH_NETEM)"
                raise NetnsError(f"$ {shlex.join(argv)}\nexit {proc.returncode}: {why}")
        self.shaped = "netem " + " ".join(options)

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """The calling thread in the namespace: sockets it makes, and processes it starts, are
        the namespace's (setns(2) changes one thread). Back to the thread's own at the end."""
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(RUN_NETNS / self.name, os.O_RDONLY)
            try:
                _setns(target)
                try:
                    yield
                finally:
                    _setns(own)
            finally:
                os.close(target)
        finally:
            os.close(own)

    def delete(self) -> None:
        """The veth (both ends go together) and the namespace; quiet when already gone."""
        if _ip("link", "show", self.host_if, check=False).returncode == 0:
            _ip("link", "del", self.host_if, check=False)
        if self.name in names():
            _ip("netns", "del", self.name)


def _overlaps(line: str, subnet: ipaddress.IPv4Network) -> bool:
    found = re.search(r"\binet (\S+)", line)
    if found is None:
        return False
    return ipaddress.IPv4Interface(found.group(1)).network.overlaps(subnet)


def names() -> list[str]:
    """The names `ip netns list` shows."""
    return [line.split()[0] for line in _ip("netns", "list").stdout.splitlines() if line.strip()]


def remove_leftovers() -> list[str]:
    """Delete ``rsbench-<pid>`` namespaces (and their veth) whose process is gone; returns
    their names. Others' namespaces, and live runs', are left alone."""
    removed = []
    for name in names():
        found = re.fullmatch(re.escape(PREFIX) + r"(\d+)", name)
        if found is None or Path(f"/proc/{found.group(1)}").exists():
            continue
        Namespace.for_pid(int(found.group(1))).delete()
        removed.append(name)
    return removed


def _interrupted(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def namespace(pid: int | None = None,
              kind: type[Namespace] | None = None) -> Iterator[Namespace]:
    """A namespace shaped once (netem tried) for the ``with`` block, deleted at its end
    whatever happens. Raises NetnsError when it cannot be made (not root, no netem, a name
    taken). ``kind``: the link (bench/tunlink.py's TunNamespace: tun devices instead)."""
    if os.geteuid() != 0:
        raise NetnsError("not root: `ip netns add` and `tc` need root")
    remove_leftovers()
    ns = (kind or Namespace).for_pid(os.getpid() if pid is None else pid)
    previous: dict[signal.Signals, Any] = {}
    with contextlib.suppress(ValueError):  # not the main thread: signals are not ours to catch
        for signum in (signal.SIGTERM, signal.SIGHUP):  # SIGINT raises KeyboardInterrupt
            previous[signum] = signal.signal(signum, _interrupted)
    try:
        ns.create()
        ns.shape(0.0, 0.0)  # a kernel without netem fails here, before any server starts
        yield ns
    finally:
        if previous:  # a second ^C or TERM must not stop the cleaning
            previous.setdefault(signal.SIGINT, signal.getsignal(signal.SIGINT))
            for signum in previous:
                signal.signal(signum, signal.SIG_IGN)
        try:
            ns.delete()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
