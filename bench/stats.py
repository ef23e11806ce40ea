"""Statistics of the samples: medians, percentiles, bootstrap intervals, and the interleaved
rounds every subject and its baseline are timed in."""

from __future__ import annotations

import math
import random
import shlex
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.errors import BenchError
from bench.process import run, spawn


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * q
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median": statistics.median(values) if values else math.nan,
        "p10": percentile(values, 0.10),
        "p90": percentile(values, 0.90),
        "min": min(values) if values else math.nan,
        "max": max(values) if values else math.nan,
    }


def bootstrap_median_diff(a: list[float], b: list[float], rounds: int = 2000,
                          seed: int = 1) -> tuple[float, float]:
    """95 % bootstrap interval of median(a) - median(b)."""
    rng = random.Random(seed)
    diffs = sorted(
        statistics.median(rng.choices(a, k=len(a))) - statistics.median(rng.choices(b, k=len(b)))
        for _ in range(rounds)
    )
    return percentile(diffs, 0.025), percentile(diffs, 0.975)


def bootstrap_median(values: list[float], rounds: int = 2000,
                     seed: int = 2) -> tuple[float, float]:
    """95 % bootstrap interval of the median of ``values``."""
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(values, k=len(values)))
                     for _ in range(rounds))
    return percentile(medians, 0.025), percentile(medians, 0.975)


def ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(a) / statistics.median(b)



def paired_ratio(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """The median of the per-round ratios a[i] / b[i] (both timed in the same rounds of
    :func:`interleave`) and its 95 % bootstrap interval: (median, low, high)."""
    ratios = [x / y for x, y in zip(a, b, strict=True)]
    low, high = bootstrap_median(ratios) if len(ratios) > 1 else (ratios[0], ratios[0])
    return statistics.median(ratios), low, high


@dataclass
class Cmd:
    argv: list[str]
    env: dict[str, str]
    prepare: Callable[[], object] | None = None  # untimed, before every run
    expect: int | None = 0  # None: any exit status


@dataclass
class Samples:
    times: list[float] = field(default_factory=list)



def interleave(cmds: dict[str, Cmd], repeats: int, *, warmup: int = 2,
               seed: int = 0) -> dict[str, Samples]:
    """Run every command ``warmup`` + ``repeats`` times, in a shuffled order each round, so a
    drift of the machine (frequency, other load) hits subject and baseline alike."""
    rng = random.Random(seed)
    out = {name: Samples() for name in cmds}
    names = list(cmds)
    for round_no in range(warmup + repeats):
        rng.shuffle(names)
        for name in names:
            cmd = cmds[name]
            if cmd.prepare is not None:
                cmd.prepare()
            elapsed, code = spawn(cmd.argv, cmd.env)
            if cmd.expect is not None and code != cmd.expect:
                run(cmd.argv, cmd.env, expect=cmd.expect)  # raises, with the output
                raise BenchError(f"{shlex.join(cmd.argv)} exited {code} only when timed")
            if round_no >= warmup:
                out[name].times.append(elapsed)
    return out
