"""A call run in a thread of its own while the caller does something else: the requests of one
resolution that do not depend on each other go out at once, each on its own connection
(client.py: a session per thread), so their connection set-ups and answers overlap (issue 16:
a cold ``ssh`` waits ~3 round trips for the platform instead of ~5)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Background(Generic[T]):
    """``call()`` started at once; :meth:`result` waits for it and returns its value or raises
    its exception. Wait for it (``with`` does) before the client it uses is closed."""

    def __init__(self, call: Callable[[], T]) -> None:
        self._call = call
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="rescale-ssh request",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._call()
        except BaseException as exc:  # handed to the caller by result()
            self._error = exc

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def __enter__(self) -> Background[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join()


class Slot(Generic[T]):
    """A value (or an exception) another thread hands over later: :meth:`result` waits."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._value: T | None = None
        self._error: BaseException | None = None

    def set(self, value: T) -> T:
        self._value = value
        self._done.set()
        return value

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._done.set()

    def result(self) -> T:
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]
