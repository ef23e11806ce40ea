"""The user's jobs (owned and shared) and whether each one accepts SSH.

What is listed (rescale-api.md, "Listing jobs"): every page of ``/api/v2/jobs/?state=
not_completed`` (:data:`LIVE_PAGE_SIZE` a page), plus one page of ``?state=completed``: the
newest :data:`LOOK_BACK` completed jobs, among which a job whose cluster is still up (automatic
termination turned off) is found. A user with thousands of jobs in their history costs a page
or two, not every page of it. Every row is judged by its own statuses (lifecycle.py), never by
the list it came from, so a platform that ignores the filter (and sends every job both times)
gives the same answer, only slower; a job on both lists counts once.

Why 100 completed jobs: the look-back is one request whatever its size, 100 is the page size
Rescale's own tools ask for (a platform that caps pages lower still answers with one page), and
a completed job whose cluster is still up is one whose user has submitted fewer than 100 jobs
since: clusters left running cost money by the hour, so they are recent. An older one is still
reached by ``add``, ``status`` and the hook (they ask the job itself), and ``sync``/``prune``
ask each job they hold a block of that neither list shows (:func:`ask`). If the platform lists
completed jobs oldest first (the documented sample is newest first; not confirmed), the
look-back reads the last page instead, and the one before it when the last is short.

Requests: the pages of live jobs, + 1, + the instance pages of each job whose cluster is
started, fetched through a bounded pool (plus its logs only when the nodes' roles do not say
which is the head). ``jobs`` also needs ``users/me``, cached for a day (me.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rescale_ssh import validate
from rescale_ssh.errors import InvalidValueError, NotFoundError, PlatformError, RescaleSSHError
from rescale_ssh.platform import launchkey, lifecycle, loglines, resolver
from rescale_ssh.platform.client import Client
from rescale_ssh.target import Target, alias_for

if TYPE_CHECKING:
    from rescale_ssh.platform.me import Me

CONCURRENCY = 8
READY, STARTING, STOPPED, WAITING = "ready", "starting", "stopped", "not started"
JOBS = "/api/v2/jobs/"
LIVE_PAGE_SIZE = 1000  # a page size Rescale's own tools use; a platform may cap it lower
LOOK_BACK = 100  # completed jobs looked at (one page): see the module's docstring


@dataclass(frozen=True)
class JobSummary:
    id: str
    name: str
    owner: str
    shared: bool | None
    submitted: str
    status: str
    cluster: str
    ssh: str  # READY, STARTING, STOPPED or WAITING
    target: Target | None = None
    problem: str | None = None  # why a started cluster is not usable (invalid data, error)
    notes: list[str] = field(default_factory=list)
    launch_key: str = "unknown"  # launchkey.MATCHES / DIFFERS / UNKNOWN (with_launch_keys)

    @property
    def alias(self) -> str:
        return alias_for(self.id)

    @property
    def running(self) -> bool:
        return self.ssh in (READY, STARTING)


def list_jobs(
    client: Client,
    *,
    probe: bool = True,
    concurrency: int = CONCURRENCY,
    keep: Callable[[str], bool] | None = None,
    me: Me | None = None,
    look_back: int = LOOK_BACK,
    trim: bool = True,
    heads: Mapping[str, tuple[str, int]] | None = None,
) -> list[JobSummary]:
    """The live jobs and the newest ``look_back`` completed ones (none with 0), running ones
    first, then newest first.

    With ``probe`` the instances of each job with a started cluster are fetched (and ``keep``,
    when given, limits that to the jobs it accepts). ``me`` (users/me) tells the user's own
    jobs from shared ones; without it only ``sharedWith`` does. With ``trim`` a platform that
    ignores the filter shows what one that honours it does: of the ended jobs whose cluster is
    down, only as many as the look-back page held, the newest (``sync`` keeps every row: each
    one it has is a job it need not ask about again). ``heads``: where each job's head was
    found before (its block, the hook's cache): where the roles do not say which node is the
    head, a node still there tells it without the job's logs (one request a job).
    """
    live, older = fetch(client, look_back=look_back)
    rows = merged([*live, *older], me)
    if trim and look_back > 0:
        rows = _trimmed(rows, len(older))
    listing = list(rows.values())
    started = [row for row in listing
               if row.ssh == STARTING and (keep is None or keep(row.id))]
    if probe and started:
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            known = heads or {}
            probed = dict(zip([row.id for row in started],
                              pool.map(lambda row: _probe(client, row, known), started),
                              strict=True))
        listing = [probed.get(row.id, row) for row in listing]
    return sorted(listing, key=lambda r: (not r.running, _desc(r.submitted)))


def _trimmed(rows: dict[str, JobSummary], count: int) -> dict[str, JobSummary]:
    """The rows of ended jobs whose cluster is down only when they are among the newest
    ``count`` ended ones (the look-back's size as served): what a platform honouring the filter
    sends, whether it did or not."""
    oldest = dt.datetime.min.replace(tzinfo=dt.timezone.utc)

    def submitted(row: JobSummary) -> dt.datetime:
        return lifecycle.when({"statusDate": row.submitted}) or oldest

    ended = [row for row in rows.values() if is_final(row.status)]
    kept = {row.id for row in sorted(ended, key=submitted, reverse=True)[:count]}
    return {job: row for job, row in rows.items()
            if job in kept or row.ssh != STOPPED or not is_final(row.status)}


def fetch(client: Client, *, look_back: int = LOOK_BACK
          ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The items of the live list (every page) and of the look-back (one page; none with 0),
    the look-back fetched while the live pages are."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        older = pool.submit(recent_items, client, look_back) if look_back > 0 else None
        live = list(client.paged(JOBS, what="the list of jobs",
                                 params={"state": "not_completed", "page_size": LIVE_PAGE_SIZE}))
        return live, older.result() if older is not None else []


def merged(items: Iterable[dict[str, Any]], me: Me | None = None) -> dict[str, JobSummary]:
    """One row per job. A job on both lists (it completed between two requests, or the
    platform ignores the filter) keeps the row that says it ended: a job never un-ends."""
    rows: dict[str, JobSummary] = {}
    for item in items:
        row = _summary(item, me)
        if row is None:
            continue
        before = rows.get(row.id)
        if before is None or (is_final(row.status) and not is_final(before.status)):
            rows[row.id] = row
    return rows


def recent_items(client: Client, count: int = LOOK_BACK) -> list[dict[str, Any]]:
    """The newest ``count`` completed jobs: one page of ``?state=completed``, newest first.
    Listed oldest first (dates rising along the page, more pages after it), the last page is
    read instead, with the one before it when the last is short."""
    what = "the list of completed jobs"
    params: dict[str, Any] = {"state": "completed", "page_size": count}
    items, following, total = _page(client.get(JOBS, what=what, params=params), what)
    if following and total and len(items) >= 2 and _rising(items):
        last = -(-total // len(items))
        tail = _page(client.get(JOBS, what=what, params={**params, "page": last}), what)[0]
        if len(tail) < count and last > 2:
            before = _page(client.get(JOBS, what=what, params={**params, "page": last - 1}),
                           what)[0]
            tail = [*before, *tail]
        items = list(reversed(tail))[:count]
    return items


def _page(body: Any, what: str) -> tuple[list[dict[str, Any]], bool, int | None]:
    """(items, whether more pages follow, count) of one page; a plain array is one page."""
    if isinstance(body, list):
        return [item for item in body if isinstance(item, dict)], False, None
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        raise PlatformError(f"the platform sent an unexpected answer for {what} "
                            "(no list of results)")
    items = [item for item in body["results"] if isinstance(item, dict)]
    count = body.get("count")
    total = count if isinstance(count, int) and not isinstance(count, bool) and count > 0 \
        else None
    return items, body.get("next") not in (None, ""), total


def _rising(items: list[dict[str, Any]]) -> bool:
    first = lifecycle.when({"statusDate": items[0].get("dateInserted")})
    last = lifecycle.when({"statusDate": items[-1].get("dateInserted")})
    return first is not None and last is not None and first < last


def live_ids(client: Client) -> list[str]:
    """The IDs of the live jobs from one page of the not-completed list, no instances (TAB
    completion: one request, bounded by the client's deadline). A row that ended (a platform
    ignoring the filter) is left out unless its cluster may still be up."""
    what = "the list of jobs"
    body = client.get(JOBS, what=what,
                      params={"state": "not_completed", "page_size": LIVE_PAGE_SIZE})
    rows = merged(_page(body, what)[0])
    return [job for job, row in rows.items() if row.running or not is_final(row.status)]


def ask(client: Client, job: str) -> JobSummary | None:
    """A job neither list showed (a block's or a hook record's), asked directly: its cluster's
    statuses, one request, which settle the common case (a cluster stopped, or still up); only
    when they do not (no cluster status, not started, unknown words, or a 404) also the job's
    statuses. None: the platform does not know the job. A row with ``problem``: it could not
    tell (keep the block)."""
    cluster: str | None = None
    try:
        cluster = _newest(client, f"/api/v2/jobs/{job}/cluster_statuses/",
                          f"the cluster of job {job}")
    except NotFoundError:
        pass  # the job is gone, or the platform has no cluster statuses: ask the job
    except RescaleSSHError as error:
        return _asked(job, None, None, problem=error.message)
    if lifecycle.cluster_phase(cluster) in (lifecycle.DOWN, lifecycle.UP, lifecycle.STARTING):
        return _asked(job, None, cluster)
    try:
        status = _newest(client, f"/api/v2/jobs/{job}/statuses/", f"the statuses of job {job}")
    except NotFoundError:
        return None
    except RescaleSSHError as error:
        return _asked(job, None, cluster, problem=error.message)
    return _asked(job, status, cluster)


def ask_each(client: Client, jobs: Iterable[str], *, concurrency: int = CONCURRENCY
             ) -> dict[str, JobSummary | None]:
    wanted = list(dict.fromkeys(jobs))
    if not wanted:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(wanted)))) as pool:
        return dict(zip(wanted, pool.map(lambda job: ask(client, job), wanted), strict=True))


def _newest(client: Client, path: str, what: str) -> str | None:
    entries = lifecycle.newest_first(client.paged(path, what=what))
    return validate.shown(entries[0]["status"], 80) if entries else None


def _asked(job: str, status: str | None, cluster: str | None, *,
           problem: str | None = None) -> JobSummary:
    state = WAITING if problem is not None else ssh_state(status or "", cluster or "")
    return JobSummary(id=job, name="", owner="", shared=None, submitted="",
                      status=status or "unknown", cluster=cluster or "unknown", ssh=state,
                      problem=problem)


def _desc(text: str) -> list[int]:
    return [-ord(c) for c in text]


def _content(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("content") or value.get("status") or value.get("displayStatus")
    return _printable(value) if isinstance(value, str) else ""


def _printable(value: str, limit: int = 120) -> str:
    return validate.shown(value, limit)


def _owner(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("email") or value.get("username") or value.get("name")
    return _printable(value) if isinstance(value, str) else ""


def _summary(item: dict[str, Any], me: Me | None = None) -> JobSummary | None:
    try:
        job = validate.job_id(item.get("id"), source="the list of jobs")
    except InvalidValueError:
        return None  # not something we could ever write a block for
    status = _content(item.get("jobStatus"))
    cluster = _content(item.get("clusterStatusDisplay") or item.get("clusterStatus"))
    notes: list[str] = []
    state = ssh_state(status, cluster)
    if state == STARTING and is_final(status):
        notes.append(ended_note(job))
    return JobSummary(
        id=job,
        name=_printable(item.get("name") or "") if isinstance(item.get("name"), str) else "",
        owner=_owner(item.get("owner")),
        shared=is_shared(item, me),
        submitted=_printable(item.get("dateInserted") or "") if isinstance(
            item.get("dateInserted"), str) else "",
        status=status or "unknown",
        cluster=cluster or "unknown",
        ssh=state,
        notes=notes,
    )


def is_shared(item: dict[str, Any], me: Me | None) -> bool | None:
    """Shared: someone else owns the job (compared with users/me), or its owner shared it
    (``sharedWith`` lists someone). The list has no ``isShared`` (rescale-api.md). None when
    it cannot be told: no ``sharedWith`` list to go by and no known owner or user."""
    shared_with = item.get("sharedWith")
    if isinstance(shared_with, list) and shared_with:
        return True
    owns = me.owns(item.get("owner")) if me is not None else None
    if owns is not None:
        return not owns
    return None


def _probe(client: Client, row: JobSummary, heads: Mapping[str, tuple[str, int]]
           ) -> JobSummary:
    try:
        instances = list(client.paged(f"/api/v2/jobs/{row.id}/instances/",
                                      what=f"job {row.id}"))
        # One request a job, unless the roles do not say which node is the head (all CUSTOM)
        # and no head found before is still there: then the job's ready line does, from its
        # logs.
        known = heads.get(row.id)
        head = None
        lines: list[loglines.SSHLine] = []
        if resolver.needs_logs(instances):
            head = resolver.node_at(instances, *known) if known is not None else None
            if head is None:
                lines = resolver.lines_of(client, row.id)
        head = head or resolver.head_node(instances, lines)
        if head is None:
            return row
        line = resolver.line_of(head, lines)
        workers, skipped = resolver.routes(instances, head)
        target = Target.checked(
            job=row.id,
            user=head.get("username") if head.get("username") is not None
            else (line.user if line else None),
            host=resolver.public_address(head),
            port=head.get("sshPort") if head.get("sshPort") is not None
            else (line.port if line else None), workdir=None,
            source=f"the platform (job {row.id})", workers=workers,
        )
    except RescaleSSHError as error:
        return _replace(row, problem=error.message)
    return _replace(row, ssh=READY, target=target, notes=[*row.notes, *skipped])


def with_launch_keys(client: Client, rows: list[JobSummary], identity: str, *, fetch: bool
                     ) -> tuple[list[JobSummary], dict[str, launchkey.Verdict]]:
    """The ready rows judged by the key their cluster was launched with (launchkey.py): what
    is remembered costs nothing; with ``fetch`` the others' job details are asked (one request
    each, 8 at a time). Also returns the verdicts that say the keys differ."""
    ready = [row.id for row in rows if row.ssh == READY]
    if not ready:
        return rows, {}
    verdicts, _ = launchkey.check_each(client, ready, identity, fetch_missing=fetch,
                                       concurrency=CONCURRENCY)
    judged = [_replace(row, launch_key=verdicts[row.id].state) if row.id in verdicts else row
              for row in rows]
    return judged, {job: v for job, v in verdicts.items() if v.state == launchkey.DIFFERS}


def _replace(row: JobSummary, **changes: Any) -> JobSummary:
    from dataclasses import replace

    return replace(row, **changes)


def is_final(status: str) -> bool:
    return lifecycle.is_final(status)


def ssh_state(status: str, cluster: str) -> str:
    """From the two statuses alone (instances refine STARTING into READY)."""
    phase = lifecycle.cluster_phase(cluster)
    if phase == lifecycle.DOWN:
        return STOPPED
    if phase in (lifecycle.UP, lifecycle.STARTING):
        return STARTING
    return STOPPED if lifecycle.is_final(status) else WAITING


def ended_note(job: str) -> str:
    return (f"job {job} has completed but its cluster is still up: open sessions end when the "
            "cluster stops")


def by_id(rows: Iterable[JobSummary]) -> dict[str, JobSummary]:
    return {row.id: row for row in rows}
