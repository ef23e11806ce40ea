"""What the platform client (client.py) needs of an HTTP library: send one GET, hand back the
status, a header and the body in chunks, and say in a few words why a GET failed. Two
transports: requests (transport_requests.py: the commands) and the standard library
(transport_stdlib.py: the hook's cold path, issue 16: ``import requests`` alone is ~100 ms of a
cold ``ssh``). Everything else (URLs, paging, deadlines, retries, sizes, errors, JSON) is the
client's, once. Standard library only.

The deadline of an attempt cannot be stretched by a trickle of bytes: a watchdog thread shuts
down, at the deadline, the sockets of the connections the attempt's thread opened (its
:class:`Watch`); any read blocked on them returns at once.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any, Protocol

REQUESTS = "requests"
STDLIB = "stdlib"
KINDS = (REQUESTS, STDLIB)
CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")  # requests' order


class Transient(Exception):
    """A failure worth retrying: no connection, reset, timeout, truncated body."""


class Answer(Protocol):
    """One answer, its body not read yet."""

    status: int
    url: str

    def header(self, name: str) -> str | None: ...

    def chunks(self, size: int) -> Iterator[bytes]: ...


class Transport(Protocol):
    def send(self, url: str, params: dict[str, Any] | None, headers: dict[str, str],
             timeout: tuple[float, float], watch: Watch
             ) -> contextlib.AbstractContextManager[Answer]:
        """GET ``url`` (with ``params`` as its query); (connect, read) timeouts for each wait.
        The connections it opens are handed to ``watch``."""
        ...

    def problem(self, exc: BaseException) -> str | None:
        """A few words on why a GET failed, or None for an exception that is not a failure of
        the network or of HTTP (it goes on up)."""
        ...

    def close(self) -> None: ...


class _HasSocket(Protocol):
    sock: Any


class Watch:
    """The connections one thread opened. :meth:`expire` (the watchdog, at the attempt's
    deadline) shuts them down: a read blocked on a socket returns at once, however the bytes
    trickle."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections: weakref.WeakSet[_HasSocket] = weakref.WeakSet()
        self.fired = False

    def opened(self, connection: _HasSocket) -> None:
        with self._lock:
            self._connections.add(connection)

    def expire(self) -> None:
        with self._lock:
            self.fired = True
            for connection in list(self._connections):
                sock = getattr(connection, "sock", None)
                if sock is None:
                    continue
                with contextlib.suppress(OSError, ValueError, TypeError):
                    # The plain socket's shutdown, also under TLS (SSLSocket's own would drop
                    # its SSL object while another thread reads through it).
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)


class Watchdog:
    """One thread for every deadline of the process (a timer thread per request would cost
    more than the request): at each armed deadline, the watch's connections are shut down."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: dict[object, tuple[float, Watch]] = {}
        self._wakes = math.inf  # when the thread wakes up next
        self._thread: threading.Thread | None = None

    def arm(self, ends: float, watch: Watch) -> object:
        token = object()
        with self._cond:
            self._armed[token] = (ends, watch)
            if self._thread is None or not self._thread.is_alive():  # also after a fork
                self._thread = threading.Thread(target=self._run, name="rescale-ssh deadlines",
                                                daemon=True)
                self._wakes = ends
                self._thread.start()
            elif ends < self._wakes:
                self._wakes = ends
                self._cond.notify()
        return token

    def disarm(self, token: object) -> None:
        with self._cond:
            self._armed.pop(token, None)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for token, (ends, watch) in list(self._armed.items()):
                    if ends <= now:
                        del self._armed[token]
                        watch.expire()
                self._wakes = min((ends for ends, _ in self._armed.values()), default=math.inf)
                self._cond.wait(None if self._wakes == math.inf else self._wakes - now)


WATCHDOG = Watchdog()


def ca_bundle() -> str | None:
    """REQUESTS_CA_BUNDLE, else CURL_CA_BUNDLE (a file or a folder), else None: the
    transport's own (certifi's, as requests has it)."""
    for variable in CA_BUNDLE_VARIABLES:
        value = os.environ.get(variable)
        if value:
            return value
    return None
