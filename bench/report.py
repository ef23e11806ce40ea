"""The report: rows and notes per item, the markdown table on stdout, the raw numbers in JSON."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.context import Ctx
from bench.stats import summary


def fmt_seconds(value: float) -> str:
    if math.isnan(value):
        return "–"
    if value >= 10:
        return f"{value:.1f} s"
    if value >= 1:
        return f"{value:.2f} s"
    ms = value * 1000
    return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.1f} ms"


def fmt_time(values: list[float]) -> str:
    """median [p10–p90] (n)"""
    s = summary(values)
    return (f"{fmt_seconds(s['median'])} [{fmt_seconds(s['p10'])}–{fmt_seconds(s['p90'])}]")


def fmt_ratio(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.2f}×"



@dataclass
class Row:
    item: str
    measure: str
    value: str
    baseline: str = "–"
    ratio: str = "–"
    budget: str = "–"
    verdict: str = "info"


@dataclass
class ItemResult:
    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)


def verdict(ok: bool) -> str:
    return "ok" if ok else "**MISS**"


def markdown(info: dict[str, str], results: list[ItemResult], ctx: Ctx) -> str:
    mode = "quick" if ctx.quick else "full"
    lines = [f"## rescale-ssh benchmarks ({mode} run, {info['date']})", ""]
    lines += [f"- **{key}**: {value}" for key, value in info.items() if key != "date"]
    lines += [f"- **fake platform latency** (item 3): {ctx.args.latency:g} ms per request", ""]
    lines += ["Times: median [p10–p90] over the repeats; every baseline is measured in the same "
              "run, interleaved with its subject where possible.", "",
              "| # | measure | result | baseline | ratio | budget | verdict |",
              "|---|---|---|---|---|---|---|"]
    for item in results:
        for row in item.rows:
            lines.append(f"| {row.item} | {row.measure} | {row.value} | {row.baseline} | "
                         f"{row.ratio} | {row.budget} | {row.verdict} |")
    for item in results:
        if item.notes:
            lines += ["", f"### {item.rows[0].item if item.rows else '?'}. {item.title}", ""]
            for note in item.notes:
                lines += [note, ""]
            lines.pop()
    return "\n".join(lines) + "\n"


def write_json(path: Path, info: dict[str, str], ctx: Ctx, elapsed: float,
               results: list[ItemResult]) -> None:
    args = ctx.args
    path.write_text(json.dumps({
        "machine": info,
        "args": {**vars(args), "json": str(args.json),
                 "markdown": str(args.markdown) if args.markdown else None},
        "seconds": elapsed,
        "items": {r.name: {"title": r.title, "rows": [asdict(row) for row in r.rows],
                           "notes": r.notes, "raw": r.raw} for r in results},
    }, indent=1, default=str) + "\n")
