"""The status words of jobs and clusters, in one table (rescale-api.md, "Status").

Every command that judges a job by its statuses asks here: the resolver and the hook, ``jobs``,
``status``, ``wait``, ``sync``/``prune`` and ``doctor``. Words are compared without case, with
``_`` as a space (the list endpoint's filter values are upper snake case: ``FORCE_STOP``). A word
not in the table is "not ready, not final": shown as the platform wrote it, never taken as the
end of a job. Entries are ordered by their ``statusDate`` (job statuses write it with a ``Z``,
cluster statuses without), not by the order the platform lists them in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

# Job phases.
WAITING = "waiting"  # submitted, not yet running: its cluster is coming
RUNNING = "running"  # the job's command runs (or is about to): SSH works once the cluster is up
STOPPING = "stopping"  # on its way to an end
FINAL = "final"  # ended: nothing more will happen to the job
UNKNOWN = "unknown"  # a word not in the table (or none): not ready, not final

JOB: dict[str, str] = {
    "pending": WAITING,
    "waiting for queue": WAITING,
    "queued": WAITING,
    "waiting for cluster": WAITING,
    "started": RUNNING,
    "validated": RUNNING,
    "executing": RUNNING,
    "running": RUNNING,
    "stopping": STOPPING,
    "completed": FINAL,
    "force stop": FINAL,
    "force stopped": FINAL,
    "stopped": FINAL,
    "failed": FINAL,
    "terminated": FINAL,
    "cancelled": FINAL,
    "canceled": FINAL,
}

# Cluster phases.
NOT_UP = "not up"  # not started yet
STARTING = "starting"
UP = "up"  # started: its nodes may accept SSH
DOWN = "down"  # stopping or stopped: no SSH any more

CLUSTER: dict[str, str] = {
    "not started": NOT_UP,
    "pending": NOT_UP,
    "queued": NOT_UP,
    "starting": STARTING,
    "started": UP,
    "stop requested": DOWN,
    "stopping": DOWN,
    "stopped": DOWN,
    # "unknown" and "error" are UNKNOWN: not up, but not taken as the cluster's end either.
}


def key(word: object) -> str:
    """The table's spelling of a status word: lowercase, ``_`` as space, single spaces."""
    if not isinstance(word, str):
        return ""
    return " ".join(word.replace("_", " ").lower().split())


def job_phase(word: object) -> str:
    return JOB.get(key(word), UNKNOWN)


def cluster_phase(word: object) -> str:
    return CLUSTER.get(key(word), UNKNOWN)


def is_final(job: object) -> bool:
    return job_phase(job) == FINAL


def has_ended(job: object) -> bool:
    """Ended or ending: a job whose cluster will not (or no longer) take work."""
    return job_phase(job) in (FINAL, STOPPING)


def cluster_down(cluster: object) -> bool:
    return cluster_phase(cluster) == DOWN


def cluster_up(cluster: object | None) -> bool:
    return cluster is not None and cluster_phase(cluster) == UP


def may_accept_ssh(job: object, cluster: object | None) -> bool:
    """From the statuses alone, whether the job's cluster may be up now: its cluster says it
    is started and the job is running or has ended (a user may turn automatic termination
    off), or the job is running and its cluster (when the platform says) is neither down nor
    not started. The instances list decides the rest."""
    if cluster_up(cluster) and job_phase(job) in (RUNNING, STOPPING, FINAL):
        return True  # an unknown word stays "not ready", whatever the cluster says
    if cluster is not None and cluster_phase(cluster) in (DOWN, NOT_UP):
        return False
    return job_phase(job) == RUNNING


def gone_for_good(job: object, cluster: object | None) -> bool:
    """The job has ended and its cluster is not up: waiting will not bring SSH back."""
    return has_ended(job) and cluster_phase(cluster) not in (UP, STARTING)


def when(entry: dict[str, Any]) -> dt.datetime | None:
    """An entry's ``statusDate`` as an aware time (UTC when it says no zone)."""
    value = entry.get("statusDate")
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace(" ", "T", 1)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    date, _, rest = text.partition("T")
    clock, zone = rest, ""
    for sign in ("+", "-"):
        if sign in rest:
            clock, _, zone = rest.partition(sign)
            zone = sign + zone
            break
    whole, _, fraction = clock.partition(".")
    if fraction:  # any number of digits: Python 3.10 takes only 3 or 6
        clock = f"{whole}.{(fraction + '000000')[:6]}"
    try:
        parsed = dt.datetime.fromisoformat(f"{date}T{clock}{zone}" if rest else date)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.timezone.utc)


def newest_first(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries with a ``status`` word, newest first by ``statusDate``; undated ones after the
    dated ones, in the platform's order (which is newest first too)."""
    rows = [entry for entry in entries
            if isinstance(entry, dict) and isinstance(entry.get("status"), str)]
    dated = [(when(entry), index, entry) for index, entry in enumerate(rows)]
    oldest = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    dated.sort(key=lambda item: (item[0] is not None, item[0] or oldest, -item[1]),
               reverse=True)
    return [entry for _, _, entry in dated]
