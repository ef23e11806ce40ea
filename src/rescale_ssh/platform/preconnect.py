"""TCP connections to the platform opened while the hook's cold path imports what it needs (the
client, ssl, the CA bundle: tens of ms of CPU, about a round trip on a distant link): the first
requests then start with their TLS handshake (issue 16). Only for a platform reached directly
(no proxy variable set) whose host name is valid; a connection that fails or is not taken costs
nothing but itself. Standard library only.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable

PROXY_VARIABLES = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy",
                   "ALL_PROXY")


def proxied() -> bool:
    """A proxy variable is set: connections go through a proxy (requests' business)."""
    return any(os.environ.get(name) for name in PROXY_VARIABLES)


class Spare:
    """``count`` connections to ``host`` port ``port``, each opened by a thread of its own;
    :meth:`take` hands one over (waiting for it while it is being opened). :meth:`arm` gives
    the threads what to do next with their socket (the TLS handshake: another round trip the
    hook's imports hide); a socket it fails for is dropped, so the request opens its own and
    meets the failure there, where it is reported."""

    def __init__(self, host: str, port: int, count: int, timeout: float) -> None:
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._ready: list[socket.socket] = []
        self._armed = threading.Event()
        self._wrap: Callable[[socket.socket], socket.socket] | None = None
        self._pending = [threading.Thread(target=self._open, args=(timeout,), daemon=True,
                                          name="rescale-ssh preconnect") for _ in range(count)]
        for thread in self._pending:
            thread.start()

    def _open(self, timeout: float) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            return
        self._armed.wait(timeout)
        wrap = self._wrap
        if wrap is not None:
            try:
                sock = wrap(sock)
            except (OSError, ValueError):  # ssl.SSLError is an OSError
                sock.close()
                return
        with self._lock:
            self._ready.append(sock)

    def arm(self, wrap: Callable[[socket.socket], socket.socket] | None) -> None:
        """What each connection goes through once open (None: nothing). Once only."""
        if not self._armed.is_set():
            self._wrap = wrap
            self._armed.set()

    def take(self, host: str, port: int) -> socket.socket | None:
        self.arm(None)  # not armed by now: the sockets are taken as they are
        if (host.lower(), port) != (self.host.lower(), self.port):
            return None
        while True:
            with self._lock:
                if self._ready:
                    return self._ready.pop()
                pending = [t for t in self._pending if t.is_alive()]
                self._pending = pending
            if not pending:
                return None
            pending[0].join()

    def close(self) -> None:
        self.arm(None)
        with self._lock:
            ready, self._ready = self._ready, []
        for sock in ready:
            sock.close()


def start(platform: str, *, count: int, timeout: float) -> Spare | None:
    """Spare connections for ``platform`` (a URL), or None where they would not be used."""
    scheme = platform.partition("://")[0].lower()
    if scheme not in ("https", "http") or proxied():
        return None
    from urllib.parse import urlsplit

    from rescale_ssh import validate
    from rescale_ssh.errors import InvalidValueError

    try:
        parts = urlsplit(platform)
        host = validate.host(parts.hostname or "", source="the hook settings")
        port = parts.port or (443 if scheme == "https" else 80)
    except (ValueError, InvalidValueError):
        return None
    return Spare(host, port, count, timeout)
