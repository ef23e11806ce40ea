"""Commands for keys, login and diagnosis: key generate/show/fingerprint/export/import, login,
logout, whoami, doctor. (Being written.)"""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    del app
