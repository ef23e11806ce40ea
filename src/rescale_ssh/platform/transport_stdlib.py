"""The hook's transport (transport.py): http.client and ssl, no requests (issue 16: importing
requests and urllib3 was ~100 ms of CPU on a cold ``ssh``, more than a round trip).

What requests gives the commands, it gives too: HTTPS verified against REQUESTS_CA_BUNDLE or
CURL_CA_BUNDLE (a file or a folder), else certifi's bundle (requests' default; found without
importing certifi, which alone costs ~20 ms), else the system's; one kept-alive connection per
thread, taking the ones preconnect.py opened; connect and read timeouts; redirects followed on
the platform's own origin only. Not proxies: the hook takes the requests transport whenever a
proxy variable is set (:func:`usable`).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import select
import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode, urljoin, urlsplit

from rescale_ssh.platform import preconnect
from rescale_ssh.platform.preconnect import Spare
from rescale_ssh.platform.transport import Watch, ca_bundle

REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
# requests.utils.requote_uri's: what is already quoted (and reserved) stays as it is.
SAFE = "!#$%&'()*+,/:;=?@[]~"


def usable() -> bool:
    """The standard library's transport does what the environment asks: no proxy is set."""
    return not preconnect.proxied()


class TLS:
    """The TLS settings of every connection, built once. :meth:`ahead` builds them in a thread
    of their own: loading a CA bundle is ~25 ms of OpenSSL, which lets other threads run (the
    hook's imports, on another core)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._context: ssl.SSLContext | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def ahead(self) -> TLS:
        self._thread = threading.Thread(target=self._build, name="rescale-ssh tls", daemon=True)
        self._thread.start()
        return self

    def context(self) -> ssl.SSLContext:
        if self._thread is not None:
            self._thread.join()
        else:
            self._build()
        if self._error is not None:
            raise self._error
        assert self._context is not None
        return self._context

    def _build(self) -> None:
        with self._lock:
            if self._context is not None or self._error is not None:
                return
            try:
                self._context = _context()
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                self._error = exc


def _context() -> ssl.SSLContext:
    bundle = ca_bundle()
    if bundle is None:
        bundle = certifi_bundle()
        if bundle is None:
            return ssl.create_default_context()
    if os.path.isdir(bundle):
        return ssl.create_default_context(capath=bundle)
    return ssl.create_default_context(cafile=bundle)


def certifi_bundle() -> str | None:
    """certifi's cacert.pem, where certifi is installed as files (not zipped), or None."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("certifi")  # finds it, does not import it
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    path = os.path.join(os.path.dirname(spec.origin), "cacert.pem")
    return path if os.path.isfile(path) else None


class _Held:
    """A connection's socket, for the watch even once http.client let go of it (an answer
    with ``Connection: close`` is read after the connection object dropped its socket)."""

    def __init__(self) -> None:
        self.sock: socket.socket | None = None


def _opener(held: _Held, spare: Spare | None) -> Any:
    """http.client's ``_create_connection``: a socket preconnect.py opened, else a new one."""

    def create_connection(address: tuple[str, int], timeout: float,
                          source_address: tuple[str, int] | None = None) -> socket.socket:
        sock = spare.take(*address) if spare is not None else None
        if sock is None:
            sock = socket.create_connection(address, timeout, source_address)
        else:
            sock.settimeout(timeout)
        held.sock = sock
        return sock

    return create_connection


class _Connection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, spare: Spare | None) -> None:
        super().__init__(host, port)
        self.held = _Held()
        self._create_connection = _opener(self.held, spare)


class _TLSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, spare: Spare | None,
                 context: ssl.SSLContext) -> None:
        super().__init__(host, port, context=context)
        self.held = _Held()
        self._create_connection = _opener(self.held, spare)
        self._tls_context = context

    def connect(self) -> None:
        """As http.client's, but a spare socket may come with its TLS handshake done
        already (preconnect.Spare.arm, with this same context and host name)."""
        http.client.HTTPConnection.connect(self)
        if not isinstance(self.sock, ssl.SSLSocket):
            self.sock = self._tls_context.wrap_socket(self.sock, server_hostname=self.host)
        self.held.sock = self.sock


_AnyConnection = _Connection | _TLSConnection


class _Answer:
    def __init__(self, response: http.client.HTTPResponse, url: str) -> None:
        self._response = response
        self.status = response.status
        self.url = url

    def header(self, name: str) -> str | None:
        return self._response.getheader(name)

    def chunks(self, size: int) -> Iterator[bytes]:
        response = self._response
        while True:
            if response.length == 0:  # all of it: read() marks it done (the connection is
                response.read()       # free for the next request)
                return
            chunk = response.read1(size)  # what has arrived: the caller checks each chunk
            if not chunk:
                if response.length:  # the connection ended before Content-Length did
                    raise http.client.IncompleteRead(b"", response.length)
                return
            yield chunk


class StdlibTransport:
    def __init__(self, spare: Spare | None = None, tls: TLS | None = None) -> None:
        self._spare = spare
        self._tls = tls or TLS()
        self._local = threading.local()  # .connection: this thread's
        self._lock = threading.Lock()
        self._connections: list[_AnyConnection] = []

    @contextlib.contextmanager
    def send(self, url: str, params: dict[str, Any] | None, headers: dict[str, str],
             timeout: tuple[float, float], watch: Watch) -> Iterator[_Answer]:
        connect, read = timeout
        current = url
        query = params
        for hop in range(MAX_REDIRECTS + 1):
            connection = self._connection(current, watch, connect)
            done = False
            try:
                assert connection.sock is not None
                connection.sock.settimeout(read)
                connection.request("GET", _target(current, query), headers=headers)
                response = connection.getresponse()
                # Past the last redirect, the redirect is the answer (as requests leaves it).
                following = _redirect(current, response) if hop < MAX_REDIRECTS else None
                if following is None:
                    yield _Answer(response, current)
                    done = response.isclosed() and not response.will_close
                    return
                response.read(64 * 1024)  # a redirect's body: a few bytes, if any
                done = response.isclosed() and not response.will_close
            finally:
                if not done:  # its state is unknown (cut, cut short, or closing)
                    self._drop(connection)
            current, query = following, None

    def _connection(self, url: str, watch: Watch, connect: float) -> _AnyConnection:
        parts = urlsplit(url)
        https = parts.scheme == "https"
        host = parts.hostname or ""
        port = parts.port or (443 if https else 80)
        connection: _AnyConnection | None = getattr(self._local, "connection", None)
        if connection is not None and ((connection.host, connection.port) != (host, port)
                                       or not _idle(connection)):
            self._drop(connection)
            connection = None
        if connection is None:
            connection = (_TLSConnection(host, port, self._spare, self._tls.context()) if https
                          else _Connection(host, port, self._spare))
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        watch.opened(connection)  # its socket, also during the TLS handshake
        if connection.sock is None:
            connection.timeout = connect
            connection.connect()
        watch.opened(connection.held)
        return connection

    def _drop(self, connection: _AnyConnection) -> None:
        connection.close()
        if getattr(self._local, "connection", None) is connection:
            self._local.connection = None
        with self._lock, contextlib.suppress(ValueError):
            self._connections.remove(connection)

    def problem(self, exc: BaseException) -> str | None:
        if isinstance(exc, TimeoutError):  # socket.timeout too; a handshake's as well
            return "timed out"
        if isinstance(exc, ssl.SSLError):
            return "TLS error"
        if isinstance(exc, ConnectionRefusedError):
            return "connection refused"
        if isinstance(exc, http.client.IncompleteRead):
            return "the answer was cut off"
        if isinstance(exc, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
            return "connection reset"  # http.client.RemoteDisconnected too
        if isinstance(exc, socket.gaierror):
            return "host name not found"
        if isinstance(exc, http.client.HTTPException):
            return "the answer was not HTTP"
        if isinstance(exc, OSError):
            return "connection failed"
        return None

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()


def _idle(connection: _AnyConnection) -> bool:
    """A kept-alive connection still usable: the server has not closed it (nothing is readable
    on an idle connection but its end)."""
    sock = connection.sock
    if sock is None:
        return True  # it connects anew
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _target(url: str, params: dict[str, Any] | None) -> str:
    parts = urlsplit(url)
    query = parts.query
    if params:
        extra = urlencode([(k, v) for k, v in params.items() if v is not None], doseq=True)
        query = f"{query}&{extra}" if query and extra else (query or extra)
    target = quote(parts.path or "/", safe=SAFE)
    return f"{target}?{quote(query, safe=SAFE)}" if query else target


def _redirect(url: str, response: http.client.HTTPResponse) -> str | None:
    """Where a redirect on the same origin leads (the key goes nowhere else), or None."""
    location = response.getheader("Location") if response.status in REDIRECTS else None
    if not location:
        return None
    following = urljoin(url, location)
    return following if _origin(following) == _origin(url) else None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()
