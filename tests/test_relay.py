"""bench/relay.py, the WAN link of the benchmark: delay per direction, rate, order, the TCP
handshake's round trip, and the end of a connection. Real sockets on loopback; fast (< 3 s)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from bench.relay import Link, Relay

DELAY = 0.05  # one way: RTT 100 ms


class Echo:
    """A TCP echo server on 127.0.0.1, a thread per connection."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)


@pytest.fixture
def echo() -> Iterator[Echo]:
    server = Echo()
    yield server
    server.sock.close()


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def exchange(sock: socket.socket, data: bytes) -> float:
    start = time.perf_counter()
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        got += sock.recv(65536)
    assert got == data
    return time.perf_counter() - start


def test_a_round_trip_takes_twice_the_delay_and_the_first_one_pays_the_tcp_handshake(
        echo: Echo) -> None:
    with Relay(echo.port, Link(delay=DELAY)) as relay, connect(relay.port) as sock:
        first = exchange(sock, b"hello")
        later = [exchange(sock, b"ping %d" % i) for i in range(3)]
    # The first exchange: one RTT for the handshake a real connect() would have waited for,
    # one for the exchange itself.
    assert 4 * DELAY - 0.005 <= first <= 4 * DELAY + 0.05
    for elapsed in later:
        assert 2 * DELAY - 0.005 <= elapsed <= 2 * DELAY + 0.03


def test_the_delay_is_not_serialised_and_order_is_kept(echo: Echo) -> None:
    """Chunks sent 10 ms apart arrive 10 ms apart, one RTT later (not one RTT each)."""
    with Relay(echo.port, Link(delay=DELAY)) as relay, connect(relay.port) as sock:
        exchange(sock, b"warm")
        start = time.perf_counter()
        for i in range(10):
            sock.sendall(b"%02d" % i)
            time.sleep(0.01)
        got = b""
        while len(got) < 20:
            got += sock.recv(65536)
        elapsed = time.perf_counter() - start
    assert got == b"".join(b"%02d" % i for i in range(10))
    assert elapsed <= 0.1 + 2 * DELAY + 0.05  # serialised, it would be 10 RTTs (1 s)


def test_a_bulk_transfer_is_paced_to_the_rate(echo: Echo) -> None:
    rate = 40e6  # bits/s, each direction
    size = 500_000  # 0.1 s on the wire
    received: list[int] = []
    with Relay(echo.port, Link(delay=0.005, rate=rate)) as relay, connect(relay.port) as sock:
        exchange(sock, b"warm")

        def drain() -> None:
            total = 0
            while total < size:
                total += len(sock.recv(65536))
            received.append(total)

        reader = threading.Thread(target=drain)
        reader.start()
        start = time.perf_counter()
        sock.sendall(b"x" * size)
        reader.join(5)
        elapsed = time.perf_counter() - start
    assert received == [size]
    wire = size * 8 / rate  # both directions run at the rate at once: one wire time, pipelined
    assert wire * 0.9 <= elapsed <= wire * 1.6 + 0.05


def test_the_end_of_a_connection_is_passed_on(echo: Echo) -> None:
    with Relay(echo.port, Link(delay=0.01)) as relay, connect(relay.port) as sock:
        sock.sendall(b"last words")
        sock.shutdown(socket.SHUT_WR)
        got = b""
        while data := sock.recv(65536):
            got += data
    assert got == b"last words"
    assert relay.connections == 1


def test_a_target_that_refuses_closes_the_client() -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = int(closed.getsockname()[1])
    closed.close()
    with Relay(port, Link(delay=0.01)) as relay, connect(relay.port) as sock:
        assert sock.recv(1) == b""
