"""HTTP client for the Rescale platform API (rescale-api.md).

Every request has connect and read timeouts and the whole call a deadline; 429 (honouring
``Retry-After``), 502, 503, 504, connection resets and timeouts are retried with exponential
backoff a bounded number of times. 401/403/404 become the project's errors. Bodies are read in
chunks with a size cap, so a slow-drip or enormous answer cannot hold us past the deadline.
The API key goes only into the ``Authorization`` header, never into a log line or message.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from rescale_ssh import __version__, validate
from rescale_ssh.errors import AuthError, NotFoundError, PlatformError

log = logging.getLogger("rescale_ssh.client")

RETRY_STATUSES = frozenset({429, 502, 503, 504})
PAGE_SIZE = 100


def auth_header(api_key: str) -> str:
    """``Token <key>``; a JWT-looking key (three parts, the first ``ey...``) goes as Bearer."""
    parts = api_key.split(".")
    if len(parts) == 3 and parts[0].startswith("ey") and all(parts):
        return f"Bearer {api_key}"
    return f"Token {api_key}"


class Client:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 20.0,
        retries: int = 4,
        deadline: float = 60.0,
        backoff: float = 0.5,
        max_body: int = 32 * 1024 * 1024,
        max_pages: int = 1000,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._origin = _origin(self.base_url)
        self._headers = {
            "Authorization": auth_header(api_key),
            "Accept": "application/json",
            "User-Agent": f"rescale-ssh/{__version__}",
        }
        # One requests.Session per thread (a Session is not thread-safe): `sync` and `jobs`
        # fetch several jobs' instances at once through a bounded pool.
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.retries = retries
        self.deadline = deadline
        self.backoff = backoff
        self.max_body = max_body
        self.max_pages = max_pages
        self._sleep = sleep
        self._api_key = api_key  # only to mask it in what the platform sends back
        self.requests_made = 0

    @property
    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers.update(self._headers)
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def close(self) -> None:
        with self._lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, path: str) -> str:
        url = urljoin(self.base_url + "/", path.lstrip("/")) if path.startswith("/") else path
        if _origin(url) != self._origin:
            raise PlatformError(
                f"the platform sent a link to another server ({_origin(url)})",
                "this looks like a misconfigured or hostile platform; nothing was sent there",
            )
        return url

    def get(self, path: str, *, what: str, params: dict[str, Any] | None = None) -> Any:
        """GET a JSON document. ``what`` names the thing for messages ("job Fotxeb")."""
        url = self.url(path)
        started = time.monotonic()
        last_problem = "no answer"
        for attempt in range(self.retries + 1):
            remaining = self.deadline - (time.monotonic() - started)
            if remaining <= 0:
                break
            try:
                status, headers, body = self._attempt(url, params, remaining, started)
            except _Transient as exc:
                last_problem = str(exc)
                if not self._pause(attempt, None, started):
                    break
                continue
            if status in RETRY_STATUSES:
                last_problem = f"HTTP {status}"
                if not self._pause(attempt, headers.get("Retry-After"), started):
                    break
                continue
            return self._decode(status, body, what)
        elapsed = time.monotonic() - started
        raise PlatformError(
            f"the platform at {self.base_url} did not answer for {what}: {last_problem} "
            f"(gave up after {attempt + 1} attempt{'s' if attempt else ''}, {elapsed:.0f} s)",
            "check your network and https://status.rescale.com, then try again",
        )

    def paged(
        self, path: str, *, what: str, params: dict[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Items of a paged list, following ``next``; a plain JSON array is accepted too."""
        url: str | None = self.url(path)
        query: dict[str, Any] | None = {"page_size": PAGE_SIZE, **(params or {})}
        seen: set[str] = set()
        while url is not None:
            if url in seen or len(seen) >= self.max_pages:
                raise PlatformError(
                    f"the platform's list of {what} does not end (page links loop)",
                    "try again later; report this if it persists",
                )
            seen.add(url)
            body = self.get(url, what=what, params=query)
            if isinstance(body, list):
                yield from (item for item in body if isinstance(item, dict))
                return
            if not isinstance(body, dict) or not isinstance(body.get("results"), list):
                raise PlatformError(f"the platform sent an unexpected answer for {what} "
                                    "(no list of results)")
            yield from (item for item in body["results"] if isinstance(item, dict))
            following = body.get("next")
            if following in (None, ""):
                return
            if not isinstance(following, str):
                raise PlatformError(f"the platform sent an unexpected page link for {what}")
            url, query = self.url(urljoin(url, following)), None

    # -- internals -------------------------------------------------------------------------

    def _attempt(
        self, url: str, params: dict[str, Any] | None, remaining: float, started: float
    ) -> tuple[int, requests.structures.CaseInsensitiveDict[str], bytes]:
        with self._lock:
            self.requests_made += 1
        timeout = (min(self.connect_timeout, remaining), min(self.read_timeout, remaining))
        t0 = time.monotonic()
        try:
            with self._session.get(url, params=params, timeout=timeout, stream=True) as response:
                body = self._read(response, started)
                log.debug("GET %s -> %s (%.0f ms, %d bytes)", response.url, response.status_code,
                          (time.monotonic() - t0) * 1000, len(body))
                return response.status_code, response.headers, body
        except requests.Timeout:
            log.debug("GET %s -> timed out", url)
            raise _Transient("timed out") from None
        except requests.RequestException as exc:
            log.debug("GET %s -> %s", url, type(exc).__name__)
            raise _Transient(_describe(exc)) from None

    def _read(self, response: requests.Response, started: float) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(64 * 1024):
            size += len(chunk)
            if size > self.max_body:
                raise PlatformError(
                    f"the platform's answer is larger than {self.max_body // (1024 * 1024)} MiB",
                    "a proxy may be in the way (check --platform); report this if it persists",
                )
            if time.monotonic() - started > self.deadline:
                raise _Transient("the answer arrived too slowly")
            chunks.append(chunk)
        return b"".join(chunks)

    def _pause(self, attempt: int, retry_after: str | None, started: float) -> bool:
        """Sleep before the next attempt; False when no attempt is left or time is up."""
        if attempt >= self.retries:
            return False
        delay = _parse_retry_after(retry_after)
        if delay is None:
            delay = self.backoff * (2**attempt) * random.uniform(0.75, 1.25)
        if time.monotonic() - started + delay >= self.deadline:
            return False
        self._sleep(delay)
        return True

    def _decode(self, status: int, body: bytes, what: str) -> Any:
        if status == 401:
            raise AuthError(
                "the platform rejected the API key",
                "run `rescale-ssh login` or set RESCALE_API_KEY",
            )
        if status == 403:
            detail = self._detail(body) or "permission denied"
            raise AuthError(
                f"the platform refused access to {what}: {detail}",
                "check that the job is yours or shared with you, and that the API key is current",
            )
        if status == 404:
            raise NotFoundError(f"{what} not found on {self.base_url}",
                                "check the job ID (it is case-sensitive) and the platform")
        if status >= 400 or status < 200:
            detail = self._detail(body)
            raise PlatformError(
                f"the platform answered HTTP {status} for {what}"
                + (f": {detail}" if detail else ""),
                "try again later; report this if it persists",
            )
        try:
            return json.loads(body)
        except ValueError:
            raise PlatformError(
                f"the platform sent a malformed answer for {what} (not JSON)",
                "a proxy or captive portal may be in the way; check --platform",
            ) from None

    def _detail(self, body: bytes) -> str:
        """The error's ``detail``, with the key masked should the platform echo it back."""
        return _detail(body, secret=self._api_key)


class _Transient(Exception):
    """A failure worth retrying: no connection, reset, timeout, truncated body."""


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _describe(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS error"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the answer was cut off"
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
    return type(exc).__name__


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _detail(body: bytes, secret: str = "") -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    if isinstance(data, dict) and isinstance(data.get("detail"), str):
        text = data["detail"].replace(secret, "***") if secret else data["detail"]
        return validate.shown(text, 200)
    return ""
