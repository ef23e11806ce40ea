"""bench/tunlink.py, the WAN benchmark's kernel-TCP link without netem: a namespace joined to the
host by two tun devices and a forwarder process. A TCP echo through it takes the RTT (and its
connect one more: the handshake crosses the link, unlike the relay's), the rate paces a
download, and nothing is left (normal end, SIGTERM, a SIGKILLed benchmark). Needs root, network
namespaces and /dev/net/tun: skipped without them, saying which (the benchmark uses its relay
then); a missing `ip` fails under CI=true."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from bench import netns, tunlink

from tests.helpers import live_pid, require_namespaces

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


@pytest.fixture(autouse=True, scope="module")
def tun_allowed() -> None:
    """A machine that may not make namespaces or tun devices (a container without
    CAP_NET_ADMIN or /dev/net/tun): skip, saying why."""
    require_namespaces()
    try:
        os.close(tunlink.open_tun(f"rsbprobe{os.getpid() % 100000}"))
    except OSError as error:
        pytest.skip(f"cannot make a tun device here ({tunlink.TUN}): {error}")


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(
        f"/proc/{pid}/status").read_text().lower()


def assert_gone(ns: netns.Namespace, forwarder: int) -> None:
    assert ns.name not in netns.names()
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                           check=True).stdout
    assert ns.host_if not in links
    deadline = time.monotonic() + 10
    while alive(forwarder) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(forwarder), "the forwarder process ended"


def test_a_tcp_echo_through_the_tun_link_takes_the_rtt_and_nothing_is_left() -> None:
    with live_pid() as pid:
        with netns.namespace(pid, kind=tunlink.TunNamespace) as ns:
            assert isinstance(ns, tunlink.TunNamespace) and ns.forwarder is not None
            forwarder = ns.forwarder.pid
            ns.shape(30, 0)  # one way: an RTT of 60 ms
            assert "30 ms each way" in ns.shaped and "round trip" in ns.shaped
            connect, rtts = tunlink.echo_rtt(ns)
            # The kernel's handshake crosses the link: connect() takes a round trip too.
            assert 0.057 < connect < 0.2
            assert 0.057 < statistics.median(rtts) < 0.075
            assert "dropped" in ns.take_counts()
            shown = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", ns.host_if],
                                   capture_output=True, text=True, check=True).stdout
            assert f"{ns.host_address}/30" in shown
        assert_gone(ns, forwarder)


def test_the_rate_paces_a_download() -> None:
    size = 1_000_000
    with live_pid() as pid, netns.namespace(pid, kind=tunlink.TunNamespace) as ns:
        ns.shape(2, 10)  # 10 Mbit/s: 1 MB takes 0.8 s on the wire
        with ns.entered():
            server = socket.create_server((ns.address, 0))
        with server:
            def send() -> None:
                conn, _ = server.accept()
                with conn:
                    conn.sendall(b"x" * size)
            threading.Thread(target=send, daemon=True).start()
            start = time.perf_counter()
            got = 0
            with socket.create_connection((ns.address, server.getsockname()[1]), 10) as sock:
                while chunk := sock.recv(65536):
                    got += len(chunk)
            elapsed = time.perf_counter() - start
        assert got == size
        assert 0.8 < elapsed < 4


def run_holding_a_link() -> subprocess.Popen[str]:
    code = (f"import sys, time; sys.path.insert(0, {str(ROOT)!r})\n"
            "from bench import netns, tunlink\n"
            "with netns.namespace(kind=tunlink.TunNamespace) as ns:\n"
            "    print(ns.name, ns.forwarder.pid, flush=True); time.sleep(60)\n")
    # A session of its own: a ^C at a terminal signals the whole group, the forwarder too.
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)


def started(proc: subprocess.Popen[str]) -> tuple[netns.Namespace, int]:
    assert proc.stdout is not None
    name, forwarder = proc.stdout.readline().split()
    assert name in netns.names()
    return netns.Namespace.for_pid(int(name.removeprefix(netns.PREFIX))), int(forwarder)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_a_terminal_ctrl_c_ends_the_forwarder_and_deletes_the_namespace(
        signum: signal.Signals) -> None:
    proc = run_holding_a_link()
    ns, forwarder = started(proc)
    if signum == signal.SIGINT:
        os.killpg(proc.pid, signum)  # as a terminal's ^C: the benchmark and its forwarder
    else:
        proc.send_signal(signum)
    proc.wait(30)
    assert_gone(ns, forwarder)


def test_a_killed_benchmark_leaves_no_forwarder_and_its_namespace_goes_next_run() -> None:
    proc = run_holding_a_link()
    ns, forwarder = started(proc)
    proc.kill()  # no cleaning at all: the forwarder sees its stdin close
    proc.wait(30)
    deadline = time.monotonic() + 10
    while alive(forwarder) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(forwarder)
    try:
        assert ns.name in netns.remove_leftovers()  # what the next run does first
    finally:
        ns.delete()
    assert_gone(ns, forwarder)
