#!/usr/bin/env python3
"""A TCP relay on 127.0.0.1 that behaves like a WAN link: bench/items/wan.py, the WAN item,
puts one in front of the throwaway sshd and one in front of the fake platform, so that any
contributor can measure round trips without root (no network namespace, no ``tc netem``).

Every accepted connection is relayed to a target port. Each direction is a link of its own:

- **propagation**: every chunk leaves ``delay`` seconds (one way; RTT = 2 × delay) after it was
  sent, whatever the chunks before it do: the delay is not serialised (a chunk received at t
  leaves at t + delay), and order is kept (departures never go backwards).
- **rate**: a token bucket per direction, ``rate`` bits/s, with one chunk of burst: a chunk is
  on the wire for ``len × 8 / rate`` seconds after the link is free. At most ``queue`` seconds of
  data wait for the link (a router's buffer); beyond that the relay stops reading, so the sender
  feels the bottleneck through TCP flow control, as behind a real one.
- **TCP handshake**: a client's ``connect()`` returns at once on loopback, where a real one takes
  one RTT. The relay makes up for it: the client's first bytes are held until one RTT after the
  connection came (they could not have been sent earlier), the server's until 1.5 RTT (when
  the server would have accepted it), and from then on they travel ``delay`` like the rest.
  So a connection's first exchange costs 2 RTT, as it does over a real link.

TCP_NODELAY on both of its sockets: the relay adds no Nagle delays of its own. Standard library
only (asyncio). Loopback TCP on both sides means no slow start or loss: a bulk transfer reaches
the rate at once, unlike a real long link.

Run alone: ``python bench/relay.py --target PORT --delay-ms 40 --rate-mbit 100`` prints the port
it listens on (a free one unless ``--port``) on its first line, then relays until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
import threading
from collections import deque
from dataclasses import dataclass

HOST = "127.0.0.1"
CHUNK = 64 * 1024
MIN_BUFFER = 4 * 1024 * 1024  # bytes a direction may hold beyond what the link's size needs


@dataclass(frozen=True)
class Link:
    """One direction's behaviour; the relay applies the same to both."""

    delay: float  # one way, seconds
    rate: float | None = None  # bits per second; None: as fast as loopback
    queue: float = 0.02  # seconds of data that may wait for the link before reading stops

    def buffer_limit(self) -> int:
        """Bytes held at most: what is on the wire (rate × delay) and in the queue, plus room."""
        if self.rate is None:
            return MIN_BUFFER
        return MIN_BUFFER + int(self.rate / 8 * (self.delay + self.queue))


class _Direction:
    """Chunks from ``reader`` to ``writer``, each released at its departure time."""

    def __init__(self, link: Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 not_before: float) -> None:
        self.link = link
        self.reader = reader
        self.writer = writer
        self.not_before = not_before  # loop time before which nothing can have been sent
        self.free = not_before  # when the link has finished sending what it was given
        self.chunks: deque[tuple[float, bytes]] = deque()  # (arrival at the far end, bytes)
        self.held = 0  # bytes in ``chunks``
        self.arrived = asyncio.Event()  # a chunk (or the end, b"") was queued
        self.drained = asyncio.Event()  # bytes left ``chunks``

    async def run(self) -> None:
        sender = asyncio.create_task(self._send())
        try:
            await self._receive()
        except (ConnectionError, OSError):
            self._queue(b"")  # the end, as far as this direction goes
        finally:
            with contextlib.suppress(ConnectionError, OSError):
                await sender

    def _queue(self, chunk: bytes) -> None:
        loop = asyncio.get_running_loop()
        start = max(loop.time(), self.free, self.not_before)
        if self.link.rate is not None and chunk:
            start += len(chunk) * 8 / self.link.rate  # on the wire until the last bit is sent
        self.free = start
        self.chunks.append((start + self.link.delay, chunk))
        self.held += len(chunk)
        self.arrived.set()

    async def _receive(self) -> None:
        loop = asyncio.get_running_loop()
        limit = self.link.buffer_limit()
        while True:
            chunk = await self.reader.read(CHUNK)
            self._queue(chunk)
            if not chunk:
                return
            # A router's buffer: while more than ``queue`` seconds wait for the link, or the far
            # end does not take what arrived, stop reading (the sender's TCP window fills up).
            backlog = self.free - loop.time() - self.link.queue
            if self.link.rate is not None and backlog > 0:
                await asyncio.sleep(backlog)
            while self.held > limit:
                self.drained.clear()
                await self.drained.wait()

    async def _send(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self.chunks:
                self.arrived.clear()
                await self.arrived.wait()
            when, chunk = self.chunks[0]
            wait = when - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self.chunks.popleft()
            self.held -= len(chunk)
            self.drained.set()
            if not chunk:
                with contextlib.suppress(OSError):
                    if self.writer.can_write_eof():
                        self.writer.write_eof()  # half-close, as the sender did
                return
            self.writer.write(chunk)
            await self.writer.drain()


def _no_delay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Relay:
    """Listens on 127.0.0.1:``port`` (0: a free one) and relays every connection to
    127.0.0.1:``target`` through two :class:`Link` directions. :meth:`start` runs it in a
    thread of its own (tests); :meth:`serve` in the caller's event loop (``main``)."""

    def __init__(self, target: int, link: Link, *, port: int = 0,
                 target_host: str = HOST) -> None:
        self.target = target
        self.target_host = target_host
        self.link = link
        self.port = port
        self.connections = 0  # accepted so far
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def _handle(self, client_r: asyncio.StreamReader,
                      client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self.connections += 1
        loop = asyncio.get_running_loop()
        accepted = loop.time()
        rtt = 2 * self.link.delay
        _no_delay(client_w)
        try:
            server_r, server_w = await asyncio.open_connection(self.target_host, self.target)
        except OSError:
            client_w.close()
            return
        _no_delay(server_w)
        up = _Direction(self.link, client_r, server_w, accepted + rtt)
        down = _Direction(self.link, server_r, client_w, accepted + 1.5 * rtt)
        try:
            await asyncio.gather(up.run(), down.run())
        finally:
            for writer in (client_w, server_w):
                writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def serve(self, ready: threading.Event | None = None) -> None:
        self._server = await asyncio.start_server(self._handle, HOST, self.port,
                                                  limit=4 * CHUNK)
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._loop = asyncio.get_running_loop()
        if ready is not None:
            ready.set()
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await self._server.serve_forever()
        finally:
            # Open connections end with the relay (Server.wait_closed would wait for them).
            self._server.close()
            for task in list(self._tasks):
                task.cancel()

    def start(self) -> Relay:
        ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self.serve(ready),),
                                        daemon=True, name=f"relay->{self.target}")
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the relay did not start")
        return self

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is not None and server is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended already
                loop.call_soon_threadsafe(server.close)
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> Relay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=int, required=True, help="port on 127.0.0.1 to relay to")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: free)")
    parser.add_argument("--delay-ms", type=float, default=40.0,
                        help="one-way delay in ms, each direction (RTT = 2 ×; default 40)")
    parser.add_argument("--rate-mbit", type=float, default=0.0,
                        help="rate in Mbit/s, each direction (default 0: unlimited)")
    args = parser.parse_args(argv)
    link = Link(delay=args.delay_ms / 1000,
                rate=args.rate_mbit * 1e6 if args.rate_mbit > 0 else None)
    relay = Relay(args.target, link, port=args.port)

    async def run() -> None:
        ready = threading.Event()
        serving = asyncio.create_task(relay.serve(ready))
        while not ready.is_set():
            await asyncio.sleep(0.001)
        print(relay.port, flush=True)
        await serving

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
