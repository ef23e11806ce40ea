"""Item 1, ``hook-warm``: ``ssh -G`` of a job whose record is warm, against ``python3 -c pass``."""

from __future__ import annotations

import shlex
import shutil
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from bench import beforeafter
from bench.context import Ctx
from bench.errors import BenchError
from bench.process import peak_rss
from bench.report import ItemResult, Row, fmt_ratio, fmt_time, verdict
from bench.sandbox import Sandbox, fake_platform, hook_argv
from bench.scenario import ALIAS, CACHED_JOBS, JOB, PUBLISH_BLOCKS, USER_CONFIG
from bench.stats import Cmd, Samples, interleave, ratio
from bench.tree import Tree


@dataclass
class Side:
    """One tree's sandboxes: the job warm, and the same after CACHED_JOBS other jobs."""

    tree: Tree
    sb: Sandbox
    crowded: Sandbox
    hook: list[str]


def prepare(ctx: Ctx, tree: Tree, platform: Any, name: str) -> Side:
    """Sandboxes installed by ``tree``'s own code; the crowded one still waits for its sweeper."""
    sb = Sandbox(ctx, name, platform=platform, tree=tree)
    sb.install(USER_CONFIG)
    cold = sb.ssh_g(ALIAS)  # the cold path runs once here: the cache is warm afterwards
    if cold.get("hostname") != ["203.0.113.7"] or "proxycommand" not in cold:
        raise BenchError(f"ssh -G {ALIAS} did not show the job's block: {cold}")
    # The same after CACHED_JOBS other jobs were reached through the hook (see item 2).
    crowded = Sandbox(ctx, f"{name}-cached", platform=platform, tree=tree)
    crowded.install(USER_CONFIG)
    crowded.script(PUBLISH_BLOCKS, str(crowded.state), str(CACHED_JOBS))
    return Side(tree, sb, crowded, hook_argv(sb.config, ALIAS))


def unmarked(box: Sandbox) -> Callable[[], object]:
    """Before a run: no marker, as a minute after the last hook run (the hook runs)."""
    return lambda: shutil.rmtree(box.state / "live", ignore_errors=True)


def commands(ctx: Ctx, side: Side) -> dict[str, Cmd]:
    sb, crowded, key = side.sb, side.crowded, side.tree.key
    return {
        key("ssh"): Cmd([ctx.ssh, "-G", "-F", str(sb.config), ALIAS], sb.env,
                        prepare=unmarked(sb)),
        key("ssh_marked"): Cmd([ctx.ssh, "-G", "-F", str(sb.config), ALIAS], sb.env),
        key("ssh_cached"): Cmd([ctx.ssh, "-G", "-F", str(crowded.config), ALIAS], crowded.env,
                               prepare=unmarked(crowded)),
        key("hook"): Cmd(side.hook, sb.env),
    }


def bench_hook_warm(ctx: Ctx) -> ItemResult:
    result = ItemResult("hook-warm", "Hook, warm cache")
    with fake_platform() as platform:
        platform.add_job(JOB, host="203.0.113.7", port=22)
        # The baseline's names as long as this tree's: ssh's work grows with the paths.
        sides = [prepare(ctx, tree, platform, "hook-warm" if tree.src is None else "hook-base")
                 for tree in ctx.trees()]
        here = sides[0]
        sb = here.sb
        python = sb.hook_conf()["python"]
        for side in sides:
            side.crowded.wait_for_sweeper()  # "earlier": more than a minute ago
            if side.crowded.ssh_g(ALIAS).get("hostname") != ["203.0.113.7"]:
                raise BenchError(f"ssh -G {ALIAS} did not show the job's block")
        requests_before = platform.count()
        reps = ctx.reps(120, 30)
        cmds = commands(ctx, here)
        cmds.update({
            "python": Cmd([python, "-c", "pass"], sb.env),
            "python_IS": Cmd([python, "-I", "-S", "-c", "pass"], sb.env),
        })
        for side in sides[1:]:
            cmds.update(commands(ctx, side))
        samples = interleave(cmds, reps)
        requests = platform.count() - requests_before
        hook = here.hook
        rss = {name: peak_rss(argv, sb.env, 5) for name, argv in (
            ("hook", hook), ("python", [python, "-c", "pass"]))}
    ssh_t, hook_t, py_t = samples["ssh"].times, samples["hook"].times, samples["python"].times
    r = ratio(ssh_t, py_t)
    r_cached = ratio(samples["ssh_cached"].times, py_t)
    base = f"`python3 -c pass` {fmt_time(py_t)}"
    result.rows += [
        Row("1", f"`ssh -G {ALIAS}`, warm cache (the hook runs)", fmt_time(ssh_t), base,
            fmt_ratio(r), "≤ 2.5×", verdict(r <= 2.5 and requests == 0)),
        Row("1", "the same within a minute of the last hook run (its marker: no Python)",
            fmt_time(samples["ssh_marked"].times), base,
            fmt_ratio(ratio(samples["ssh_marked"].times, py_t)), "≤ 2.5×",
            verdict(ratio(samples["ssh_marked"].times, py_t) <= 2.5)),
        Row("1", f"the same with {CACHED_JOBS} other jobs reached through the hook earlier",
            fmt_time(samples["ssh_cached"].times), base, fmt_ratio(r_cached), "≤ 2.5×",
            verdict(r_cached <= 2.5)),
        Row("1", "hook command alone (the Match exec line)", fmt_time(hook_t), base,
            fmt_ratio(ratio(hook_t, py_t))),
        Row("1", "`python3 -I -S -c pass` (the hook's interpreter flags)",
            fmt_time(samples["python_IS"].times), base,
            fmt_ratio(ratio(samples["python_IS"].times, py_t))),
        rss_row(rss["hook"], rss["python"]),
        Row("1", "API requests while timing (warm path)", str(requests), "0", budget="0",
            verdict=verdict(requests == 0)),
    ]
    result.notes.append(f"Hook command timed alone: `{shlex.join(hook)}`; interpreter from "
                        f"hook.conf: `{python}`; {reps} interleaved repeats.")
    for side in sides[1:]:
        result.rows += before_after(side.tree, samples)
        result.notes.append(beforeafter.note(side.tree, side.sb.hook_conf()["launcher"], reps)
                            + f" Its hook command: `{shlex.join(side.hook)}`.")
    result.raw = {"repeats": reps, "requests_while_timing": requests, "hook_argv": hook,
                  "max_rss_kib": rss,
                  **{side.tree.key("hook_argv"): side.hook for side in sides[1:]},
                  **{name: asdict(s) for name, s in samples.items()}}
    return result


def rss_row(hook: list[int] | None, python: list[int] | None) -> Row:
    if hook is None or python is None:
        return Row("1", "hook peak memory (max RSS)", "n/a: no /usr/bin/time")
    return Row("1", "hook peak memory (max RSS, GNU time)",
               f"{statistics.median(hook) / 1024:.1f} MiB",
               f"`python3 -c pass` {statistics.median(python) / 1024:.1f} MiB",
               fmt_ratio(statistics.median(hook) / statistics.median(python)))


def before_after(tree: Tree, samples: dict[str, Samples]) -> list[Row]:
    """This tree's rows against the same of ``tree`` (--baseline), timed in the same rounds."""
    return [beforeafter.time_row("1", label, samples[name].times,
                                 samples[tree.key(name)].times)
            for name, label in (
                ("ssh", f"`ssh -G {ALIAS}`, warm cache (the hook runs)"),
                ("ssh_marked", "the same within a minute of the last hook run (its marker)"),
                ("ssh_cached", f"the same with {CACHED_JOBS} other jobs reached earlier"),
                ("hook", "hook command alone (the Match exec line)"))]
