"""The run's context: its options, folders, programs, and the trees it measures."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from bench.tree import Tree


@dataclass
class Ctx:
    args: argparse.Namespace
    root: Path
    fast_root: Path  # tmpfs when there is one: payload and destination of the data path
    python: str
    cli: str
    ssh: str
    rsync: str
    cleanup: list[Path] = field(default_factory=list)  # more temporary folders of the run
    baseline: Tree | None = None  # --baseline: another checkout's src, for items 1 and 2

    @property
    def tree(self) -> Tree:
        """The tree measured: the interpreter's rescale-ssh (its console script)."""
        return Tree.installed(self.python, self.cli)

    @property
    def quick(self) -> bool:
        return bool(self.args.quick)

    @property
    def latency(self) -> float:
        return float(self.args.latency) / 1000

    def reps(self, full: int, quick: int) -> int:
        if self.args.repeats:
            return int(self.args.repeats)
        return quick if self.quick else full

    def trees(self) -> list[Tree]:
        """This tree, and the baseline's when there is one."""
        return [self.tree, *([self.baseline] if self.baseline is not None else [])]
