"""What the hook learned about each job: where its cluster is, or why it cannot be reached.

One ``key=value`` file per job under ``<state>/jobs``. Every value is validated when read, so a
cache file that was tampered with is refused with the field named, never written into a config.
Standard library only (the hook's warm path).
"""

from __future__ import annotations

import os
import time

from rescale_ssh import store, validate
from rescale_ssh.errors import ExitCode, InvalidValueError
from rescale_ssh.target import Target

OK = "ok"
FAILED = "failed"
KEYS = frozenset(("job", "state", "resolved", "user", "host", "port", "workdir", "workers",
                  "reason", "hint", "code", "cause"))


class Entry:
    __slots__ = ("cause", "code", "hint", "reason", "resolved", "state", "target")

    def __init__(
        self,
        *,
        state: str,
        resolved: float,
        target: Target | None = None,
        reason: str = "",
        hint: str = "",
        code: int = ExitCode.NOT_READY,
        cause: str = "",
    ) -> None:
        self.state = state
        self.resolved = resolved
        self.target = target
        self.reason = reason
        self.hint = hint
        self.code = code
        # A failure's circumstances (hook.circumstances: platform, API key, profile files):
        # the failure is replayed only while they are the same.
        self.cause = cause

    def age(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.resolved


def path_for(state_dir: str, job: str) -> str:
    return os.path.join(state_dir, "jobs", store.safe_name("", job))


def load(state_dir: str, job: str) -> Entry | None:
    """The job's entry, validated; None when there is none. Raises InvalidValueError."""
    path = path_for(state_dir, job)
    record = store.read_record(path, KEYS)
    if record is None:
        return None
    source = f"the cache file {path}"
    if store.UNREADABLE in record:
        raise InvalidValueError("cache file", path, "unreadable", source=None)
    if store.UNEXPECTED in record:
        raise InvalidValueError("line", record[store.UNEXPECTED],
                                "key=value lines as rescale-ssh writes them", source=source)
    if record.get("job") != job:
        raise InvalidValueError("job ID", record.get("job"), f"expected {job}", source=source)
    stamp = record.get("resolved", "")
    # Digits and one dot: float() would also take spaces, "nan", "inf" and "1_0".
    if not (stamp.isascii() and stamp.replace(".", "", 1).isdigit()):
        raise InvalidValueError("resolved", stamp, "a time stamp", source=source)
    resolved = float(stamp)
    state = record.get("state")
    if state == OK:
        workers = record.get("workers", "")
        target = Target.checked(job=job, user=record.get("user"), host=record.get("host"),
                                port=record.get("port"), workdir=record.get("workdir"),
                                source=source,
                                workers=tuple(_pair(w) for w in workers.split(",") if w))
        return Entry(state=OK, resolved=resolved, target=target)
    if state == FAILED:
        code = record.get("code", "")
        return Entry(
            state=FAILED,
            resolved=resolved,
            reason=_text(record.get("reason", "")) or "the job cannot be reached",
            hint=_text(record.get("hint", "")),
            code=int(code) if code.isdigit() and int(code) < 256 else ExitCode.NOT_READY,
            cause=_digest(record.get("cause", "")),
        )
    raise InvalidValueError("state", state, "ok or failed", source=source)


def _text(value: str, limit: int = 400) -> str:
    """A message from the record, fit for a terminal (ssh shows it): printable, bounded."""
    return validate.shown(value, limit)


def _digest(value: str) -> str:
    """A stamp of hex digits, else none (which matches no circumstances: resolved again)."""
    ok = 0 < len(value) <= 64 and value.isascii() and all(c in "0123456789abcdef" for c in value)
    return value if ok else ""


def _pair(text: str) -> tuple[str, str, bool]:
    """``host/port/direct`` or ``host/port/jump``; ``host/port`` (through the head) is what
    earlier versions wrote. Anything else is left whole in the port, which validation
    refuses."""
    route = "jump"
    head, sep, last = text.rpartition("/")
    if sep and last in ("direct", "jump") and "/" in head:
        text, route = head, last
    host, _, port = text.partition("/")
    return host, port, route == "jump"


def save(state_dir: str, job: str, entry: Entry) -> None:
    record = {"job": job, "state": entry.state, "resolved": f"{entry.resolved:.3f}"}
    if entry.target is not None:
        t = entry.target
        record.update(user=t.user, host=t.host, port=str(t.port), workdir=t.workdir,
                      workers=",".join(f"{host}/{port}/{'jump' if jump else 'direct'}"
                                       for host, port, jump in t.workers))
    if entry.state == FAILED:
        record.update(reason=entry.reason, hint=entry.hint, code=str(entry.code))
        if entry.cause:
            record["cause"] = entry.cause
    store.write_atomic(path_for(state_dir, job), store.format_record(record))


def cached_jobs(state_dir: str) -> list[str]:
    """The jobs that have a record (as the records name them; unreadable ones are skipped)."""
    folder = os.path.join(state_dir, "jobs")
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return []
    jobs = []
    for name in names:
        record = store.read_record(os.path.join(folder, name))
        job = (record or {}).get("job", "")
        if job and job.isascii() and job.isalnum() and path_for(state_dir, job).endswith(name):
            jobs.append(job)
    return jobs


def drop(state_dir: str, job: str) -> None:
    store.remove(path_for(state_dir, job))
