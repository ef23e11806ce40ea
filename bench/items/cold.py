"""Item 3, ``cold``: API requests and wall time of resolving one job (the hook's cold path
and ``add JOB``), against the same command without the network plus the requests' latency."""

from __future__ import annotations

import statistics
from dataclasses import asdict

from bench.context import Ctx
from bench.errors import BenchError
from bench.process import timed
from bench.report import ItemResult, Row, fmt_ratio, fmt_seconds, fmt_time, verdict
from bench.sandbox import Sandbox, fake_platform, restore
from bench.scenario import ALIAS, JOB, USER_CONFIG
from bench.stats import Cmd, interleave


def bench_cold(ctx: Ctx) -> ItemResult:
    result = ItemResult("cold", "Cold resolution")
    latency = ctx.latency
    reps = ctx.reps(7, 3)
    with fake_platform() as platform:
        platform.add_job(JOB, host="203.0.113.7", port=22)
        sb = Sandbox(ctx, "cold", platform=platform)
        sb.install(USER_CONFIG)
        plain = Sandbox(ctx, "cold-add", platform=platform)
        platform.latency = latency
        line = platform.jobs[JOB].ready_line()

        hook_times: list[float] = []
        hook_requests: list[int] = []
        add_times: list[float] = []
        add_requests: list[int] = []
        paths: dict[str, list[str]] = {}
        for _ in range(reps):
            sb.clear_cache()
            start = platform.count()
            elapsed, proc = timed([ctx.ssh, "-G", "-F", str(sb.config), ALIAS], sb.env)
            if "hostname 203.0.113.7" not in proc.stdout.splitlines():
                raise BenchError(f"the cold hook did not resolve {ALIAS}:\n{proc.stderr}")
            hook_times.append(elapsed)
            hook_requests.append(platform.count() - start)
            paths["hook"] = [r.path for r in platform.requests[start:]]

            restore(plain.config, b"")
            start = platform.count()
            elapsed, proc = timed([ctx.cli, "add", JOB], plain.env)
            add_times.append(elapsed)
            add_requests.append(platform.count() - start)
            paths["add"] = [r.path for r in platform.requests[start:]]

        # Floors measured in the same run: the same work without the network.
        def reset_plain() -> None:
            restore(plain.config, b"")

        floors = interleave({
            "warm_hook": Cmd([ctx.ssh, "-G", "-F", str(sb.config), ALIAS], sb.env),
            "add_from_log": Cmd([ctx.cli, "add", JOB, "--from-log", line], plain.env,
                                prepare=reset_plain),
        }, ctx.reps(15, 5))
    # `add` also asks the job detail, once a job (its cluster's launch key, to warn when it is
    # not the user's: issue 15 item 2; remembered after): 3 the first time. The hook: 2.
    for label, times, counts, floor_name, floor_label, most in (
        ("`ssh -G` (hook), empty cache", hook_times, hook_requests, "warm_hook", "warm `ssh -G`",
         2),
        (f"`add {JOB}`", add_times, add_requests, "add_from_log", "`add --from-log`", 3),
    ):
        worst = max(counts)
        floor_t = floors[floor_name].times
        ideal = statistics.median(floor_t) + worst * latency
        result.rows += [
            Row("3", f"{label}: API requests", f"{worst}" + (
                f" (runs: {sorted(set(counts))})" if len(set(counts)) > 1 else ""),
                budget=f"≤ {most}", verdict=verdict(worst <= most)),
            Row("3", f"{label}: wall time at {latency * 1000:.0f} ms/request", fmt_time(times),
                f"{floor_label} + {worst} × latency = {fmt_seconds(ideal)}",
                fmt_ratio(statistics.median(times) / ideal)),
        ]
    result.notes.append(
        f"Requests of one cold `ssh -G`: {', '.join(paths['hook'])}. Of `add`: "
        f"{', '.join(paths['add'])}. The baseline is the same command without the network "
        f"(measured in this run) plus the requests' latency: the ratio shows the cost of the "
        f"cold path beyond waiting for the platform. {reps} repeats.")
    result.raw = {"latency_s": latency, "repeats": reps, "hook_times": hook_times,
                  "hook_requests": hook_requests, "add_times": add_times,
                  "add_requests": add_requests, "request_paths": paths,
                  **{name: asdict(s) for name, s in floors.items()}}
    return result
