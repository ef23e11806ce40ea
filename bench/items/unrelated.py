"""Item 2, ``hook-unrelated``: what the installed hook costs ``ssh`` for a host that is not a
job, against the user's config before ``install``."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import beforeafter
from bench.context import Ctx
from bench.errors import BenchError
from bench.process import instructions, run
from bench.report import ItemResult, Row, fmt_ratio, fmt_time, verdict
from bench.sandbox import Sandbox, short_root
from bench.scenario import CACHED_JOBS, FEW_JOBS, PUBLISH_BLOCKS, UNRELATED, USER_CONFIG
from bench.stats import Cmd, Samples, bootstrap_median_diff, interleave, ratio
from bench.tree import Tree

SHADOWING_CONFIG = USER_CONFIG + "    User everyone\n"  # sets User for every host



@dataclass
class Side:
    """One tree's sandboxes, installed by its own code, and the configs they are compared with."""

    tree: Tree
    sb: Sandbox  # the hook installed
    plain: Path  # its config before `install` (what `uninstall` restores)
    cached: Sandbox  # CACHED_JOBS jobs reached through the hook
    shadow: Sandbox  # the same in a config that sets User for every host
    shadow_plain: Path
    static: Sandbox  # FEW_JOBS jobs added, no hook
    static_old: Path  # the same section without its Include

    def boxes(self) -> tuple[Sandbox, ...]:
        return self.sb, self.cached, self.shadow, self.static


def prepare(ctx: Ctx, tree: Tree, short: Path, names: str) -> Side:
    """``names``: the four sandboxes' one-letter folders (as long as a user's HOME, and the
    same length for every tree: ssh's work grows with the length of the paths)."""
    sb = Sandbox(ctx, names[0], base=short, tree=tree)
    plain = sb.dir / "config.without-hook"
    plain.write_bytes(sb.install(USER_CONFIG))
    # CACHED_JOBS jobs reached through the hook, in a plain config and in one that sets User
    # for every host (before this layout, that one needed the jobs' blocks at the top).
    cached = Sandbox(ctx, names[1], base=short, tree=tree)
    cached.install(USER_CONFIG)
    shadow = Sandbox(ctx, names[2], base=short, tree=tree)
    shadow_plain = shadow.dir / "config.without-hook"
    shadow_plain.write_bytes(shadow.install(SHADOWING_CONFIG))
    # FEW_JOBS jobs added with `add` and no hook: the section includes the tool's file for
    # their host-key policy; against the same section without that Include (the layout before).
    static = Sandbox(ctx, names[3], base=short, tree=tree)
    static.config.write_text(USER_CONFIG)
    for i in range(FEW_JOBS):
        static.cli("add", f"Static{i:02d}", "--from-log",
                   f"Command: ssh -p 2222 uprod_Static{i:02d}@198.51.100.{i + 1}")
    static_old = static.dir / "config.without-include"
    static_old.write_text("".join(line for line in static.config.read_text().splitlines(True)
                                  if not line.startswith("Include ")))
    return Side(tree, sb, plain, cached, shadow, shadow_plain, static, static_old)


def publish(side: Side) -> None:
    """CACHED_JOBS jobs reached through the hook, as the hook writes them (the side's tree)."""
    for box in (side.cached, side.shadow):
        box.script(PUBLISH_BLOCKS, str(box.state), str(CACHED_JOBS))


def check(side: Side) -> None:
    """What the hook leaves must not change the effective config of a host that is not a job."""
    sb, plain, cached, shadow = side.sb, side.plain, side.cached, side.shadow
    published = (cached.state / "fresh.conf").read_text().count("# rescale-ssh block job=")
    if published != CACHED_JOBS:
        raise BenchError(f"{published} of {CACHED_JOBS} cached blocks were written")
    if any((box.state / "hosts.conf").exists() for box in side.boxes()):
        raise BenchError("hosts.conf (an earlier layout's) was written")
    for host in (UNRELATED, "myserver"):
        if not sb.ssh_g(host) == sb.ssh_g(host, plain) == cached.ssh_g(host):
            raise BenchError(f"the hook changed the effective config of {host}")
        if shadow.ssh_g(host) != shadow.ssh_g(host, side.shadow_plain):
            raise BenchError(f"the hook changed the effective config of {host}")
        if side.static.ssh_g(host) != sb.ssh_g(host, plain):
            raise BenchError(f"the added jobs changed the effective config of {host}")


def ssh_g(ctx: Ctx, box: Sandbox, config: Path | None = None) -> Cmd:
    return Cmd([ctx.ssh, "-G", "-F", str(config or box.config), UNRELATED], box.env)


def subjects(ctx: Ctx, side: Side) -> dict[str, Cmd]:
    """The side's own configs (the hook's and `add`'s), by their names in ``samples``."""
    return {side.tree.key(name): ssh_g(ctx, box) for name, box in (
        ("hooked", side.sb), ("hooked_cached", side.cached), ("shadow_cached", side.shadow),
        ("static", side.static))}


def bench_hook_unrelated(ctx: Ctx) -> ItemResult:
    result = ItemResult("hook-unrelated", "Hook, unrelated host")
    short = short_root(ctx)
    sides = [prepare(ctx, tree, short, names)
             for tree, names in zip(ctx.trees(), ("abcd", "ABCD"), strict=False)]
    for side in sides:
        publish(side)
    for side in sides:
        check(side)
    here, others = sides[0], sides[1:]
    sb, plain, cached, shadow, static = here.sb, here.plain, here.cached, here.shadow, here.static
    shadow_plain, static_old = here.shadow_plain, here.static_old
    twin = sb.dir / "config.without-hook.copy"  # the A/A control: the same bytes, another file
    twin.write_bytes(plain.read_bytes())
    verbose = run([ctx.ssh, "-v", "-G", "-F", str(sb.config), UNRELATED], sb.env).stderr
    hook_ran = "Executing command" in verbose
    reps = ctx.reps(300, 80)

    # Within a minute of those hook runs, their blocks are still in fresh.conf.
    recent = interleave({"recent": ssh_g(ctx, cached), "plain": ssh_g(ctx, sb, plain),
                         **{side.tree.key("recent"): ssh_g(ctx, side.cached)
                            for side in others}}, reps // 2)
    waited = max(box.wait_for_sweeper() for side in sides for box in (side.cached, side.shadow))
    samples = interleave({
        "hooked": ssh_g(ctx, sb),
        "hooked_cached": ssh_g(ctx, cached),
        "plain": ssh_g(ctx, sb, plain),
        "plain_copy": ssh_g(ctx, sb, twin),
        "shadow_cached": ssh_g(ctx, shadow),
        "shadow_plain": ssh_g(ctx, shadow, shadow_plain),
        "static": ssh_g(ctx, static),
        "static_old": ssh_g(ctx, static, static_old),
        **{name: cmd for side in others for name, cmd in subjects(ctx, side).items()},
    }, reps)
    stats: dict[str, Any] = {}
    base = samples["plain"].times
    # "Measurable" = told apart from the difference between two identical configs in this run:
    # the Δ's 95 % interval and the A/A control's do not overlap.
    aa_low, aa_high = bootstrap_median_diff(samples["plain_copy"].times, base)

    def compare(name: str, label: str, times: list[float], base: list[float], base_label: str,
                *, budget: str = "no measurable Δ", judged: bool = True) -> None:
        low, high = bootstrap_median_diff(times, base)
        diff = statistics.median(times) - statistics.median(base)
        within = low <= aa_high and aa_low <= high
        stats[name] = {"median_diff_s": diff, "ci95_s": [low, high], "within_noise": within,
                       "contains_zero": low <= 0 <= high}
        result.rows.append(Row(
            "2", label, fmt_time(times), f"{base_label} {fmt_time(base)}",
            fmt_ratio(ratio(times, base)), budget,
            verdict(within and not hook_ran) if judged else "info"))
        result.notes.append(
            f"{label}: Δ median {diff * 1e6:+.0f} µs "
            f"({diff / statistics.median(base) * 100:+.1f} %), 95 % bootstrap CI "
            f"[{low * 1e6:+.0f}, {high * 1e6:+.0f}] µs: "
            + ("within the A/A noise." if within else "measurable."))

    compare("aa_control", "A/A control: the config without the hook, a copy of the same file",
            samples["plain_copy"].times, base, "config without the hook", budget="–",
            judged=False)
    # The budget, read exactly: ssh's own work grows by less than 1 % (instructions executed,
    # counted by valgrind: no noise). Wall times are too noisy on a shared machine to resolve
    # a few tens of µs: they are shown, judged only when valgrind is missing (then
    # "measurable" means told apart from the A/A control).
    counts = {name: instructions([ctx.ssh, "-G", "-F", str(config), UNRELATED], box.env)
              for name, box, config in (("plain", sb, plain), ("hooked", sb, sb.config),
                                        ("hooked_cached", cached, cached.config),
                                        ("shadow_plain", shadow, shadow_plain),
                                        ("shadow_cached", shadow, shadow.config),
                                        ("static", static, static.config),
                                        ("static_old", static, static_old))}
    exact = {name: count for name, count in counts.items() if count is not None}
    by_wall = len(exact) < len(counts)
    compare("hooked", f"`ssh -G {UNRELATED}`, hook installed", samples["hooked"].times, base,
            "config without the hook", judged=by_wall)
    compare("hooked_cached", f"the same, {CACHED_JOBS} jobs reached through the hook more "
            "than a minute earlier", samples["hooked_cached"].times, base,
            "config without the hook", judged=by_wall)
    compare("recent", f"the same, within a minute of reaching those {CACHED_JOBS} jobs "
            "(their blocks are still in fresh.conf)", recent["recent"].times,
            recent["plain"].times, "config without the hook", budget="–", judged=False)
    compare("shadow_cached", f"a config that sets User for every host, {CACHED_JOBS} jobs "
            "reached earlier", samples["shadow_cached"].times, samples["shadow_plain"].times,
            "that config without the hook", judged=by_wall)
    compare("static", f"{FEW_JOBS} jobs added, no hook: the section's Include of the tool's "
            "file (host-key policy)", samples["static"].times, samples["static_old"].times,
            "the same section without the Include", judged=by_wall)
    if not by_wall:
        for name, base_name, label, base_label in (
                ("hooked", "plain", "hook installed", "without the hook"),
                ("hooked_cached", "plain", f"{CACHED_JOBS} jobs reached more than a minute "
                                           "earlier", "without the hook"),
                ("shadow_cached", "shadow_plain", f"a config that sets User for every host, "
                                                  f"{CACHED_JOBS} jobs", "without the hook"),
                ("static", "static_old", f"{FEW_JOBS} jobs added: the Include of ssh.conf",
                 "without the Include")):
            extra = exact[name] - exact[base_name]
            share = extra / exact[base_name]
            result.rows.append(Row(
                "2", f"instructions ssh executes for `ssh -G {UNRELATED}`: {label} "
                "(valgrind: exact)", f"{exact[name]:,}", f"{base_label} "
                f"{exact[base_name]:,}", f"+{extra:,} (+{share * 100:.2f} %)",
                "< 1 %", verdict(share < 0.01 and not hook_ran)))
        stats["instructions"] = exact
    result.rows.append(Row("2", "hook run for the unrelated host (`ssh -v`: Executing command)",
                           "yes" if hook_ran else "no", "no", budget="no",
                           verdict=verdict(not hook_ran)))
    result.notes.append(
        f"State folder {sb.state} ({len(str(sb.state))} characters, as long as a user's). "
        f"Effective config (`ssh -G`) identical with and without the hook for `{UNRELATED}` "
        f"and `myserver`; {reps} interleaved repeats ({reps // 2} for the first minute). What "
        "the installed config costs every host: the section's `Include` of the tool's "
        "`ssh.conf` (a `Host rescale-*` line and one `Match` line, whose `originalhost` "
        "fails, so the hook never runs) and, inside it, one `Include` of a file that exists "
        "only for a "
        f"minute after a hook run (the sweeper deleted it {waited:.0f} s into this item). "
        "Most of the instructions are the `exec` criterion, which OpenSSH 9.2 prepares (token "
        "expansion) even when `originalhost` has already failed. OpenSSH reads an Include's "
        "files even inside a block that does not match (readconf.c passes SSHCONF_NEVERMATCH "
        "down), which is why fresh.conf is deleted a minute after the last hook run. The Match "
        "sits at the top of the user's config now, so a config that sets User for every host "
        "needs nothing more (the jobs' blocks win from the first connection): it costs the same "
        "as any other.")
    result.raw = {"repeats": reps, "cached_jobs": CACHED_JOBS, "hook_ran": hook_ran,
                  "waited_for_sweeper_s": waited, "stats": stats,
                  "recent": {name: asdict(s) for name, s in recent.items()},
                  **{name: asdict(s) for name, s in samples.items()}}
    for side in others:
        rows, base_counts = before_after(ctx, side, samples, recent, None if by_wall else exact)
        result.rows += rows
        stats[side.tree.key("instructions")] = base_counts
        result.notes.append(beforeafter.note(side.tree, side.sb.hook_conf()["launcher"], reps)
                            + f" Its state folder: {side.sb.state}.")
    return result


LABELS = (
    ("hooked", f"`ssh -G {UNRELATED}`, hook installed"),
    ("hooked_cached", f"the same, {CACHED_JOBS} jobs reached through the hook earlier"),
    ("shadow_cached", f"a config that sets User for every host, {CACHED_JOBS} jobs reached "
                      "earlier"),
    ("static", f"{FEW_JOBS} jobs added, no hook (the section's Include)"),
)


def before_after(ctx: Ctx, side: Side, samples: dict[str, Samples], recent: dict[str, Samples],
                 exact: dict[str, int] | None) -> tuple[list[Row], dict[str, int]]:
    """This tree's rows against the same of ``side`` (--baseline): wall times of the same
    rounds, and with valgrind (``exact``: this tree's counts) the instructions, exactly."""
    key = side.tree.key
    rows = [beforeafter.time_row("2", label, samples[name].times, samples[key(name)].times)
            for name, label in LABELS]
    rows.append(beforeafter.time_row(
        "2", f"the same, within a minute of reaching those {CACHED_JOBS} jobs",
        recent["recent"].times, recent[key("recent")].times))
    counts: dict[str, int] = {}
    boxes = dict(zip(("hooked", "hooked_cached", "shadow_cached", "static"), side.boxes(),
                     strict=True))
    for name, label in LABELS if exact is not None else ():
        box = boxes[name]
        count = instructions([ctx.ssh, "-G", "-F", str(box.config), UNRELATED], box.env)
        if count is not None and exact is not None:
            counts[name] = count
            rows.append(beforeafter.count_row(
                "2", f"instructions ssh executes (valgrind: exact): {label}", exact[name],
                count))
    return rows, counts
