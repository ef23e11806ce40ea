"""Commands for the cluster lifecycle: jobs, status, wait, sync, prune, shell. (Being written.)"""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    del app
