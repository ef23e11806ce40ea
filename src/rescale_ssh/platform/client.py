"""HTTP client for the Rescale platform API (rescale-api.md).

Limits, whatever the platform does (issue 14): every call (one GET, or a whole paged list with
all of its pages) ends within ``deadline``, its retries and back-off included, and everything
a client does within ``total`` when one is given (the hook: one deadline for the whole
resolution). A read that a trickle of bytes keeps alive (body or headers) is cut at the deadline
by shutting its socket down from a timer; a call reads at most ``max_body`` bytes and follows at
most ``max_pages`` pages. 429 (honouring ``Retry-After``), 502, 503, 504, connection resets and
timeouts are retried with exponential backoff a bounded number of times; 401/403/404 become the
project's errors. JSON that is hostile (nested too deeply, numbers out of range, a key given
twice in one object) is a :class:`PlatformError` for that call, never another exception.

Sending one GET is a transport's (transport.py): requests for the commands, the standard
library for the hook's cold path (``transport=STDLIB``: no requests imported). Our credentials
only: neither reads ``~/.netrc`` nor any setting from the environment but those corporate
networks need: ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` (either case; the standard library's
transport is not used with any proxy variable set) and ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``.
A process that builds a client dumps no core (hardening.py). The API key goes only into the
``Authorization`` header, never into a log line or message.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

from rescale_ssh import __version__, validate
from rescale_ssh.errors import AuthError, NotFoundError, PlatformError
from rescale_ssh.platform import hardening
from rescale_ssh.platform.preconnect import Spare
from rescale_ssh.platform.transport import (
    REQUESTS,
    STDLIB,
    WATCHDOG,
    Answer,
    Transient,
    Transport,
    Watch,
)

log = logging.getLogger("rescale_ssh.platform.client")

RETRY_STATUSES = frozenset({429, 502, 503, 504})
PAGE_SIZE = 100
# Hostile JSON (issue 14): the platform's answers nest a few levels and carry small numbers.
MAX_DEPTH = 64  # deeper is refused (repr or str of it later could exhaust the stack)
MAX_DIGITS = 64  # an integer longer is refused (Python's own limit is 4,300, and slow)


def auth_header(api_key: str) -> str:
    """``Token <key>``; a JWT-looking key (three parts, the first ``ey...``) goes as Bearer."""
    parts = api_key.split(".")
    if len(parts) == 3 and parts[0].startswith("ey") and all(parts):
        return f"Bearer {api_key}"
    return f"Token {api_key}"


class _Call:
    """One call's limits: when it must end, and how many bytes its answers may still hold."""

    __slots__ = ("ends", "pages", "started", "used", "what")

    def __init__(self, what: str, started: float, ends: float) -> None:
        self.what = what
        self.started = started
        self.ends = ends
        self.used = 0  # bytes of the answers read so far (every page of a list)
        self.pages = 0

    def remaining(self) -> float:
        return self.ends - time.monotonic()


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
        total: float | None = None,
        backoff: float = 0.5,
        max_body: int = 32 * 1024 * 1024,
        max_pages: int = 1000,
        sleep: Callable[[float], None] = time.sleep,
        key_source: str | None = None,
        progress: Callable[[str], contextlib.AbstractContextManager[object]] | None = None,
        spare: Spare | None = None,
        transport: str | Transport = REQUESTS,
    ) -> None:
        hardening.no_core_dumps()  # before the key is kept anywhere
        # Where the key came from (RESCALE_API_KEY, or a profile of a file): a 401 names it.
        self.key_source = key_source
        # Around each call (``what`` it asks for): the CLI's spinner (progress.Activity) on a
        # terminal; the client itself never prints.
        self.progress = progress
        self.base_url = base_url.rstrip("/")
        self._origin = _origin(self.base_url)
        self._headers = {
            "Authorization": auth_header(api_key),
            "Accept": "application/json",
            "User-Agent": f"rescale-ssh/{__version__}",
        }
        self._local = threading.local()  # .watch: this thread's connections (transport.py)
        self._lock = threading.Lock()
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.retries = retries
        self.deadline = deadline  # each call: one GET, or every page of a list
        self.total = total  # everything this client does, from now
        self._ends = None if total is None else time.monotonic() + total
        self.backoff = backoff
        self.max_body = max_body  # each call's answers together (every page of a list)
        self.max_pages = max_pages
        self._sleep = sleep
        self._api_key = api_key  # only to mask it in what the platform sends back
        self.requests_made = 0
        # Connections to the platform opened before this client was (preconnect.py): the
        # first requests take them instead of opening their own.
        self._spare = spare
        self._transport = _transport(transport, self.base_url, spare)

    def close(self) -> None:
        if self._spare is not None:
            self._spare.close()
        self._transport.close()

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
        with self._watched(what):
            return self._get(self.url(path), params, self._call(what))

    def paged(
        self, path: str, *, what: str, params: dict[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Items of a paged list, following ``next``; a plain JSON array is accepted too.
        Every page together within one deadline, ``max_body`` and ``max_pages``."""
        url: str | None = self.url(path)
        query: dict[str, Any] | None = {"page_size": PAGE_SIZE, **(params or {})}
        seen: set[str] = set()
        call = self._call(what)
        with self._watched(what):  # every page: one spinner for the whole list
            yield from self._pages(url, query, seen, call, what)

    def _pages(self, url: str | None, query: dict[str, Any] | None, seen: set[str],
               call: _Call, what: str) -> Iterator[dict[str, Any]]:
        while url is not None:
            if url in seen:
                raise PlatformError(
                    f"the platform's list of {what} does not end (page links loop)",
                    "try again later; report this if it persists",
                )
            if len(seen) >= self.max_pages:
                raise PlatformError(
                    f"the platform's list of {what} does not end (more than {self.max_pages} "
                    "pages)",
                    "try again later; report this if it persists",
                )
            seen.add(url)
            body = self._get(url, query, call)
            call.pages += 1
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

    def _watched(self, what: str) -> contextlib.AbstractContextManager[object]:
        return contextlib.nullcontext() if self.progress is None else self.progress(what)

    def _call(self, what: str) -> _Call:
        now = time.monotonic()
        ends = now + self.deadline
        if self._ends is not None:
            ends = min(ends, self._ends)
        return _Call(what, now, ends)

    def _get(self, url: str, params: dict[str, Any] | None, call: _Call) -> Any:
        last_problem = "no answer"
        attempts = 0
        for attempt in range(self.retries + 1):
            if call.remaining() <= 0.01:
                break
            attempts += 1
            try:
                status, retry_after, body = self._attempt(url, params, call)
            except Transient as exc:
                last_problem = str(exc)
                if not self._pause(attempt, None, call):
                    break
                continue
            if status in RETRY_STATUSES:
                last_problem = f"HTTP {status}"
                if not self._pause(attempt, retry_after, call):
                    break
                continue
            call.used += len(body)
            return self._decode(status, body, call.what)
        elapsed = time.monotonic() - call.started
        hint = "check your network and https://status.rescale.com, then try again"
        pages = f", {call.pages} pages before" if call.pages else ""
        if not attempts:  # the time ran out before this page (or this call) could be asked
            raise PlatformError(f"the platform at {self.base_url} did not answer for "
                                f"{call.what} in time (gave up after {elapsed:.0f} s{pages})",
                                hint)
        raise PlatformError(
            f"the platform at {self.base_url} did not answer for {call.what}: {last_problem} "
            f"(gave up after {attempts} attempt{'s' if attempts > 1 else ''}, {elapsed:.0f} s"
            f"{pages})",
            hint,
        )

    def _attempt(
        self, url: str, params: dict[str, Any] | None, call: _Call
    ) -> tuple[int, str | None, bytes]:
        """One GET: its status, its Retry-After, its body."""
        with self._lock:
            self.requests_made += 1
        watch: Watch | None = getattr(self._local, "watch", None)
        if watch is None:
            watch = self._local.watch = Watch()
        remaining = max(0.01, call.remaining())
        timeout = (min(self.connect_timeout, remaining), min(self.read_timeout, remaining))
        # The socket timeouts bound each wait for a byte, not a trickle of them: at the
        # deadline the watchdog shuts the connection down, which ends any read.
        watch.fired = False
        t0 = time.monotonic()
        armed = WATCHDOG.arm(call.ends, watch)
        try:
            with self._transport.send(url, params, self._headers, timeout, watch) as answer:
                body = self._read(answer, call)
                if watch.fired:  # cut at the deadline: what was read may look complete
                    raise Transient("timed out")
                log.debug("GET %s -> %s (%.0f ms, %d bytes)", answer.url, answer.status,
                          (time.monotonic() - t0) * 1000, len(body))
                return answer.status, answer.header("Retry-After"), body
        except (Transient, PlatformError):
            raise
        except Exception as exc:
            problem = self._transport.problem(exc)
            if problem is None:
                raise
            log.debug("GET %s -> %s", url, "timed out" if problem == "timed out"
                      else type(exc).__name__)
            raise Transient("timed out" if watch.fired else problem) from None
        finally:
            WATCHDOG.disarm(armed)

    def _read(self, answer: Answer, call: _Call) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in answer.chunks(64 * 1024):
            size += len(chunk)
            if call.used + size > self.max_body:
                raise PlatformError(
                    f"the platform's answer is larger than {_size(self.max_body)} for "
                    f"{call.what}" + (f" ({call.pages + 1} pages)" if call.pages else ""),
                    "a proxy may be in the way (check --platform); report this if it persists",
                )
            if call.remaining() <= 0:
                raise Transient("the answer arrived too slowly")
            chunks.append(chunk)
        return b"".join(chunks)

    def _pause(self, attempt: int, retry_after: str | None, call: _Call) -> bool:
        """Sleep before the next attempt; False when no attempt is left or time is up."""
        if attempt >= self.retries:
            return False
        delay = _parse_retry_after(retry_after)
        if delay is None:
            delay = self.backoff * (2**attempt) * random.uniform(0.75, 1.25)
        if delay >= call.remaining():
            return False
        self._sleep(delay)
        return True

    def _decode(self, status: int, body: bytes, what: str) -> Any:
        if status == 401:
            raise AuthError(*rejected(self.key_source))
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
            return loads(body)
        except Hostile as exc:
            raise PlatformError(
                f"the platform sent malformed JSON for {what} ({exc})",
                "report this to Rescale support if it persists; a proxy may be in the way "
                "(check --platform)",
            ) from None
        except ValueError:
            raise PlatformError(
                f"the platform sent a malformed answer for {what} (not JSON)",
                "a proxy or captive portal may be in the way; check --platform",
            ) from None

    def _detail(self, body: bytes) -> str:
        """The error's ``detail``, with the key masked should the platform echo it back."""
        return _detail(body, secret=self._api_key)


def _transport(kind: str | Transport, base_url: str, spare: Spare | None) -> Transport:
    if not isinstance(kind, str):
        return kind
    if kind == STDLIB:
        from rescale_ssh.platform.transport_stdlib import StdlibTransport

        return StdlibTransport(spare)
    if kind != REQUESTS:
        raise ValueError(f"no transport {kind!r}")
    from rescale_ssh.platform.transport_requests import (
        RequestsTransport,  # imports requests: ~100 ms
    )

    return RequestsTransport(base_url, spare)


# -- hostile JSON -------------------------------------------------------------------------------


class Hostile(ValueError):
    """JSON that parses, or would, but no platform sends: what is wrong with it."""


def loads(body: bytes | str) -> Any:
    """JSON as the platform may send it. Raises :class:`Hostile` for nesting deeper than
    :data:`MAX_DEPTH`, a number out of range (or NaN, Infinity), an integer of more than
    :data:`MAX_DIGITS` digits, or a key given twice in one object (parsers disagree on which
    one counts: refused rather than guessed); ValueError when it is not JSON."""
    try:
        data = json.loads(body, object_pairs_hook=_unique, parse_constant=_constant,
                          parse_float=_finite, parse_int=_integer)
    except RecursionError:
        raise Hostile("nested too deeply") from None
    if _too_deep(data):
        raise Hostile(f"nested more than {MAX_DEPTH} levels deep")
    return data


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise Hostile(f"the key {validate.shown(key, 40)!r} twice in one object")
            seen.add(key)
    return found


def _constant(text: str) -> Any:
    raise Hostile(f"{text}, which is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise Hostile("a number out of range")
    return value


def _integer(text: str) -> int:
    digits = len(text) - text.startswith("-")
    if digits > MAX_DIGITS:
        raise Hostile(f"a number of {digits} digits")
    return int(text)


def _too_deep(data: Any) -> bool:
    """Level by level, without recursion: deeper than MAX_DEPTH."""
    level = [data] if isinstance(data, (dict, list)) else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            return True
        below: list[Any] = []
        for value in level:
            children = value.values() if isinstance(value, dict) else value
            below.extend(child for child in children if isinstance(child, (dict, list)))
        level = below
    return False


# -- helpers ------------------------------------------------------------------------------------


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _size(limit: int) -> str:
    mib = 1024 * 1024
    return f"{limit // mib} MiB" if limit >= mib else f"{max(1, limit // 1024)} KiB"


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value) if len(value) < 12 else None
    import email.utils  # ~7 ms: only for a date

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _detail(body: bytes, secret: str = "") -> str:
    try:
        data = loads(body)
    except ValueError:  # Hostile too
        return ""
    if isinstance(data, dict) and isinstance(data.get("detail"), str):
        text = data["detail"].replace(secret, "***") if secret else data["detail"]
        return validate.shown(text, 200)
    return ""


def rejected(source: str | None) -> tuple[str, str]:
    """The message and hint of a 401, naming where the rejected key came from: with
    RESCALE_API_KEY set, `login` cannot help (the variable wins over any stored key)."""
    if source == "RESCALE_API_KEY":
        return ("the platform rejected the API key from RESCALE_API_KEY",
                "RESCALE_API_KEY wins over any stored key: set it to a current key (Settings → "
                "API in the web UI) or unset it; `rescale-ssh login` cannot help while it is set")
    if source:
        return (f"the platform rejected the API key from {source}",
                f"run `rescale-ssh login` (it replaces the key in {source}), or set "
                "RESCALE_API_KEY")
    return ("the platform rejected the API key", "run `rescale-ssh login` or set RESCALE_API_KEY")
