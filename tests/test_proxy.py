"""``rescale-ssh proxy``: the socket it hands to ssh (issue 16: fewer round trips)."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32",
                                reason="no descriptor passing on Windows (the proxy relays)")


def run_proxy(*args: str) -> tuple[subprocess.CompletedProcess[bytes], socket.socket]:
    """The proxy run as ssh runs it with ProxyUseFdpass (stdout: a Unix socket); the
    connected socket it passed back."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        proc = subprocess.run([sys.executable, "-m", "rescale_ssh", "proxy", *args],
                              stdout=theirs.fileno(), stdin=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=30, check=False)
        theirs.close()
        ours.settimeout(10)
        _, fds, _, _ = socket.recv_fds(ours, 1, 1)
    assert proc.returncode == 0, proc.stderr
    assert len(fds) == 1
    return proc, socket.socket(fileno=fds[0])


def test_the_socket_handed_to_ssh_has_nagle_off() -> None:
    """ssh turns Nagle's algorithm off only after the key exchange: until then its small
    packets wait for the server's delayed ACK (~1.2 round trips a connection on a WAN link)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        _, sock = run_proxy("127.0.0.1", str(port))
        with sock:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            assert sock.getpeername() == ("127.0.0.1", port)
            accepted, _ = server.accept()
            with accepted:  # the very connection, usable as it is
                sock.sendall(b"hello")
                assert accepted.recv(5) == b"hello"
