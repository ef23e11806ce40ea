"""``status JOB``: everything known about one job, for people and for ``--json``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from rescale_ssh import validate
from rescale_ssh.errors import NotFoundError, RescaleSSHError
from rescale_ssh.platform import joblist, launchkey, lifecycle, resolver
from rescale_ssh.platform.background import Background, Slot
from rescale_ssh.platform.client import Client
from rescale_ssh.target import Target


@dataclass(frozen=True)
class Event:
    status: str
    date: str | None  # ISO 8601 with its offset (UTC when the platform gave no zone)
    reason: str | None

    def shown_date(self) -> str:
        """For people: UTC, with its Z (``2016-04-21 17:15:59Z``); "?" when unknown."""
        when = lifecycle.when({"statusDate": self.date})
        if when is None:
            return "?"
        return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


@dataclass(frozen=True)
class JobReport:
    job: str
    statuses: list[Event]  # newest first
    cluster_statuses: list[Event]
    ssh: str  # joblist.READY / STARTING / STOPPED / WAITING
    target: Target | None
    block: str  # "added", "hook" or "none"
    problem: str | None = None
    notes: list[str] = field(default_factory=list)
    launch_key: launchkey.Verdict = field(
        default_factory=lambda: launchkey.Verdict(launchkey.UNKNOWN))

    @property
    def status(self) -> str:
        return self.statuses[0].status if self.statuses else "unknown"

    @property
    def cluster(self) -> str:
        return self.cluster_statuses[0].status if self.cluster_statuses else "unknown"


def _events(client: Client, path: str, what: str) -> list[Event]:
    """Newest first, by their dates (lifecycle.newest_first)."""
    events = []
    for item in lifecycle.newest_first(client.paged(path, what=what)):
        status = item.get("status")
        if not isinstance(status, str):
            continue
        when, reason = lifecycle.when(item), item.get("statusReason")
        events.append(Event(
            status=validate.shown(status, 80),
            date=when.isoformat() if when is not None else None,
            reason=validate.shown(reason, 200)
            if isinstance(reason, str) and reason.strip() else None,
        ))
    return events


def report(client: Client, job: str, *, block: str, identity: str | None = None
           ) -> JobReport:
    """``identity``: the key the job's block uses, compared with the key its cluster was
    launched with (launchkey.py; one more request, unless known: not for a stopped job).

    The requests go out at once (issue 16), each on its own connection (background.py): the
    job's statuses (on this thread, whose connection the launch key's request then reuses),
    the cluster's, and the resolution (instances and logs: not shown for a stopped job, which
    they cost two requests more than it needs)."""
    job = validate.job_id(job, source="the command line")
    told = Slot[list[Event]]()

    def known() -> resolver.Status:  # what the resolution asks for when no node is up
        events = told.result()
        try:
            clusters = cluster_events.result()
        except RescaleSSHError:
            clusters = []
        return resolver.Status(job=events[0].status if events else None,
                               cluster=clusters[0].status if clusters else None)

    with Background(lambda: _events(client, f"/api/v2/jobs/{job}/cluster_statuses/",
                                    f"the cluster of job {job}")) as cluster_events, \
            Background(lambda: resolver.plan(client, job, status=known, case_hint=False)
                       ) as planned:
        try:
            statuses = told.set(_events(client, f"/api/v2/jobs/{job}/statuses/", f"job {job}"))
        except NotFoundError as error:
            told.fail(error)
            error.job = job  # caseless.py: a job known here in another case is named
            raise
        except BaseException as error:
            told.fail(error)
            raise
        try:
            clusters = cluster_events.result()
        except NotFoundError:
            clusters = []
        current = statuses[0].status if statuses else ""
        cluster = clusters[0].status if clusters else ""
        state = joblist.ssh_state(current, cluster)
        target, problem = None, None
        notes: list[str] = []
        verdict = launchkey.Verdict(launchkey.UNKNOWN)
        if state != joblist.STOPPED:
            if identity is not None:  # while the resolution's requests are out
                verdict = launchkey.check(client, job, identity)
            try:
                resolution = planned.result()
                target, state = resolution.target, joblist.READY
                notes += [f"no block for {why}" for why in resolution.skipped]
            except RescaleSSHError as error:
                problem = error.message
    if current and lifecycle.job_phase(current) == lifecycle.UNKNOWN:
        notes.append(f"status {current!r} is not one rescale-ssh knows: taken as neither ready "
                     "nor ended")
    if target is not None and joblist.is_final(current):
        notes.append(joblist.ended_note(job))
    if verdict.state == launchkey.DIFFERS:
        notes.append(f"{verdict.message(job)}; {launchkey.HINT}")
    return JobReport(job=job, statuses=statuses, cluster_statuses=clusters, ssh=state,
                     target=target, block=block, problem=problem, notes=notes,
                     launch_key=verdict)


def as_dict(report: JobReport) -> dict[str, Any]:
    """The documented ``status --json`` shape."""
    from rescale_ssh.target import worker_alias

    t = report.target
    return {
        "job": report.job,
        "alias": f"rescale-{report.job}",
        "status": report.status,
        "cluster_status": report.cluster,
        "ssh": report.ssh,
        "block": report.block,
        "head": None if t is None else {"user": t.user, "host": t.host, "port": t.port},
        "workers": [] if t is None else [
            {"alias": worker_alias(report.job, i), "host": host, "port": port,
             "via": "head" if jump else "direct"}
            for i, (host, port, jump) in enumerate(t.workers, start=1)
        ],
        "workdir": None if t is None else t.workdir,
        "statuses": [e.__dict__ for e in report.statuses],
        "cluster_statuses": [e.__dict__ for e in report.cluster_statuses],
        "problem": report.problem,
        "launch_key": report.launch_key.state,
        "notes": report.notes,
    }
