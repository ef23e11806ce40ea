"""Item 4, ``sync``: ``sync`` of 10, 100, 1000 running jobs, a user with 5,000 jobs in history,
and clusters whose roles do not name the head (requests against their budgets)."""

from __future__ import annotations

import json
import math
import random
import re
import shlex
from typing import Any

from bench.context import Ctx
from bench.process import run, timed
from bench.report import ItemResult, Row, fmt_ratio, fmt_seconds, fmt_time, verdict
from bench.sandbox import Sandbox, fake_platform, restore
from bench.scenario import USER_CONFIG
from bench.stats import ratio

SYNC_SIZES = (10, 100, 1000)
SYNC_TIMEOUT = 300.0
FAKE_MAX_PAGE = 100  # FakePlatform.max_page_size
HISTORY = 5000  # jobs in the history of the user of the 5,000-job rows
LIVE = 10  # of which live: 8 running, 1 queued, 1 completed with its cluster still up
LOOK_BACK_PAGES = 1  # joblist.LOOK_BACK: one page of the newest completed jobs
# sync.KEY_CHECKS: the job details (launch keys) one `sync` asks at most, for jobs it adds whose
# key is not known from before (issue 15 item 2): a first sync of N jobs costs min(N, 20) more.
KEY_CHECKS = 20


def request_kinds(requests: list[Any]) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for req in requests:
        kind = re.sub(r"/jobs/[^/]+/", "/jobs/JOB/", req.path)
        if req.query.get("state"):
            kind += f"?state={req.query['state']}"
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def fmt_kinds(kinds: dict[str, int]) -> str:
    return ", ".join(f"{count} × `{kind}`" for kind, count in kinds.items())


def bench_sync(ctx: Ctx) -> ItemResult:
    """`sync` of N running jobs: at most (pages of live jobs) + 1 + N requests (design.md, and
    issue 13's one page of recent completed jobs); then a user with 5,000 jobs in history."""
    result = ItemResult("sync", "`sync` at scale")
    probe = Sandbox(ctx, "sync-probe").cli("sync", "--help", expect=None)
    sizes = SYNC_SIZES[:2] if ctx.quick else SYNC_SIZES
    if probe.returncode != 0:
        said = (probe.stderr.strip().splitlines() or ["(nothing)"])[-1]
        for n in sizes:
            result.rows.append(Row("4", f"`sync` of {n} running jobs", "–", budget=(
                "≤ pages + 1 + N requests"), verdict="not implemented yet"))
        result.notes.append(f"`rescale-ssh sync --help` exits {probe.returncode}: {said}")
        result.raw = {"implemented": False, "probe_exit": probe.returncode}
        return result
    result.raw = {"implemented": True, "runs": {}}
    for n in sizes:
        with fake_platform() as platform:
            for i in range(n):
                platform.add_job(f"Sync{i:05d}", host=f"10.0.{i // 256}.{i % 256}")
            sb = Sandbox(ctx, f"sync-{n}", platform=platform)
            sb.config.write_text(USER_CONFIG)
            platform.latency = ctx.latency
            start = platform.count()
            command = [ctx.cli, "sync", *(["--yes"] if "--yes" in probe.stdout else [])]
            elapsed, _ = timed(command, sb.env, timeout=SYNC_TIMEOUT)
            requests = platform.count() - start
            kinds = request_kinds(platform.requests[start:])
            listed = len(json.loads(sb.cli("list", "--json").stdout))
            platform.max_page_size = FAKE_MAX_PAGE
            pages = math.ceil(n / FAKE_MAX_PAGE)
        budget = pages + LOOK_BACK_PAGES + n + min(n, KEY_CHECKS)
        serial = budget * ctx.latency
        result.rows.append(Row(
            "4", f"`sync` of {n} running jobs: requests / wall time",
            f"{requests} req, {fmt_seconds(elapsed)} ({listed} hosts listed)",
            f"{budget} req one at a time = {fmt_seconds(serial)}",
            fmt_ratio(elapsed / serial), f"≤ {budget} req, {n} hosts",
            verdict(requests <= budget and listed == n),
        ))
        result.raw["runs"][str(n)] = {"requests": requests, "seconds": elapsed,
                                      "listed": listed, "budget": budget, "by_path": kinds}
        result.notes.append(
            f"{n} jobs: {fmt_kinds(kinds)}; `{shlex.join(command[1:])}` at "
            f"{ctx.args.latency:g} ms per request, effective concurrency "
            f"{serial / elapsed:.1f} (requests × latency / wall time).")
    result.notes.append("Budget (design.md, issue 13): pages of the live jobs "
                        "(`state=not_completed`) + one page of the newest completed jobs + N "
                        f"requests, + min(N, {KEY_CHECKS}) job details (issue 15 item 2: the "
                        "launch keys of the jobs a sync adds, once a job); the fake platform "
                        f"serves at most {FAKE_MAX_PAGE} jobs a "
                        "page. The baseline is the budget's requests made one at a time.")
    bench_history(ctx, result)
    bench_custom(ctx, result)
    return result


def bench_custom(ctx: Ctx, result: ItemResult) -> None:
    """`sync` where the roles do not say which node is the head (every node CUSTOM, as on the
    real platform): the first `sync` also reads each such job's logs (its ready line names the
    head); from then on the head found before (its block) tells it, one request a job."""
    count = 3
    budget = 1 + LOOK_BACK_PAGES + count
    with fake_platform() as platform:
        for i in range(count):
            platform.add_job(f"Cust{i}", kind="custom", workers=1, host=f"10.2.0.{i + 1}")
        sb = Sandbox(ctx, "custom", platform=platform)
        platform.latency = ctx.latency
        runs: list[int] = []
        kinds: list[dict[str, int]] = []
        for _ in range(1 + ctx.reps(3, 1)):
            start = platform.count()
            run([ctx.cli, "sync", "--yes"], sb.env, timeout=SYNC_TIMEOUT)  # no terminal
            runs.append(platform.count() - start)
            kinds.append(request_kinds(platform.requests[start:]))
    later = max(runs[1:])
    result.rows.append(Row(
        "4", f"`sync` of {count} all-CUSTOM clusters: requests, first run / later runs",
        f"{runs[0]} / {later} req", budget=f"later ≤ {budget} req", verdict=verdict(
            later <= budget)))
    result.notes.append(
        f"All-CUSTOM clusters: the first `sync` {fmt_kinds(kinds[0])} (the logs tell the head, "
        f"once a job); later ones {fmt_kinds(kinds[-1])}.")


def bench_history(ctx: Ctx, result: ItemResult) -> None:
    """`jobs` and `sync` for a user with 5,000 jobs in history and 10 live ones: at most (pages
    of live jobs) + (one page of recent completed jobs) + (one request per live job). The
    baseline, in the same run, interleaved: the same platform ignoring the filter, so every
    page of the history is read (what rescale-ssh did before issue 13, and what it still does,
    with the same answers, on a platform without the filter)."""
    reps = ctx.reps(5, 2)
    running, queued = LIVE - 2, 1
    budget = math.ceil((running + queued) / FAKE_MAX_PAGE) + LOOK_BACK_PAGES + LIVE
    # `sync` (from the user's config alone, each run) adds the 9 ready jobs: their job details
    # (launch keys) the first run, remembered after (issue 15 item 2). `jobs` asks none.
    sync_budget = budget + min(running + 1, KEY_CHECKS)
    with fake_platform() as platform:
        for i in range(HISTORY - LIVE):
            platform.add_job(f"Old{i:05d}", status="Completed", cluster_status="Stopped")
        platform.add_job("UpDone", status="Completed", cluster_status="Started",
                         host="10.1.0.1")  # automatic termination off
        for i in range(running):
            platform.add_job(f"Live{i:02d}", host=f"10.1.1.{i + 1}")
        platform.add_job("Queued1", status="Queued", cluster_status="Not Started")
        sb = Sandbox(ctx, "history", platform=platform)
        platform.latency = ctx.latency
        cold_start = platform.count()
        sb.cli("jobs", "--json")  # fills the users/me cache (a day)
        cold = request_kinds(platform.requests[cold_start:])
        runs: dict[str, dict[str, list[Any]]] = {
            f"{mode}/{command}": {"seconds": [], "requests": [], "answer": []}
            for mode in ("honour", "ignore") for command in ("jobs", "sync")}
        kinds: dict[str, dict[str, int]] = {}
        rng = random.Random(0)
        for _ in range(reps):
            order = list(runs)
            rng.shuffle(order)
            for name in order:
                mode, command = name.split("/")
                platform.list_filter = mode
                restore(sb.config, USER_CONFIG.encode())
                start = platform.count()
                argv = [ctx.cli, "jobs", "--json"] if command == "jobs" else [
                    ctx.cli, "sync", "--yes"]  # no terminal: a sync that drops needs --yes
                elapsed, proc = timed(argv, sb.env, timeout=SYNC_TIMEOUT)
                runs[name]["seconds"].append(elapsed)
                runs[name]["requests"].append(platform.count() - start)
                kinds[name] = request_kinds(platform.requests[start:])
                if command == "jobs":
                    ready = sorted(row["id"] for row in json.loads(proc.stdout)
                                   if row["ssh"] == "ready")
                    runs[name]["answer"].append(ready)
                else:
                    runs[name]["answer"].append(sorted(
                        line.split()[-1].removeprefix("rescale-")
                        for line in proc.stdout.splitlines() if line.startswith("Added")))
    expected = sorted(["UpDone", *(f"Live{i:02d}" for i in range(running))])
    for command in ("jobs", "sync"):
        subject, base = runs[f"honour/{command}"], runs[f"ignore/{command}"]
        worst = max(subject["requests"])
        right = all(answer == expected for answer in subject["answer"] + base["answer"])
        shown = "`jobs --json`" if command == "jobs" else "`sync`"
        most = budget if command == "jobs" else sync_budget
        result.rows.append(Row(
            "4", f"{shown}, {HISTORY:,} jobs in history, {LIVE} live: requests / wall time",
            f"{worst} req, {fmt_time(subject['seconds'])}",
            f"filter ignored (every page): {max(base['requests'])} req, "
            f"{fmt_time(base['seconds'])}",
            fmt_ratio(ratio(subject["seconds"], base["seconds"])),
            f"≤ {most} req, the same {len(expected)} hosts",
            verdict(worst <= most and right),
        ))
    result.notes.append(
        f"{HISTORY:,} jobs in history: {HISTORY - LIVE:,} completed with stopped clusters, then "
        f"{running} running, 1 queued and 1 completed whose cluster is still up (found by the "
        f"look-back). Budget: pages of live jobs ({math.ceil((running + queued) / FAKE_MAX_PAGE)})"
        f" + {LOOK_BACK_PAGES} page of recent completed jobs + one request per live job "
        f"({LIVE}) = {budget}; `sync` + {sync_budget - budget} job details (the launch keys "
        f"of the jobs it adds, once a job) = {sync_budget}. Requests: `jobs` "
        f"{fmt_kinds(kinds['honour/jobs'])}; `sync` "
        f"{fmt_kinds(kinds['honour/sync'])}; with the filter ignored, `sync` "
        f"{fmt_kinds(kinds['ignore/sync'])}. The first `jobs` of the day also asks "
        f"`users/me` (then cached a day): {fmt_kinds(cold)}. {reps} interleaved repeats at "
        f"{ctx.args.latency:g} ms per request; both modes gave the same hosts: "
        f"{', '.join(expected)}.")
    result.raw["history"] = {"budget": budget, "cold_jobs": cold, "by_path": kinds,
                             "runs": {name: {k: v for k, v in run.items() if k != "answer"}
                                      for name, run in runs.items()}}
