"""The benchmark's items, one module each, by the name ``--only`` takes (bench/README.md)."""

from __future__ import annotations

from collections.abc import Callable

from bench.context import Ctx
from bench.items.cold import bench_cold
from bench.items.data import bench_data
from bench.items.edit import bench_edit
from bench.items.startup import bench_startup
from bench.items.sync import bench_sync
from bench.items.unrelated import bench_hook_unrelated
from bench.items.warm import bench_hook_warm
from bench.report import ItemResult


def bench_wan(ctx: Ctx) -> ItemResult:
    """Item 8; imported when it runs (it brings the namespace, tun and TLS machinery)."""
    from bench.items.wan import bench_wan as wan_item

    return wan_item(ctx)


ON_REQUEST = ("wan",)  # minutes of emulated round trips: run when named (--only wan)
ITEMS: dict[str, Callable[[Ctx], ItemResult]] = {
    "hook-warm": bench_hook_warm,
    "hook-unrelated": bench_hook_unrelated,
    "cold": bench_cold,
    "sync": bench_sync,
    "edit": bench_edit,
    "data": bench_data,
    "startup": bench_startup,
    "wan": bench_wan,
}
