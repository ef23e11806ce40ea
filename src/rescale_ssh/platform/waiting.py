"""``wait``: poll politely until a job's cluster accepts SSH (head node known, port open).

Polls start at ``interval`` seconds and back off to ``max_interval`` (rescale-api.md: never
poll in a tight loop; a poll costs two or three v2 requests). Lost connections to the platform
are waited out like a status; a job that does not exist, or a rejected key, ends the wait.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from rescale_ssh.errors import JobEndedError, NotReadyError, PlatformError
from rescale_ssh.platform import resolver
from rescale_ssh.platform.client import Client
from rescale_ssh.target import Target

INTERVAL = 5.0
MAX_INTERVAL = 30.0
ENV_INTERVAL = "RESCALE_SSH_POLL_INTERVAL"  # for tests and impatient scripts; at least 0.05 s



@dataclass(frozen=True)
class Poll:
    """What one poll found, for the progress display."""

    elapsed: float  # seconds since the wait began
    what: str  # the whole sentence (plain lines; the timeout's message)
    status: str  # in a word or three, for a live line: "Queued", "platform unavailable"
    next_in: float  # seconds until the next poll (0: none follows)


Progress = Callable[[Poll], None]


def poll_interval() -> float:
    try:
        return max(0.05, float(os.environ.get(ENV_INTERVAL, INTERVAL)))
    except ValueError:
        return INTERVAL


def accepts_tcp(host: str, port: int, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until_ready(
    client: Client,
    job: str,
    *,
    timeout: float,
    progress: Progress | None = None,
    interval: float | None = None,
    probe: Callable[[str, int], bool] = accepts_tcp,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Target:
    started = clock()
    delay = poll_interval() if interval is None else interval
    ceiling = min(MAX_INTERVAL, delay * 6)  # 5 s grows to 30 s
    last = "asking the platform"
    while True:
        try:
            target = resolver.resolve(client, job)
        except JobEndedError:
            raise  # ended, its cluster not up: no wait brings SSH back
        except NotReadyError as error:
            last = error.message
            word = status_word(job, error.message)
        except PlatformError as error:
            last = f"platform unavailable ({error.message})"
            word = "platform unavailable"
        else:
            if probe(target.host, target.port):
                return target
            last = f"the cluster of job {job} is up; waiting for {target.host} port " \
                   f"{target.port} to accept connections"
            word = f"cluster up, port {target.port} not open yet"
        elapsed = clock() - started
        pause = min(delay, max(0.0, timeout - elapsed))
        if progress is not None:
            progress(Poll(elapsed, last, word, 0.0 if elapsed >= timeout else pause))
        if elapsed >= timeout:
            raise NotReadyError(
                f"still not ready after {elapsed:.0f} s: {last}",
                f"`rescale-ssh wait {job} --timeout SECONDS` waits longer",
            )
        sleep(pause)
        delay = min(delay * 1.5, ceiling)


def status_word(job: str, message: str) -> str:
    """``Queued`` from ``job Fotxeb is Queued; the cluster is not started yet`` (resolver's
    sentences); the sentence itself when it is not one of those."""
    found = re.match(rf"job {re.escape(job)} is (.+?)(?:;|, but| \(|$)", message)
    return found.group(1) if found else message
