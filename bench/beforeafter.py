"""``--baseline``: rows that set this tree's figures against another checkout's, both timed in
the same interleaved rounds (items 1 and 2)."""

from __future__ import annotations

from bench.report import Row, fmt_time
from bench.stats import paired_ratio
from bench.tree import Tree


def time_row(item: str, label: str, current: list[float], baseline: list[float]) -> Row:
    """This tree's time against the baseline tree's, and the ratio of the two: the median of
    the per-round ratios with its 95 % bootstrap interval (the spread a reorganisation that
    changes nothing should stay within, around 1.00)."""
    middle, low, high = paired_ratio(current, baseline)
    return Row(item, f"before/after: {label}", fmt_time(current),
               f"baseline tree {fmt_time(baseline)}",
               f"{middle:.2f}× (95 % CI {low:.2f}–{high:.2f})")


def count_row(item: str, label: str, current: int, baseline: int) -> Row:
    """An exact count (valgrind's instructions) of this tree against the baseline tree's."""
    extra = current - baseline
    return Row(item, f"before/after: {label}", f"{current:,}", f"baseline tree {baseline:,}",
               f"{extra:+,} ({extra / baseline * 100:+.2f} %)")


def note(tree: Tree, launcher: str, repeats: int) -> str:
    return (f"Before/after: the baseline tree is `{tree.src}`, run by a launcher that puts it "
            f"first on sys.path (`{tree.cli}`, the same interpreter); its own `install` wrote "
            f"its launcher into its sandboxes' hook.conf (`{launcher}`). Both trees' subjects "
            f"ran in the same {repeats} rounds, in a shuffled order each round; a ratio is the "
            "median of the per-round ratios (this tree / baseline), with its 95 % bootstrap "
            "interval.")
