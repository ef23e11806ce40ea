#!/usr/bin/env python3
"""A network namespace joined to the host by two tun devices and a forwarder process that
delays every packet: the WAN benchmark's kernel-TCP link (bench/items/wan.py, issue 16 item 3) on a
kernel without netem, the default between bench/netns.py's netem and bench/relay.py.

The namespace, its name, its /30 and its cleaning are bench/netns.py's (:class:`TunNamespace`
is a :class:`netns.Namespace`); instead of a veth pair, ``rsb<pid>h`` is a tun device opened in
the host's namespace and ``rsb<pid>n`` one opened in the namespace, both by the forwarder (this
file run as a program), which moves every IP packet read from one into the other, released
RTT/2 after it arrived, in order, paced to the rate when there is one (each direction: a link
free again ``len × 8 / rate`` after a packet started, at most ``QUEUE`` seconds of packets
waiting for it, beyond that dropped as a router would). Unlike the relay, both TCP ends are the
kernel's, on either side of the delay: the handshake, slow start, Nagle and delayed ACKs on
ssh's own socket happen as over a real link.

The forwarder is a process of its own (the benchmark's threads do not delay it) that ignores
SIGINT (the benchmark decides when the link goes) and ends on SIGTERM or when its stdin closes,
so a benchmark killed with SIGKILL does not leave it behind; the tun devices go with it (they
are not persistent), the namespace with netns.py's cleaning. Its stdin takes ``DELAY_MS
RATE_MBIT`` and ``counts`` lines and answers each with ``ok`` and the counts since the last one
(packets, drops, how late they left: the forwarder keeping up or not).

Linux, root, ``/dev/net/tun``; standard library only.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import fcntl
import os
import select
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING or __package__:  # the benchmark and the tests import bench.tunlink
    from bench import netns
else:  # the forwarder: this file run as a script (bench/ first on sys.path)
    import netns

TUN = "/dev/net/tun"
TUNSETIFF = 0x400454CA  # linux/if_tun.h
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
QUEUE = 0.1  # seconds of packets that may wait for the link (netns.py's netem limit alike)
ECHOES = 7  # round trips of the TCP echo that checks the link
READY = "ready"


# -- the forwarder (the child process) ---------------------------------------------------------


def open_tun(name: str) -> int:
    """A tun device ``name`` in the calling thread's namespace, non-blocking; it lives as long
    as the descriptor."""
    fd = os.open(TUN, os.O_RDWR)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI))
    except BaseException:
        os.close(fd)
        raise
    os.set_blocking(fd, False)
    return fd


@dataclass
class Direction:
    """Packets read from one tun device, written to ``out`` at their release time."""

    out: int
    delay: float = 0.0  # one way, seconds
    rate: float = 0.0  # bits per second; 0: none
    free: float = 0.0  # when the link has sent what it was given
    last: float = 0.0  # the last release time given: order is kept
    packets: collections.deque[tuple[float, bytes]] = field(default_factory=collections.deque)
    forwarded: int = 0
    dropped: int = 0
    late: list[float] = field(default_factory=list)  # how late each release was, seconds

    def push(self, packet: bytes, now: float) -> None:
        start = now
        if self.rate > 0:
            start = max(now, self.free)
            if start - now > QUEUE:
                self.dropped += 1  # the router's buffer is full
                return
            start += len(packet) * 8 / self.rate
            self.free = start
        self.last = max(self.last, start + self.delay)
        self.packets.append((self.last, packet))

    def release(self, now: float) -> None:
        while self.packets and self.packets[0][0] <= now:
            when, packet = self.packets.popleft()
            with contextlib.suppress(OSError):  # a device going down: the packet is lost
                os.write(self.out, packet)
            self.forwarded += 1
            self.late.append(now - when)

    def counts(self) -> str:
        late = sorted(self.late) or [0.0]
        p99 = late[min(len(late) - 1, int(len(late) * 0.99))]
        text = (f"{self.forwarded} packets, {self.dropped} dropped, late p50 "
                f"{statistics.median(late) * 1000:.2f} ms p99 {p99 * 1000:.2f} ms "
                f"max {late[-1] * 1000:.2f} ms")
        self.forwarded, self.dropped, self.late = 0, 0, []
        return text


def _enter(name: str) -> None:
    fd = os.open(netns.RUN_NETNS / name, os.O_RDONLY)
    try:
        netns._setns(fd)
    finally:
        os.close(fd)


def forward(namespace: str, host_if: str, inner_if: str) -> int:
    """The forwarder's loop, until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    host = open_tun(host_if)
    _enter(namespace)
    inner = open_tun(inner_if)
    ways = {host: Direction(inner), inner: Direction(host)}  # read from → written to
    control = sys.stdin.fileno()
    pending = b""
    print(READY, flush=True)
    while True:
        due = [d.packets[0][0] for d in ways.values() if d.packets]
        timeout = max(0.0, min(due) - time.monotonic()) if due else None
        ready, _, _ = select.select([host, inner, control], [], [], timeout)
        now = time.monotonic()
        for fd in ready:
            if fd == control:
                chunk = os.read(control, 4096)
                if not chunk:
                    return 0
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    answer = "; ".join(f"{label}: {d.counts()}" for label, d in
                                       (("up", ways[host]), ("down", ways[inner])))
                    if line.strip() != b"counts":
                        delay_ms, rate_mbit = (float(v) for v in line.split())
                        for d in ways.values():
                            d.delay, d.rate = delay_ms / 1000, rate_mbit * 1e6
                    print(f"ok {answer}", flush=True)
                continue
            while True:
                try:
                    packet = os.read(fd, 65536)
                except BlockingIOError:
                    break
                ways[fd].push(packet, now)
        now = time.monotonic()
        for d in ways.values():
            d.release(now)


# -- the benchmark's side ----------------------------------------------------------------------


@dataclass
class TunNamespace(netns.Namespace):
    """bench/netns.py's namespace with the forwarder's tun devices for a veth pair."""

    forwarder: subprocess.Popen[str] | None = None
    echo: str = ""  # the last check of the link, for the report
    counts: str = ""  # the forwarder's counts up to the last :meth:`shape`

    def create(self) -> None:
        if not os.path.exists(TUN):
            raise netns.NetnsError(f"no {TUN} (the tun driver, CONFIG_TUN)")
        self.add()
        try:
            argv = [sys.executable, str(Path(__file__).resolve()), "--netns", self.name,
                    "--host-if", self.host_if, "--inner-if", self.inner_if]
            self.forwarder = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                              text=True)
            line = self._answer()
            if line != READY:
                raise netns.NetnsError(f"the tun forwarder did not start (said {line!r})")
            self.address_links()
        except BaseException:
            self.delete()
            raise

    def _answer(self) -> str:
        assert self.forwarder is not None and self.forwarder.stdout is not None
        line = self.forwarder.stdout.readline().strip()
        if not line and self.forwarder.poll() is not None:
            error = self.forwarder.stderr.read() if self.forwarder.stderr else ""
            raise netns.NetnsError(f"the tun forwarder ended (exit {self.forwarder.returncode})"
                                   f": {error.strip()[-2000:]}")
        return line

    def shape(self, delay_ms: float, rate_mbit: float) -> None:
        """Each direction delayed ``delay_ms`` (RTT = 2 ×) and paced to ``rate_mbit`` (0:
        none), then checked with a TCP echo through the link: NetnsError when it is off."""
        assert self.forwarder is not None and self.forwarder.stdin is not None
        self.forwarder.stdin.write(f"{delay_ms:g} {rate_mbit:g}\n")
        self.forwarder.stdin.flush()
        answer = self._answer()
        if not answer.startswith("ok"):
            raise netns.NetnsError(f"the tun forwarder answered {answer!r}")
        self.counts = answer.removeprefix("ok").strip()
        connect, rtts = echo_rtt(self)
        rtt, got = 2 * delay_ms / 1000, statistics.median(rtts)
        self.echo = (f"TCP echo through it: connect {connect * 1000:.1f} ms, round trip "
                     f"{got * 1000:.1f} ms [{min(rtts) * 1000:.1f}–{max(rtts) * 1000:.1f}]")
        if not rtt * 0.95 - 0.0005 <= got <= rtt * 1.1 + 0.005:
            raise netns.NetnsError(f"the tun link should take {rtt * 1000:g} ms a round trip; "
                                   f"{self.echo}")
        rate = f"paced to {rate_mbit:g} Mbit/s" if rate_mbit > 0 else "no rate"
        self.shaped = f"tun forwarder: {delay_ms:g} ms each way, {rate}; {self.echo}"

    def take_counts(self) -> str:
        """The forwarder's counts since the last :meth:`shape` or call, per direction."""
        assert self.forwarder is not None and self.forwarder.stdin is not None
        self.forwarder.stdin.write("counts\n")
        self.forwarder.stdin.flush()
        return self._answer().removeprefix("ok").strip()

    def stop_forwarder(self) -> None:
        """Ends the forwarder (its tun devices go with it)."""
        proc, self.forwarder = self.forwarder, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            if proc.stdin is not None:
                proc.stdin.close()  # its signal to end
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    def delete(self) -> None:
        self.stop_forwarder()
        super().delete()


def echo_rtt(ns: netns.Namespace, rounds: int = ECHOES) -> tuple[float, list[float]]:
    """Seconds of a TCP connect to a server in ``ns``, and of each of ``rounds`` one-byte
    exchanges after it (TCP_NODELAY both sides: one packet each way)."""
    with ns.entered():
        server = socket.create_server((ns.address, 0))
    with server:
        server.settimeout(10)

        def echo() -> None:
            with contextlib.suppress(OSError):
                conn, _ = server.accept()
                with conn:
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    while data := conn.recv(64):
                        conn.sendall(data)

        thread = threading.Thread(target=echo, daemon=True)
        thread.start()
        start = time.perf_counter()
        with socket.create_connection((ns.address, server.getsockname()[1]), timeout=10) as sock:
            connect = time.perf_counter() - start
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            rtts = []
            for _ in range(rounds):
                start = time.perf_counter()
                sock.sendall(b"x")
                if sock.recv(64) != b"x":
                    raise netns.NetnsError("the TCP echo through the tun link answered wrong")
                rtts.append(time.perf_counter() - start)
        thread.join(10)
    return connect, rtts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--netns", required=True, help="the namespace of the inner device")
    parser.add_argument("--host-if", required=True, help="the tun device in this namespace")
    parser.add_argument("--inner-if", required=True, help="the tun device in --netns")
    args = parser.parse_args(argv)
    return forward(args.netns, args.host_if, args.inner_if)


if __name__ == "__main__":
    sys.exit(main())
