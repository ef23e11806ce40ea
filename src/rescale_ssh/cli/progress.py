"""Live lines on a terminal: a spinner while the platform is slow, and ``wait``'s status line.

Drawn on stderr, and only when stderr is a terminal: logs and CI get no control characters.
A daemon thread redraws the line every :data:`REDRAW` seconds (``\\r`` then ``ESC [K``, so a
shorter text leaves no tail) and erases it when it stops, before the command prints anything
else. Standard library only, and never used by the hook (hook/): ssh's stderr is
the user's terminal there too, but the hook must stay fast and silent.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TextIO

FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
ASCII_FRAMES = "|/-\\"
REDRAW = 0.1  # seconds between two drawings of a line
SLOW = 2.0  # a platform call slower than this gets a spinner
ERASE = "\r\033[K"


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed, or not a file at all
        return False


def can_print(sample: str, stream: TextIO) -> bool:
    """The stream's encoding can show these characters (else: ASCII)."""
    try:
        sample.encode(getattr(stream, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def duration(seconds: float) -> str:
    """``5s``, ``1m 05s``, ``2h 03m``: whole seconds, as a person reads a clock."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


class Line:
    """One line at the bottom of the terminal, redrawn from ``text()`` by a daemon thread;
    ``text()`` returning None draws nothing (and erases what was drawn)."""

    def __init__(self, text: Callable[[], str | None], *, stream: TextIO | None = None,
                 interval: float = REDRAW) -> None:
        self._text = text
        self.stream = sys.stderr if stream is None else stream
        self.interval = interval
        self.unicode = can_print(FRAMES + "…·", self.stream)
        self._frames = FRAMES if self.unicode else ASCII_FRAMES
        self._frame = 0
        self._shown = False
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Line:
        self.draw()
        self._thread = threading.Thread(target=self._run, name="rescale-ssh progress",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop redrawing and erase the line (at once: the thread is woken up)."""
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        self.erase()

    def __enter__(self) -> Line:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def erase(self) -> None:
        with self._lock:
            if self._shown:
                self._write(ERASE)
                self._shown = False

    def draw(self) -> None:
        text = self._text()
        if text is None:
            self.erase()
            return
        width = shutil.get_terminal_size((80, 24)).columns - 1  # never wrap: \r redraws one row
        line = f"{self._frames[self._frame % len(self._frames)]} {text}"
        if len(line) > width > 3:
            line = line[: width - 1] + ("…" if self.unicode else ".")
        with self._lock:
            if self._stopping.is_set() and self._thread is not None:
                return  # stopped meanwhile: what is drawn now would never be erased
            self._frame += 1
            self._write(f"\r{line}\033[K")
            self._shown = True

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            self.draw()

    def _write(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # a terminal gone away: nothing to show
            self.stream.write(text)
            self.stream.flush()


class Activity:
    """The platform client's progress hook (Client(progress=...)): the calls in flight; once
    the oldest has taken longer than ``slow``, a spinner line names it and counts the seconds,
    ``asking platform.rescale.com for the list of jobs… 5s``, until its answer comes."""

    def __init__(self, host: str, *, slow: float = SLOW, stream: TextIO | None = None) -> None:
        self.host = host
        self.slow = slow
        self.stream = sys.stderr if stream is None else stream
        self._lock = threading.RLock()  # Line.start() draws at once, from _text, under it
        self._pending: dict[object, tuple[str, float]] = {}
        self._line: Line | None = None
        self._muted = 0

    @contextlib.contextmanager
    def __call__(self, what: str) -> Iterator[None]:
        token = object()
        with self._lock:
            self._pending[token] = (what, time.monotonic())
            if self._line is None:
                self._line = Line(self._text, stream=self.stream).start()
        try:
            yield
        finally:
            with self._lock:
                del self._pending[token]
                line, self._line = (self._line, None) if not self._pending else (None,
                                                                                 self._line)
            if line is not None:
                line.stop()  # erased before the caller prints what the answer says

    @contextlib.contextmanager
    def muted(self) -> Iterator[None]:
        """Draw nothing meanwhile: another line (``wait``'s) has the terminal."""
        with self._lock:
            self._muted += 1
        try:
            yield
        finally:
            with self._lock:
                self._muted -= 1

    def _text(self) -> str | None:
        with self._lock:
            if self._muted or not self._pending:
                return None
            what, started = min(self._pending.values(), key=lambda item: item[1])
        waited = time.monotonic() - started
        if waited < self.slow:
            return None
        dots = "…" if can_print("…", self.stream) else "..."
        return f"asking {self.host} for {what}{dots} {duration(waited)}"
