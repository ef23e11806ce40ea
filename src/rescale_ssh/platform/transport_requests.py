"""The commands' transport (transport.py): requests, one Session per thread.

Our credentials only: the sessions ignore ``~/.netrc`` (requests would replace our
``Authorization`` header with its password) and every other setting requests takes from the
environment, except those corporate networks need: ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``
(either case) and ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import requests
import requests.adapters
import requests.utils
import urllib3
import urllib3.connection

from rescale_ssh.platform.preconnect import Spare
from rescale_ssh.platform.transport import Watch, ca_bundle


class _Answer:
    def __init__(self, response: requests.Response) -> None:
        self._response = response
        self.status = response.status_code
        self.url = response.url

    def header(self, name: str) -> str | None:
        return self._response.headers.get(name)

    def chunks(self, size: int) -> Iterator[bytes]:
        return self._response.iter_content(size)


class RequestsTransport:
    def __init__(self, base_url: str, spare: Spare | None = None) -> None:
        # One requests.Session per thread (a Session is not thread-safe): `sync` and `jobs`
        # fetch several jobs' instances at once through a bounded pool.
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()
        self._proxies = _proxies(base_url)  # every URL the client follows is on this origin
        self._spare = spare

    @property
    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            # Nothing from the environment but what _proxies and ca_bundle read: no
            # ~/.netrc (it would replace our Authorization header and send its password).
            session.trust_env = False
            session.verify = ca_bundle() or True
            for prefix in ("https://", "http://"):
                session.mount(prefix, _Adapter())
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    @contextlib.contextmanager
    def send(self, url: str, params: dict[str, Any] | None, headers: dict[str, str],
             timeout: tuple[float, float], watch: Watch) -> Iterator[_Answer]:
        session = self._session
        _current.watch = watch
        _current.spare = self._spare
        try:
            with session.get(url, params=params, headers=headers, timeout=timeout, stream=True,
                             proxies=self._proxies) as response:
                yield _Answer(response)
        finally:
            _current.watch = None

    def problem(self, exc: BaseException) -> str | None:
        if isinstance(exc, requests.Timeout):
            return "timed out"
        if isinstance(exc, (requests.RequestException, urllib3.exceptions.HTTPError, OSError)):
            return _describe(exc)
        return None

    def close(self) -> None:
        with self._lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()


def _proxies(url: str) -> dict[str, str]:
    """The proxy for ``url`` from HTTPS_PROXY/HTTP_PROXY (either case; lower case wins, as in
    curl), none when NO_PROXY names its host. ALL_PROXY and other schemes' are not read."""
    if requests.utils.should_bypass_proxies(url, no_proxy=None):
        return {}
    found = urllib.request.getproxies()
    return {scheme: found[scheme] for scheme in ("http", "https") if found.get(scheme)}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS error"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the answer was cut off"
    if isinstance(exc, requests.exceptions.ProxyError):
        return "the proxy failed (check HTTPS_PROXY)"
    if isinstance(exc, requests.ConnectionError):
        text = str(exc)
        if "Read timed out" in text:
            return "timed out"
        if "refused" in text:
            return "connection refused"
        if "reset" in text.lower() or "aborted" in text.lower():
            return "connection reset"
        if "resolve" in text.lower() or "Name or service" in text:
            return "host name not found"
        return "connection failed"
    if isinstance(exc, (urllib3.exceptions.HTTPError, OSError)):
        return "the answer was cut off"
    return type(exc).__name__


# -- the connections requests opens: watched, and the ones opened ahead taken -------------------

_current = threading.local()  # .watch, .spare: of the request this thread is making


def _opened(connection: urllib3.connection.HTTPConnection) -> None:
    watch: Watch | None = getattr(_current, "watch", None)
    if watch is not None:
        watch.opened(connection)


def _spare_for(connection: urllib3.connection.HTTPConnection) -> socket.socket | None:
    """A connection preconnect.py opened to where ``connection`` goes (not through a proxy)."""
    spare: Spare | None = getattr(_current, "spare", None)
    if spare is None or connection._tunnel_host is not None:
        return None
    sock = spare.take(connection.host, connection.port)
    if sock is not None:
        sock.settimeout(connection.timeout)
    return sock


class _HTTPConnection(urllib3.connection.HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = _spare_for(self) or super()._new_conn()
        _opened(self)
        return sock


class _HTTPSConnection(urllib3.connection.HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = _spare_for(self) or super()._new_conn()
        _opened(self)
        return sock


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _Adapter(requests.adapters.HTTPAdapter):
    """requests' adapter, its connections watched (direct and through an HTTP proxy)."""

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False,
                         **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, urllib3.ProxyManager):  # not SOCKS: it has pools of its own
            manager.pool_classes_by_scheme = _POOLS
        return manager
