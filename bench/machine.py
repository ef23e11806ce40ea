"""The machine the run is on (the report's header), and the guard of the real ~/.ssh."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform as host_platform
import pwd
from pathlib import Path

from bench.context import Ctx
from bench.process import version_of


def machine(ctx: Ctx) -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError), open("/proc/meminfo") as handle:
        first = handle.readline().split()
        mem = f"{int(first[1]) / 1024 / 1024:.1f} GiB"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": f"{os.cpu_count()} ({usable} usable)",
        "memory": mem,
        "os": f"{host_platform.system()} {host_platform.release()}",
        "python": f"{host_platform.python_version()} ({ctx.python})",
        "openssh": version_of([ctx.ssh, "-V"]),
        "rsync": version_of([ctx.rsync, "--version"]),
        "rescale-ssh": version_of([ctx.cli, "--version"]),
        "load average at start": load_average(),
    }


def load_average() -> str:
    one, five, _ = os.getloadavg()
    cores = os.cpu_count() or 1
    busy = " (busy: other processes compete for the CPU, expect noise)" if one > 0.5 * cores else ""
    return f"{one:.2f} (1 min), {five:.2f} (5 min){busy}"


def ssh_dir_snapshot() -> list[tuple[str, int, int]]:
    path = Path(pwd.getpwuid(os.getuid()).pw_dir) / ".ssh"
    if not path.exists():
        return []
    found = []
    for item in [path, *sorted(path.rglob("*"))]:
        with contextlib.suppress(FileNotFoundError):
            info = item.lstat()
            found.append((str(item), info.st_mtime_ns, info.st_size))
    return found
