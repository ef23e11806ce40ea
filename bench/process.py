"""Running programs: timed with nothing attached, captured with their output shown on a
wrong exit status, under GNU time or valgrind, and the process tree of a running one."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.errors import BenchError


def spawn(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Run ``argv`` with /dev/null as stdin, stdout and stderr: wall seconds and exit status."""
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
    ]
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
    _, status = os.waitpid(pid, 0)
    elapsed = time.perf_counter() - start
    return elapsed, os.waitstatus_to_exitcode(status)


def peak_rss(argv: list[str], env: dict[str, str], runs: int) -> list[int] | None:
    """Max RSS (KiB) of ``argv`` under GNU time, ``runs`` times; None without /usr/bin/time.

    Not wait4() on a child of this process: the child's RSS high-water mark starts with this
    (big) process's, inherited through fork or vfork and recorded at exec. GNU time forks the
    command from its own small process, so the mark is the command's."""
    gnu_time = "/usr/bin/time"
    if not os.access(gnu_time, os.X_OK):
        return None
    found = []
    with tempfile.NamedTemporaryFile("r") as out:
        for _ in range(runs):
            run([gnu_time, "-f", "%M", "-o", out.name, *argv], env)
            out.seek(0)
            found.append(int(out.read().split()[-1]))
    return found


def run(argv: list[str], env: dict[str, str], *, expect: int | None = 0,
        input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run with output captured; a wrong exit status is an error that shows the output."""
    proc = subprocess.run(argv, env=env, input=input if input is not None else "", text=True,
                          capture_output=True, timeout=timeout)
    if expect is not None and proc.returncode != expect:
        raise BenchError(f"$ {shlex.join(argv)}\nexit {proc.returncode} (expected {expect})\n"
                         f"--- stdout\n{proc.stdout[-3000:]}--- stderr\n{proc.stderr[-3000:]}")
    return proc


def timed(argv: list[str], env: dict[str, str], **kwargs: Any
          ) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    proc = run(argv, env, **kwargs)
    return time.perf_counter() - start, proc



def instructions(argv: list[str], env: dict[str, str]) -> int | None:
    """Instructions the program executes (valgrind's lackey): exact, unlike a wall time."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    proc = subprocess.run([valgrind, "--tool=lackey", "--basic-counts=yes", *argv], env=env,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    found = re.search(r"guest instrs:\s+([\d,]+)", proc.stderr)
    return int(found.group(1).replace(",", "")) if found else None


def clean_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("RESCALE_", "PYTHON", "SSH_", "_RESCALE_SSH"))}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["LC_ALL"] = "C.UTF-8"
    return env


def tool(name: str) -> str:
    found = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), None)
    if found is None:
        raise BenchError(f"{name} is not installed")
    return found


def version_of(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except OSError as exc:
        return f"unavailable ({exc})"
    text = (proc.stdout + proc.stderr).strip().splitlines()
    return text[0].strip() if text else "unknown"


def proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, command line) from /proc."""
    table: dict[int, tuple[int, str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read().decode(errors="replace")
            with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        table[int(entry.name)] = (ppid, cmdline)
    return table


def descendants(table: dict[int, tuple[int, str]], root: int) -> list[tuple[int, str]]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append((child, table[child][1]))
            todo.append(child)
    return found


def watch_processes(argv: list[str], env: dict[str, str], dest: Path) -> dict[str, Any]:
    """Run ``argv`` (an rsync) and sample its process tree every 10 ms: is a python process
    (the proxy) alive while data is flowing (a file has appeared in ``dest``)?"""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    samples = flowing = python_seen = python_flowing = ssh_seen = 0
    last_python = first_flow = None
    seen_commands: set[str] = set()
    while proc.poll() is None:
        tree = descendants(proc_table(), proc.pid)
        now = time.perf_counter() - start
        data = dest.is_dir() and any(dest.iterdir())
        if data and first_flow is None:
            first_flow = now
        pythons = [cmd for _, cmd in tree if "python" in cmd.split(" ")[0] or "launch.py" in cmd]
        samples += 1
        flowing += data
        ssh_seen += any(cmd.split(" ")[0].endswith("ssh") for _, cmd in tree)
        if pythons:
            python_seen += 1
            python_flowing += data
            last_python = now
            seen_commands.update(cmd[:160] for cmd in pythons)
        time.sleep(0.01)
    duration = time.perf_counter() - start
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise BenchError(f"$ {shlex.join(argv)}\nexit {proc.returncode}\n{stderr}")
    return {"samples": samples, "samples_with_data_flowing": flowing,
            "samples_with_ssh": ssh_seen, "samples_with_python": python_seen,
            "samples_with_python_while_flowing": python_flowing,
            "last_python_s": last_python, "first_data_s": first_flow, "duration_s": duration,
            "python_commands": sorted(seen_commands)}
