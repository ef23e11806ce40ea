"""Turning results into text or JSON. Commands return data; only this module formats it."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from rescale_ssh.configfile import Change
from rescale_ssh.sshconfig.hostblock import HostEntry

if TYPE_CHECKING:
    from rescale_ssh.platform.joblist import JobSummary


def diff(change: Change) -> str:
    """A unified diff of a planned change (non-UTF-8 bytes shown as escapes, never lost)."""
    if not change.changed:
        return ""
    old = change.old.decode("utf-8", "backslashreplace").splitlines(keepends=True)
    new = change.new.decode("utf-8", "backslashreplace").splitlines(keepends=True)
    lines = difflib.unified_diff(
        old,
        new,
        fromfile=f"{change.path}" if change.existed else "/dev/null",
        tofile=f"{change.path}",
    )
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in lines)


def entry_dict(entry: HostEntry) -> dict[str, Any]:
    t = entry.target
    return {
        "job": t.job,
        "alias": t.alias,
        "user": t.user,
        "host": t.host,
        "port": t.port,
        "workdir": t.workdir,
        "identity": entry.identity,
        "known_hosts": entry.known_hosts,
    }


def as_json(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=False)


def table(entries: Iterable[HostEntry]) -> str:
    rows = [("ALIAS", "USER@HOST", "PORT", "WORKING DIRECTORY")]
    rows += [
        (e.alias, f"{e.target.user}@{e.target.host}", str(e.target.port), e.target.workdir)
        for e in entries
    ]
    return columns(rows)


def columns(rows: Sequence[tuple[str, ...]]) -> str:
    """Left-aligned columns, two spaces apart, no trailing blanks."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def job_dict(row: JobSummary) -> dict[str, Any]:
    """One row of `jobs --json` (keys documented in the README)."""
    t = row.target
    return {
        "id": row.id,
        "alias": row.alias,
        "name": row.name or None,  # none given: null, not ""
        "owner": row.owner or None,
        "shared": row.shared,
        "submitted": row.submitted or None,
        "status": row.status,
        "cluster_status": row.cluster,
        "ssh": row.ssh,
        "user": None if t is None else t.user,
        "host": None if t is None else t.host,
        "port": None if t is None else t.port,
        "launch_key": row.launch_key,
        "notes": row.notes,
    }
