"""Item 6, ``data``: rsync through the alias (hook, ProxyUseFdpass) against direct ssh, and no
Python process left in the data path."""

from __future__ import annotations

import math
import random
import shlex
import shutil
import statistics
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from tests import loopback

from bench.context import Ctx
from bench.errors import BenchError
from bench.process import run, spawn, timed, watch_processes
from bench.report import ItemResult, Row, fmt_ratio, fmt_seconds, fmt_time, verdict
from bench.sandbox import Sandbox, fake_platform, write_payload
from bench.scenario import ALIAS, JOB, MB
from bench.stats import Cmd, bootstrap_median, bootstrap_median_diff, interleave, ratio, summary


def bench_data(ctx: Ctx) -> ItemResult:
    result = ItemResult("data", "Data path")
    size = (50 if ctx.quick else 200) * MB
    reps = ctx.reps(25, 3)
    server = loopback.start_sshd(ctx.root / "sshd")
    try:
        dest_root = ctx.fast_root / "dest"
        dest_root.mkdir(parents=True)
        with fake_platform() as platform:
            platform.add_job(JOB, user=server.user, host=server.host, port=server.port,
                             workdir=str(dest_root))
            sb = Sandbox(ctx, "data", platform=platform, identity=server.client_key)
            sb.install("# nothing of my own\n")
            options = sb.ssh_g(ALIAS)  # resolves the job (cold path) once
            if options.get("proxyusefdpass") != ["yes"] or options.get("port") != [
                    str(server.port)]:
                raise BenchError(f"unexpected effective config for {ALIAS}: {options}")
            via_alias = [ctx.ssh, "-F", str(sb.config), "-o", "BatchMode=yes"]
            direct = [ctx.ssh, "-F", "/dev/null", "-p", str(server.port), "-i",
                      str(server.client_key), "-o", "IdentitiesOnly=yes",
                      "-o", f"UserKnownHostsFile={sb.dir / 'direct_known_hosts'}",
                      "-o", "GlobalKnownHostsFile=/dev/null",
                      "-o", "StrictHostKeyChecking=accept-new", "-o", "BatchMode=yes"]
            targets = {"alias": (via_alias, ALIAS),
                       "direct": (direct, f"{server.user}@{server.host}")}
            for ssh_argv, host in targets.values():  # host keys accepted, caches warm
                run([*ssh_argv, host, "true"], sb.env)

            payload = ctx.fast_root / "payload.bin"
            write_payload(payload, size)
            counter = 0

            def rsync(mode: str) -> tuple[list[str], Path]:
                nonlocal counter
                counter += 1
                ssh_argv, host = targets[mode]
                dest = dest_root / f"{mode}-{counter}"
                return [ctx.rsync, "-a", "-e", shlex.join(ssh_argv), str(payload),
                        f"{host}:{dest}/"], dest

            def transfer(mode: str) -> Callable[[], float]:
                def go() -> float:
                    argv, dest = rsync(mode)
                    elapsed, _ = timed(argv, sb.env, timeout=600)
                    copied = dest / payload.name
                    if copied.stat().st_size != size:
                        raise BenchError(f"{copied} has {copied.stat().st_size} bytes")
                    shutil.rmtree(dest)
                    return elapsed
                return go

            def connect(mode: str) -> Callable[[], float]:
                ssh_argv, host = targets[mode]
                return lambda: spawn([*ssh_argv, host, "true"], sb.env)[0]

            # Each round: both transfers and both bare connections, in a shuffled order.
            jobs = {"alias": transfer("alias"), "direct": transfer("direct"),
                    "direct_again": transfer("direct"),
                    "alias_setup": connect("alias"), "direct_setup": connect("direct")}
            times: dict[str, list[float]] = {name: [] for name in jobs}
            rng = random.Random(6)
            for round_no in range(reps + 1):  # round 0: warm-up
                order = list(jobs)
                rng.shuffle(order)
                for name in order:
                    elapsed = jobs[name]()
                    if round_no:
                        times[name].append(elapsed)
            # The set-up alone, many more times: it is cheap, and it is the only part of the
            # transfer that differs between the routes (nothing of ours in the data path).
            setup_cmds = {mode: Cmd([*targets[mode][0], targets[mode][1], "true"], sb.env)
                          for mode in targets}
            # The first connection a minute after the last hook run: no marker, the hook runs.
            setup_cmds["alias_hook"] = Cmd(setup_cmds["alias"].argv, sb.env, prepare=lambda:
                                           shutil.rmtree(sb.state / "live", ignore_errors=True))
            setup_samples = interleave(setup_cmds, ctx.reps(80, 10))
            argv, dest = rsync("alias")
            watch = watch_processes(argv, sb.env, dest)
            shutil.rmtree(dest, ignore_errors=True)
            payload.unlink()
    finally:
        server.stop()
    throughput = {mode: [size / t / MB for t in times[mode]]
                  for mode in ("alias", "direct", "direct_again")}
    setup = {mode: statistics.median(times[f"{mode}_setup"]) for mode in targets}
    data_only = {mode: [size / (t - setup[mode]) / MB for t in times[mode]] for mode in targets}
    # Per round (the transfers of a round ran back to back): robust against drifting load.
    # "direct_again" is an A/A control: the same direct transfer twice, the noise floor.
    rounds = range(reps)
    paired = {
        "end to end": [times["direct"][i] / times["alias"][i] for i in rounds],
        "set-up excluded": [(times["direct"][i] - setup["direct"])
                            / (times["alias"][i] - setup["alias"]) for i in rounds],
        "A/A control": [times["direct"][i] / times["direct_again"][i] for i in rounds],
    }
    medians = {name: statistics.median(values) for name, values in paired.items()}
    cis = {name: bootstrap_median(values) for name, values in paired.items()}

    def data_verdict(name: str) -> str:
        if medians[name] >= 0.97:
            return "ok"
        return "**MISS**" if cis[name][1] < 0.97 else "inconclusive (noise)"

    def fmt_mbs(values: list[float]) -> str:
        s = summary(values)
        return f"{s['median']:.0f} MB/s [{s['p10']:.0f}–{s['p90']:.0f}]"

    def fmt_paired(name: str) -> str:
        low, high = cis[name]
        return f"{fmt_ratio(medians[name])} (95 % CI {low:.2f}–{high:.2f})"

    # From the parts: the direct transfer plus the extra set-up of the alias (the data path is
    # the same: the process check below finds no python in it, and the set-up-excluded ratio
    # is ~1). Far less noisy than one transfer against another.
    extra_low, extra_high = bootstrap_median_diff(setup_samples["alias"].times,
                                                  setup_samples["direct"].times)
    extra = (statistics.median(setup_samples["alias"].times)
             - statistics.median(setup_samples["direct"].times))
    direct_wall = statistics.median(times["direct"])
    composed = {"median": direct_wall / (direct_wall + extra),
                "low": direct_wall / (direct_wall + extra_high),
                "high": direct_wall / (direct_wall + extra_low)}
    no_python = watch["samples_with_python_while_flowing"] == 0
    result.rows += [
        Row("6", f"rsync {size // MB} MB through `{ALIAS}` (hook, ProxyUseFdpass): throughput "
            "= size / wall", fmt_mbs(throughput["alias"]),
            f"direct `ssh -p PORT` {fmt_mbs(throughput['direct'])}", fmt_paired("end to end"),
            "≥ 0.97×", data_verdict("end to end")),
        Row("6", "the same, connection set-up excluded: size / (wall − median `ssh HOST true`)",
            fmt_mbs(data_only["alias"]), f"direct {fmt_mbs(data_only['direct'])}",
            fmt_paired("set-up excluded"), "≥ 0.97×", data_verdict("set-up excluded")),
        Row("6", f"the same from its parts: median direct rsync wall / (it + the alias's extra "
            f"set-up, {extra * 1e3:+.1f} ms [{extra_low * 1e3:+.1f}, {extra_high * 1e3:+.1f}] "
            f"over {len(setup_samples['alias'].times)} interleaved `ssh HOST true`)",
            f"{fmt_seconds(direct_wall + extra)}", f"direct {fmt_seconds(direct_wall)}",
            f"{fmt_ratio(composed['median'])} (95 % CI {composed['low']:.3f}–"
            f"{composed['high']:.3f})", "≥ 0.97×",
            verdict(composed["low"] >= 0.97 and no_python)),
        Row("6", "connection set-up when the hook runs (the first connection a minute after the "
            "last one; every other row: with its marker, no Python but the proxy)",
            fmt_time(setup_samples["alias_hook"].times),
            f"direct {fmt_time(setup_samples['direct'].times)}",
            fmt_ratio(ratio(setup_samples["alias_hook"].times, setup_samples["direct"].times))),
        Row("6", "A/A control: direct vs the same direct transfer (the noise floor)",
            fmt_mbs(throughput["direct_again"]), f"direct {fmt_mbs(throughput['direct'])}",
            fmt_paired("A/A control")),
        Row("6", "connection set-up: `ssh HOST true`", fmt_time(times["alias_setup"]),
            f"direct {fmt_time(times['direct_setup'])}",
            fmt_ratio(ratio(times["alias_setup"], times["direct_setup"]))),
        Row("6", "python alive while data flows (the proxy must have exited)",
            f"{watch['samples_with_python_while_flowing']} of "
            f"{watch['samples_with_data_flowing']} samples", "0", budget="0",
            verdict=verdict(no_python and watch["samples_with_ssh"] > 0)),
    ]
    last = watch["last_python_s"]
    result.notes.append(
        f"Ratios are paired: the median over rounds of the throughput ratio within a round "
        f"(alias, direct and the A/A control ran back to back in a shuffled order), with a 95 % "
        f"bootstrap interval; a ratio under 0.97 whose interval reaches 0.97 is reported as "
        f"inconclusive. rsync wall times (alias): {fmt_time(times['alias'])}; (direct): "
        f"{fmt_time(times['direct'])}. {reps} rounds after one warm-up round, a fresh "
        f"destination folder each time, payload and destination on {ctx.fast_root.parent}. "
        f"Connection set-up includes the remote account's shell start-up (rsync pays it too) "
        f"and, through the alias, the hook and the proxy. Process check (one extra rsync "
        f"through the alias, its process tree sampled every 10 ms): {watch['samples']} samples "
        f"over {fmt_seconds(watch['duration_s'])}, ssh seen in {watch['samples_with_ssh']}, a "
        f"python process in {watch['samples_with_python']}"
        + (f" (last seen at {fmt_seconds(last)}; data first seen in the destination at "
           f"{fmt_seconds(watch['first_data_s'] or math.nan)})" if last is not None else "")
        + ".")
    result.raw = {"size_bytes": size, "repeats": reps, "times": times,
                  "throughput_MBps": throughput, "throughput_without_setup_MBps": data_only,
                  "paired_ratios": paired, "paired_ci95": cis, "process_watch": watch,
                  "setup_samples": {name: asdict(s) for name, s in setup_samples.items()},
                  "composed_ratio": composed}
    return result
