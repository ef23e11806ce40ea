"""bench/netns.py, the WAN benchmark's kernel link: a namespace and a veth pair reached from the
host, servers bound inside by the calling thread, nothing left behind (normal end, failure,
SIGTERM, a dead run's leftovers). Needs root: skipped without it. A missing `ip` fails under
CI=true (.ci/run installs iproute2); what no package brings (a kernel without netem, a machine
that may not make namespaces) skips, saying so: the benchmark then uses its relay."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench import netns

from tests.helpers import live_pid, require, require_namespaces

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


@pytest.fixture(autouse=True, scope="module")
def namespaces_allowed() -> None:
    """A machine that may not make namespaces (a container without CAP_NET_ADMIN): skip."""
    require_namespaces()


def has_netem() -> bool:
    with live_pid() as pid:
        ns = netns.Namespace.for_pid(pid)
        ns.create()
        try:
            ns.shape(1, 0)
            return True
        except netns.NetnsError:
            return False
        finally:
            ns.delete()


def require_netem() -> None:
    if not has_netem():
        pytest.skip("this kernel has no netem (CONFIG_NET_SCH_NETEM): the benchmark uses its "
                    "tun link (bench/tunlink.py) here, or its relay")


@pytest.fixture
def ns() -> Iterator[netns.Namespace]:
    require("ip")
    with live_pid() as pid:
        made = netns.Namespace.for_pid(pid)
        try:
            made.create()
        except netns.NetnsError as error:  # a container without CAP_NET_ADMIN, say
            pytest.skip(f"cannot make a network namespace here: {error}")
        try:
            yield made
        finally:
            made.delete()
        assert_gone(made)


def assert_gone(ns: netns.Namespace) -> None:
    assert ns.name not in netns.names()
    assert subprocess.run(["ip", "link", "show", ns.host_if], capture_output=True).returncode


def serve_once(sock: socket.socket) -> threading.Thread:
    def answer() -> None:
        conn, _ = sock.accept()
        with conn:
            conn.sendall(conn.recv(64).upper())
    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    return thread


def ask(address: str, port: int, timeout: float = 5) -> bytes:
    with socket.create_connection((address, port), timeout=timeout) as sock:
        sock.sendall(b"hello")
        return sock.recv(64)


def test_a_server_bound_inside_is_reached_from_the_host_through_the_veth(
        ns: netns.Namespace) -> None:
    with ns.entered():
        inside = socket.create_server((ns.address, 0))
        inner_lo = socket.create_server(("127.0.0.1", 0))
    with inside, inner_lo:
        own = os.readlink("/proc/thread-self/ns/net")
        assert own == os.readlink(f"/proc/{os.getpid()}/ns/net"), "the thread came back"
        serve_once(inside).join(0)
        assert ask(ns.address, inside.getsockname()[1]) == b"HELLO"
        # The namespace's loopback is its own: the host's 127.0.0.1 does not lead there.
        with pytest.raises(OSError):
            ask("127.0.0.1", inner_lo.getsockname()[1], timeout=1)
    shown = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", ns.host_if],
                           capture_output=True, text=True, check=True).stdout
    assert f"{ns.host_address}/30" in shown


def test_a_taken_name_is_refused_and_a_dead_runs_namespace_removed(
        ns: netns.Namespace) -> None:
    with pytest.raises(netns.NetnsError, match="exists already"):
        netns.Namespace.for_pid(int(ns.name.removeprefix(netns.PREFIX))).create()
    assert ns.name in netns.names(), "the refusal removed nothing"
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = netns.Namespace.for_pid(dead.pid)
    leftover.create()
    try:
        assert leftover.name in netns.remove_leftovers()
        assert_gone(leftover)
        assert ns.name in netns.names(), "a live run's namespace stays"
    finally:
        leftover.delete()


def test_without_netem_the_namespace_fails_and_leaves_nothing() -> None:
    require("ip")
    if has_netem():
        pytest.skip("this kernel has netem: the next tests cover it")
    with live_pid() as pid:
        with pytest.raises(netns.NetnsError, match="netem"), netns.namespace(pid):
            pass
        assert_gone(netns.Namespace.for_pid(pid))


def test_netem_delays_each_direction_by_half_the_rtt() -> None:
    require("ip")
    require_netem()
    with live_pid() as pid, netns.namespace(pid) as ns:
        ns.shape(50, 100)  # one way: an RTT of 100 ms
        with ns.entered():
            server = socket.create_server((ns.address, 0))
        with server:
            serve_once(server)
            start = time.perf_counter()
            assert ask(ns.address, server.getsockname()[1]) == b"HELLO"
            # The handshake's round trip, then the exchange's: two RTTs.
            assert 0.19 < time.perf_counter() - start < 1.0


def test_sigterm_deletes_the_namespace() -> None:
    require("ip")
    # Shaping is netem's test's (above); a kernel without it can still check the cleaning.
    code = (f"import sys, time; sys.path.insert(0, {str(ROOT)!r}); from bench import netns\n"
            "netns.Namespace.shape = lambda self, delay, rate: None\n"
            "with netns.namespace() as ns:\n    print(ns.name, flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    name = proc.stdout.readline().strip()
    assert name in netns.names()
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    assert_gone(netns.Namespace.for_pid(int(name.removeprefix(netns.PREFIX))))
