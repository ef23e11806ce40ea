"""The driver: sets up the run, runs the items chosen, prints the report, writes the JSON.

Exit status: 0, or 1 when an item could not run at all (a missed budget is reported, not an
error), 2 when the run cannot start, 3 when the real ~/.ssh changed during the run."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from tests import loopback

from bench.context import Ctx
from bench.errors import BenchError
from bench.items import ITEMS
from bench.machine import load_average, machine, ssh_dir_snapshot
from bench.options import parse_args
from bench.process import clean_env, run, tool, version_of
from bench.report import ItemResult, Row, markdown, write_json
from bench.scenario import MB
from bench.tree import WHERE, Tree


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli = Path(sys.executable).parent / "rescale-ssh"
    if not cli.exists():
        print(f"error: {cli} not found: run with the virtualenv's python", file=sys.stderr)
        return 2
    before = ssh_dir_snapshot()
    root = Path(tempfile.mkdtemp(prefix="rescale-ssh-bench-"))
    shm = Path("/dev/shm")
    fast = Path(tempfile.mkdtemp(prefix="rescale-ssh-bench-", dir=shm)) if (
        shm.is_dir() and os.access(shm, os.W_OK)
        and shutil.disk_usage(shm).free > 1_000 * MB) else root / "fast"
    fast.mkdir(exist_ok=True)
    ctx = Ctx(args=args, root=root, fast_root=fast, python=sys.executable, cli=str(cli),
              ssh=tool("ssh"), rsync=tool("rsync"))
    if args.baseline is not None:
        try:
            ctx.baseline = baseline_tree(ctx, args.baseline)
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            shutil.rmtree(root, ignore_errors=True)
            shutil.rmtree(fast, ignore_errors=True)
            return 2
    results: list[ItemResult] = []
    failed: list[str] = []
    started = time.monotonic()
    info = machine(ctx)
    if ctx.baseline is not None:
        info["baseline tree (items 1 and 2)"] = (
            f"{ctx.baseline.src} ({version_of([ctx.baseline.cli, '--version'])})")
    try:
        for name in args.only:
            print(f"[{time.monotonic() - started:6.1f} s] {name} …", file=sys.stderr, flush=True)
            try:
                results.append(ITEMS[name](ctx))
            except Exception as exc:  # report it, go on with the other items
                failed.append(name)
                detail = str(exc) if isinstance(exc, (BenchError, loopback.SSHDError)) else (
                    "".join(traceback.format_exception(exc)))
                results.append(ItemResult(name, name, [Row("?", name, "error", verdict="ERROR")],
                                          [f"`{name}` failed:\n\n```\n{detail}\n```"]))
    finally:
        if args.keep:
            print(f"kept {root}, {fast} and {ctx.cleanup}", file=sys.stderr)
        else:
            for folder in (root, fast, *ctx.cleanup):
                shutil.rmtree(folder, ignore_errors=True)
    elapsed = time.monotonic() - started
    info["load average at end"] = load_average()
    report = markdown(info, results, ctx) + f"\n_Run took {elapsed:.0f} s._\n"
    print(report)
    if args.markdown:
        args.markdown.write_text(report)
    write_json(args.json, info, ctx, elapsed, results)
    if ssh_dir_snapshot() != before:
        print("error: the real ~/.ssh changed during the run", file=sys.stderr)
        return 3
    return 1 if failed else 0



def baseline_tree(ctx: Ctx, src: Path) -> Tree:
    """The ``--baseline`` checkout's rescale-ssh, checked to load from ``src``."""
    tree = Tree.checkout("baseline", ctx.python, src, ctx.root / "baseline-tree")
    found = run(tree.script(WHERE), clean_env(), expect=None)
    if found.returncode != 0 or not Path(found.stdout).is_relative_to(src):
        raise BenchError(f"--baseline {src}: the interpreter imports rescale_ssh from "
                         f"{found.stdout or '(nothing)'} instead {found.stderr[-2000:]}")
    return tree
