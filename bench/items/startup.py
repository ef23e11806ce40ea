"""Item 7, ``startup``: ``--help``, ``list`` and a completion request against ``python3 -c
pass``, and the top imports of ``--help``."""

from __future__ import annotations

import statistics
from dataclasses import asdict

from bench.context import Ctx
from bench.process import run
from bench.report import ItemResult, Row, fmt_ratio, fmt_time
from bench.sandbox import Sandbox
from bench.scenario import USER_CONFIG
from bench.stats import Cmd, interleave, ratio


def parse_importtime(stderr: str) -> list[tuple[str, int, int, str]]:
    """(module, cumulative µs, depth, imported by) for each ``-X importtime`` line."""
    rows: list[tuple[str, int, int]] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        parts = line[len("import time:"):].split("|")
        if len(parts) != 3:
            continue
        name = parts[2]
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        rows.append((name.strip(), int(parts[1]), depth))
    # Children are printed before their parent: a line's parent is the next one a level up.
    parent_at: dict[int, str] = {}
    out: list[tuple[str, int, int, str]] = []
    for name, cumulative, depth in reversed(rows):
        out.append((name, cumulative, depth, parent_at.get(depth - 1, "") if depth else ""))
        parent_at[depth] = name
    return out


def bench_startup(ctx: Ctx) -> ItemResult:
    result = ItemResult("startup", "Interactive start-up")
    sb = Sandbox(ctx, "startup")
    sb.config.write_text(USER_CONFIG)
    for i, job in enumerate(("Abc123", "Def456", "Ghi789")):
        sb.cli("add", job, "--from-log", "Instance ready for ssh access. Command: ssh -i "
               f"</path/to/key> uprod_{job}@198.51.100.{i + 1}; working directory: "
               f"/enc/uprod_{job}/work")
    complete_env = {**sb.env, "_RESCALE_SSH_COMPLETE": "complete_bash",
                    "COMP_WORDS": "rescale-ssh ke", "COMP_CWORD": "1"}
    completion = run([ctx.cli], complete_env, expect=None)
    reps = ctx.reps(30, 10)
    samples = interleave({
        "python": Cmd([ctx.python, "-c", "pass"], sb.env),
        "help": Cmd([ctx.cli, "--help"], sb.env),
        "list": Cmd([ctx.cli, "list"], sb.env),
        "complete": Cmd([ctx.cli], complete_env, expect=None),
    }, reps)
    py_t = samples["python"].times
    base = f"`python3 -c pass` {fmt_time(py_t)}"
    for name, label in (("help", "`rescale-ssh --help`"), ("list", "`rescale-ssh list` (3 hosts)"),
                        ("complete", "completion request (`_RESCALE_SSH_COMPLETE=complete_bash`, "
                                     "`ke`)")):
        result.rows.append(Row("7", label, fmt_time(samples[name].times), base,
                               fmt_ratio(ratio(samples[name].times, py_t))))
    wired = completion.returncode == 0 and completion.stdout.strip().splitlines() == ["key"]
    said = (completion.stdout.strip() or completion.stderr.strip()).splitlines()
    result.rows.append(Row("7", "completion wired (`ke` → `key`)", "yes" if wired else (
        f"no: exit {completion.returncode}, {len(said)} lines of output"), verdict="info"))
    result.notes.append(
        f"Completion request: exit {completion.returncode}; first lines of its output: "
        + (" / ".join(f"`{line.strip()}`" for line in said[:3]) or "(none)") + ".")

    # Import cost of --help: median over runs of each module's cumulative import time.
    runs = 3 if ctx.quick else 7
    per_module: dict[tuple[str, int, str], list[int]] = {}
    totals = []
    for _ in range(runs):
        stderr = run([ctx.python, "-X", "importtime", ctx.cli, "--help"], sb.env).stderr
        parsed = parse_importtime(stderr)
        totals.append(sum(c for _, c, depth, _ in parsed if depth == 0))
        for name, cumulative, depth, parent in parsed:
            per_module.setdefault((name, depth, parent), []).append(cumulative)
    ranked = sorted(((statistics.median(v), k) for k, v in per_module.items()), reverse=True)
    table = ["| module | cumulative | depth | imported by |", "|---|---:|---:|---|"]
    for us, (name, depth, parent) in ranked[:20]:
        table.append(f"| `{name}` | {us / 1000:.1f} ms | {depth} | {parent or '(top level)'} |")
    result.notes.append(
        f"Top imports of `rescale-ssh --help` by cumulative time (`python -X importtime`, "
        f"median of {runs} runs; all top-level imports together "
        f"{statistics.median(totals) / 1000:.0f} ms; importtime itself adds overhead):\n\n"
        + "\n".join(table))
    result.raw = {"repeats": reps, "completion": {"exit": completion.returncode,
                                                  "stdout": completion.stdout[:2000],
                                                  "stderr": completion.stderr[:2000]},
                  "importtime_us": {f"{'  ' * d}{n} <- {p}": v
                                    for (n, d, p), v in per_module.items()},
                  **{name: asdict(s) for name, s in samples.items()}}
    return result
