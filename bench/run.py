#!/usr/bin/env python3
"""Benchmarks of rescale-ssh, each against a baseline measured in the same run.

The budgets are those of design.md ("Budgets"); bench/README.md explains every item. Run with the
project's virtualenv (``python bench/run.py``); ``--quick`` for a short run,
``--only NAME`` (repeatable, or comma-separated) to pick items. Prints a markdown table (median
and p10–p90 over repeats) and writes the raw numbers to bench/results.json.

Everything runs in a temporary HOME and XDG folders, every ssh gets ``-F <file>`` (ssh takes ``~``
from the passwd entry, and only creates ``~/.ssh`` when no ``-F`` is given), and the network is
127.0.0.1 only: a fake Rescale platform (tests/fakeplatform.py) and a throwaway sshd
(tests/loopback.py). The real ``~/.ssh`` is checked to be unchanged at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform as host_platform
import pwd
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))  # the fake platform and the loopback sshd live in tests/

from tests import loopback  # noqa: E402

RESULTS_JSON = BENCH / "results.json"
JOB = "Fotxeb"
ALIAS = f"rescale-{JOB}"
UNRELATED = "some-other-host"
MB = 1_000_000

# A plausible user config: globals, a few hosts, a Match block, a trailing Host *.
USER_CONFIG = """\
# My own ssh settings.
ServerAliveInterval 60
AddKeysToAgent yes

Host bastion
    HostName 192.0.2.1
    User alice
    IdentityFile ~/.ssh/id_bastion

Host build-? build-??
    HostName %h.ci.example.com
    User ci
    ProxyJump bastion

Host myserver
\tHostName 192.0.2.10
\tUser alice
\tPort 2222

Match originalhost gpu-*
    ForwardAgent no
    User researcher

Host *
    ServerAliveCountMax 3
    HashKnownHosts yes
"""

# Renders the managed section with the package's own classes, in the sandbox's environment (so
# identity and known_hosts are exactly what `add` would write there).
RENDER_SECTION = """\
import sys
from rescale_ssh.sshconfig.hostblock import HostEntry
from rescale_ssh.sshconfig.section import Section
from rescale_ssh.settings import Settings
from rescale_ssh.target import Target

settings = Settings()
entries = {}
for i in range(int(sys.argv[1])):
    job = f"Bench{i:05d}"
    user = f"uprod_{job}"
    target = Target.checked(job=job, user=user, host=f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
                            port=22 if i % 3 else 2222, workdir=f"/enc/{user}/work",
                            source="bench")
    entries[job] = HostEntry(target=target, identity=settings.identity,
                             known_hosts=settings.known_hosts)
sys.stdout.buffer.write(Section(entries=entries).render())
"""


# Publishes blocks exactly as the hook does after resolving a job (blockfile.py).
PUBLISH_BLOCKS = """\
import sys, time
from rescale_ssh.hook import matcher, hookconf, jobcache
from rescale_ssh.hook.jobcache import OK, Entry
from rescale_ssh.target import Target

conf = hookconf.load(sys.argv[1])
for i in range(int(sys.argv[2])):
    job = f"Cached{i:04d}"
    target = Target.checked(job=job, user=f"uprod_{job}", host=f"10.1.{i // 256}.{i % 256}",
                            port=22, workdir=None, source="bench")
    entry = Entry(state=OK, resolved=time.time(), target=target)
    jobcache.save(conf.state_dir, job, entry)
    hook.publish(conf, job, entry)
"""
CACHED_JOBS = 100
FEW_JOBS = 10


class BenchError(RuntimeError):
    pass


# -- statistics --------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * q
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median": statistics.median(values) if values else math.nan,
        "p10": percentile(values, 0.10),
        "p90": percentile(values, 0.90),
        "min": min(values) if values else math.nan,
        "max": max(values) if values else math.nan,
    }


def bootstrap_median_diff(a: list[float], b: list[float], rounds: int = 2000,
                          seed: int = 1) -> tuple[float, float]:
    """95 % bootstrap interval of median(a) - median(b)."""
    rng = random.Random(seed)
    diffs = sorted(
        statistics.median(rng.choices(a, k=len(a))) - statistics.median(rng.choices(b, k=len(b)))
        for _ in range(rounds)
    )
    return percentile(diffs, 0.025), percentile(diffs, 0.975)


def bootstrap_median(values: list[float], rounds: int = 2000,
                     seed: int = 2) -> tuple[float, float]:
    """95 % bootstrap interval of the median of ``values``."""
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(values, k=len(values)))
                     for _ in range(rounds))
    return percentile(medians, 0.025), percentile(medians, 0.975)


def fmt_seconds(value: float) -> str:
    if math.isnan(value):
        return "–"
    if value >= 10:
        return f"{value:.1f} s"
    if value >= 1:
        return f"{value:.2f} s"
    ms = value * 1000
    return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.1f} ms"


def fmt_time(values: list[float]) -> str:
    """median [p10–p90] (n)"""
    s = summary(values)
    return (f"{fmt_seconds(s['median'])} [{fmt_seconds(s['p10'])}–{fmt_seconds(s['p90'])}]")


def fmt_ratio(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.2f}×"


def ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(a) / statistics.median(b)


# -- results -----------------------------------------------------------------------------------


@dataclass
class Row:
    item: str
    measure: str
    value: str
    baseline: str = "–"
    ratio: str = "–"
    budget: str = "–"
    verdict: str = "info"


@dataclass
class ItemResult:
    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)


def verdict(ok: bool) -> str:
    return "ok" if ok else "**MISS**"


# -- running things ----------------------------------------------------------------------------


@dataclass
class Cmd:
    argv: list[str]
    env: dict[str, str]
    prepare: Callable[[], object] | None = None  # untimed, before every run
    expect: int | None = 0  # None: any exit status


@dataclass
class Samples:
    times: list[float] = field(default_factory=list)


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


def interleave(cmds: dict[str, Cmd], repeats: int, *, warmup: int = 2,
               seed: int = 0) -> dict[str, Samples]:
    """Run every command ``warmup`` + ``repeats`` times, in a shuffled order each round, so a
    drift of the machine (frequency, other load) hits subject and baseline alike."""
    rng = random.Random(seed)
    out = {name: Samples() for name in cmds}
    names = list(cmds)
    for round_no in range(warmup + repeats):
        rng.shuffle(names)
        for name in names:
            cmd = cmds[name]
            if cmd.prepare is not None:
                cmd.prepare()
            elapsed, code = spawn(cmd.argv, cmd.env)
            if cmd.expect is not None and code != cmd.expect:
                run(cmd.argv, cmd.env, expect=cmd.expect)  # raises, with the output
                raise BenchError(f"{shlex.join(cmd.argv)} exited {code} only when timed")
            if round_no >= warmup:
                out[name].times.append(elapsed)
    return out


def clean_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("RESCALE_", "PYTHON", "SSH_", "_RESCALE_SSH"))}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["LC_ALL"] = "C.UTF-8"
    return env


@contextlib.contextmanager
def fake_platform(latency: float = 0.0, host: str = "127.0.0.1") -> Iterator[Any]:
    sys.path.insert(0, str(ROOT))
    try:
        from tests.fakeplatform import FakePlatform
    finally:
        sys.path.remove(str(ROOT))
    fake = FakePlatform(host=host)
    fake.latency = latency
    try:
        yield fake
    finally:
        fake.close()
    if fake.errors:
        raise BenchError(f"the fake platform failed: {fake.errors}")


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


class Sandbox:
    """A temporary HOME with XDG folders, an ssh config path and the settings as environment."""

    def __init__(self, ctx: Ctx, name: str, *, platform: Any = None,
                 identity: Path | None = None, base: Path | None = None) -> None:
        self.ctx = ctx
        self.dir = (base or ctx.root) / name
        # Under ``base`` (item 2), the folder itself is HOME: paths as long as a user's.
        self.home = self.dir if base is not None else self.dir / "home"
        (self.home / ".ssh").mkdir(mode=0o700, parents=True)
        self.config = self.home / ".ssh" / "config"
        self.state = self.home / ".local" / "state" / "rescale-ssh"
        self.env = clean_env()
        self.env.update(
            HOME=str(self.home),
            XDG_CONFIG_HOME=str(self.home / ".config"),
            XDG_CACHE_HOME=str(self.home / ".cache"),
            XDG_STATE_HOME=str(self.home / ".local" / "state"),
            XDG_DATA_HOME=str(self.home / ".local" / "share"),
            RESCALE_SSH_CONFIG=str(self.config),
        )
        if platform is not None:
            self.env.update(RESCALE_API_URL=platform.base_url, RESCALE_API_KEY=platform.api_key)
        if identity is not None:
            self.env["RESCALE_SSH_IDENTITY"] = str(identity)

    def cli(self, *args: str, expect: int | None = 0, input: str | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return run([self.ctx.cli, *args], {**self.env, **(env or {})}, expect=expect,
                   input=input)

    def ssh_g(self, host: str, config: Path | None = None) -> dict[str, list[str]]:
        proc = run([self.ctx.ssh, "-G", "-F", str(config or self.config), host], self.env)
        options: dict[str, list[str]] = {}
        for line in proc.stdout.splitlines():
            key, _, value = line.partition(" ")
            options.setdefault(key, []).append(value)
        return options

    def install(self, user_config: str) -> bytes:
        """Write the user's config, install the hook; returns the config as it was before."""
        self.config.write_text(user_config)
        before = self.config.read_bytes()
        self.cli("install", "--yes")
        return before

    def hook_conf(self) -> dict[str, str]:
        record = {}
        for line in (self.state / "hook.conf").read_text().splitlines():
            key, _, value = line.partition("=")
            record[key] = value
        return record

    def clear_cache(self) -> None:
        """Forget every resolved job: the hook's next run takes the cold path."""
        folder = self.state / "jobs"
        if folder.is_dir():
            for item in folder.iterdir():
                item.unlink()
        for name in ("hosts.conf", "fresh.conf"):
            (self.state / name).unlink(missing_ok=True)
        shutil.rmtree(self.state / "live", ignore_errors=True)  # the markers went with them

    def wait_for_sweeper(self, limit: float = 200.0) -> float:
        """Wait until the hook's sweeper deleted fresh.conf (a minute after the last hook run);
        returns the seconds waited."""
        start = time.monotonic()
        while (self.state / "fresh.conf").exists():
            if time.monotonic() - start > limit:
                raise BenchError(f"{self.state}/fresh.conf still there after {limit:.0f} s")
            time.sleep(0.5)
        return time.monotonic() - start


def hook_argv(config: Path, alias: str) -> list[str]:
    """The hook's own command, as the script that the ``Match ... exec`` line of the file the
    config includes (<state>/ssh.conf) would start it for ``alias`` (the script tests the job's
    marker first)."""
    for line in included_lines(config):
        if line.startswith("Match ") and ' exec "' in line and "--broken" not in line:
            script = shlex.split(line.split(' exec "', 1)[1].rsplit('"', 1)[0])[0]
            text = Path(script).read_text()
            words = shlex.split(text.splitlines()[-1])[1:]
            state = re.search(r"^state='([^']*)'$", text, re.MULTILINE)
            found = state.group(1) if state else ""
            return [alias if word == "$1" else found if word == "$state" else word
                    for word in words]
    raise BenchError(f"no Match exec line in what {config} includes")


def included_lines(config: Path) -> list[str]:
    """The lines of the files the config's top-level Include lines name (ours: ssh.conf)."""
    lines: list[str] = []
    for line in config.read_text().splitlines():
        if line.startswith("Include "):
            path = Path(shlex.split(line)[1])
            if path.exists():
                lines += path.read_text().splitlines()
    return lines


# -- 1. hook, warm cache -----------------------------------------------------------------------


def bench_hook_warm(ctx: Ctx) -> ItemResult:
    result = ItemResult("hook-warm", "Hook, warm cache")
    with fake_platform() as platform:
        platform.add_job(JOB, host="203.0.113.7", port=22)
        sb = Sandbox(ctx, "hook-warm", platform=platform)
        sb.install(USER_CONFIG)
        python = sb.hook_conf()["python"]
        cold = sb.ssh_g(ALIAS)  # the cold path runs once here: the cache is warm afterwards
        if cold.get("hostname") != ["203.0.113.7"] or "proxycommand" not in cold:
            raise BenchError(f"ssh -G {ALIAS} did not show the job's block: {cold}")
        hook = hook_argv(sb.config, ALIAS)
        # The same after CACHED_JOBS other jobs were reached through the hook (see item 2).
        crowded = Sandbox(ctx, "hook-warm-cached", platform=platform)
        crowded.install(USER_CONFIG)
        run([ctx.python, "-c", PUBLISH_BLOCKS, str(crowded.state), str(CACHED_JOBS)],
            crowded.env)
        crowded.wait_for_sweeper()  # "earlier": more than a minute ago
        if crowded.ssh_g(ALIAS).get("hostname") != ["203.0.113.7"]:
            raise BenchError(f"ssh -G {ALIAS} did not show the job's block")
        requests_before = platform.count()
        reps = ctx.reps(120, 30)

        def unmarked(box: Sandbox) -> Callable[[], object]:
            """Before a run: no marker, as a minute after the last hook run (the hook runs)."""
            return lambda: shutil.rmtree(box.state / "live", ignore_errors=True)

        samples = interleave({
            "ssh": Cmd([ctx.ssh, "-G", "-F", str(sb.config), ALIAS], sb.env,
                       prepare=unmarked(sb)),
            "ssh_marked": Cmd([ctx.ssh, "-G", "-F", str(sb.config), ALIAS], sb.env),
            "ssh_cached": Cmd([ctx.ssh, "-G", "-F", str(crowded.config), ALIAS], crowded.env,
                              prepare=unmarked(crowded)),
            "hook": Cmd(hook, sb.env),
            "python": Cmd([python, "-c", "pass"], sb.env),
            "python_IS": Cmd([python, "-I", "-S", "-c", "pass"], sb.env),
        }, reps)
        requests = platform.count() - requests_before
        rss = {name: peak_rss(argv, sb.env, 5) for name, argv in (
            ("hook", hook), ("python", [python, "-c", "pass"]))}
    ssh_t, hook_t, py_t = samples["ssh"].times, samples["hook"].times, samples["python"].times
    r = ratio(ssh_t, py_t)
    r_cached = ratio(samples["ssh_cached"].times, py_t)
    base = f"`python3 -c pass` {fmt_time(py_t)}"
    result.rows += [
        Row("1", f"`ssh -G {ALIAS}`, warm cache (the hook runs)", fmt_time(ssh_t), base,
            fmt_ratio(r), "≤ 2.5×", verdict(r <= 2.5 and requests == 0)),
        Row("1", "the same within a minute of the last hook run (its marker: no Python)",
            fmt_time(samples["ssh_marked"].times), base,
            fmt_ratio(ratio(samples["ssh_marked"].times, py_t)), "≤ 2.5×",
            verdict(ratio(samples["ssh_marked"].times, py_t) <= 2.5)),
        Row("1", f"the same with {CACHED_JOBS} other jobs reached through the hook earlier",
            fmt_time(samples["ssh_cached"].times), base, fmt_ratio(r_cached), "≤ 2.5×",
            verdict(r_cached <= 2.5)),
        Row("1", "hook command alone (the Match exec line)", fmt_time(hook_t), base,
            fmt_ratio(ratio(hook_t, py_t))),
        Row("1", "`python3 -I -S -c pass` (the hook's interpreter flags)",
            fmt_time(samples["python_IS"].times), base,
            fmt_ratio(ratio(samples["python_IS"].times, py_t))),
        rss_row(rss["hook"], rss["python"]),
        Row("1", "API requests while timing (warm path)", str(requests), "0", budget="0",
            verdict=verdict(requests == 0)),
    ]
    result.notes.append(f"Hook command timed alone: `{shlex.join(hook)}`; interpreter from "
                        f"hook.conf: `{python}`; {reps} interleaved repeats.")
    result.raw = {"repeats": reps, "requests_while_timing": requests, "hook_argv": hook,
                  "max_rss_kib": rss,
                  **{name: asdict(s) for name, s in samples.items()}}
    return result


def rss_row(hook: list[int] | None, python: list[int] | None) -> Row:
    if hook is None or python is None:
        return Row("1", "hook peak memory (max RSS)", "n/a: no /usr/bin/time")
    return Row("1", "hook peak memory (max RSS, GNU time)",
               f"{statistics.median(hook) / 1024:.1f} MiB",
               f"`python3 -c pass` {statistics.median(python) / 1024:.1f} MiB",
               fmt_ratio(statistics.median(hook) / statistics.median(python)))


# -- 2. hook, unrelated host -------------------------------------------------------------------


SHADOWING_CONFIG = USER_CONFIG + "    User everyone\n"  # sets User for every host


def instructions(argv: list[str], env: dict[str, str]) -> int | None:
    """Instructions the program executes (valgrind's lackey): exact, unlike a wall time."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    proc = subprocess.run([valgrind, "--tool=lackey", "--basic-counts=yes", *argv], env=env,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    found = re.search(r"guest instrs:\s+([\d,]+)", proc.stderr)
    return int(found.group(1).replace(",", "")) if found else None


def short_root(ctx: Ctx) -> Path:
    """A temporary folder with a short name, so that the sandboxes' state folders are as long
    as a user's (``/home/alice/.local/state/rescale-ssh``, 37 characters): ssh's work on the
    hook's lines grows with the length of the paths in them (percent-expanding the exec
    command: about 350 instructions a character, measured with valgrind)."""
    folder = Path(tempfile.mkdtemp(prefix="rsb"))
    ctx.cleanup.append(folder)
    return folder


def bench_hook_unrelated(ctx: Ctx) -> ItemResult:
    result = ItemResult("hook-unrelated", "Hook, unrelated host")
    short = short_root(ctx)
    sb = Sandbox(ctx, "a", base=short)
    before = sb.install(USER_CONFIG)
    plain = sb.dir / "config.without-hook"
    plain.write_bytes(before)  # what `uninstall` restores: the config without any of our lines
    twin = sb.dir / "config.without-hook.copy"  # the A/A control: the same bytes, another file
    twin.write_bytes(before)
    # CACHED_JOBS jobs reached through the hook, in a plain config and in one that sets User
    # for every host (before this layout, that one needed the jobs' blocks at the top).
    cached = Sandbox(ctx, "b", base=short)
    cached.install(USER_CONFIG)
    shadow = Sandbox(ctx, "c", base=short)
    shadow_plain = shadow.dir / "config.without-hook"
    shadow_plain.write_bytes(shadow.install(SHADOWING_CONFIG))
    # FEW_JOBS jobs added with `add` and no hook: the section includes the tool's file for
    # their host-key policy; against the same section without that Include (the layout before).
    static = Sandbox(ctx, "d", base=short)
    static.config.write_text(USER_CONFIG)
    for i in range(FEW_JOBS):
        static.cli("add", f"Static{i:02d}", "--from-log",
                   f"Command: ssh -p 2222 uprod_Static{i:02d}@198.51.100.{i + 1}")
    static_old = static.dir / "config.without-include"
    static_old.write_text("".join(line for line in static.config.read_text().splitlines(True)
                                  if not line.startswith("Include ")))
    for box, count in ((cached, CACHED_JOBS), (shadow, CACHED_JOBS)):
        run([ctx.python, "-c", PUBLISH_BLOCKS, str(box.state), str(count)], box.env)
    published = (cached.state / "fresh.conf").read_text().count("# rescale-ssh block job=")
    if published != CACHED_JOBS:
        raise BenchError(f"{published} of {CACHED_JOBS} cached blocks were written")
    if any((box.state / "hosts.conf").exists() for box in (sb, cached, shadow, static)):
        raise BenchError("hosts.conf (an earlier layout's) was written")
    for host in (UNRELATED, "myserver"):
        if not sb.ssh_g(host) == sb.ssh_g(host, plain) == cached.ssh_g(host):
            raise BenchError(f"the hook changed the effective config of {host}")
        if shadow.ssh_g(host) != shadow.ssh_g(host, shadow_plain):
            raise BenchError(f"the hook changed the effective config of {host}")
        if static.ssh_g(host) != sb.ssh_g(host, plain):
            raise BenchError(f"the added jobs changed the effective config of {host}")
    verbose = run([ctx.ssh, "-v", "-G", "-F", str(sb.config), UNRELATED], sb.env).stderr
    hook_ran = "Executing command" in verbose
    reps = ctx.reps(300, 80)

    def ssh_g(box: Sandbox, config: Path | None = None) -> Cmd:
        return Cmd([ctx.ssh, "-G", "-F", str(config or box.config), UNRELATED], box.env)

    # Within a minute of those hook runs, their blocks are still in fresh.conf.
    recent = interleave({"recent": ssh_g(cached), "plain": ssh_g(sb, plain)}, reps // 2)
    waited = max(cached.wait_for_sweeper(), shadow.wait_for_sweeper())
    samples = interleave({
        "hooked": ssh_g(sb),
        "hooked_cached": ssh_g(cached),
        "plain": ssh_g(sb, plain),
        "plain_copy": ssh_g(sb, twin),
        "shadow_cached": ssh_g(shadow),
        "shadow_plain": ssh_g(shadow, shadow_plain),
        "static": ssh_g(static),
        "static_old": ssh_g(static, static_old),
    }, reps)
    stats: dict[str, Any] = {}
    base = samples["plain"].times
    # "Measurable" = told apart from the difference between two identical configs in this run:
    # the Δ's 95 % interval and the A/A control's do not overlap.
    aa_low, aa_high = bootstrap_median_diff(samples["plain_copy"].times, base)

    def compare(name: str, label: str, times: list[float], base: list[float], base_label: str,
                *, budget: str = "no measurable Δ", judged: bool = True) -> None:
        low, high = bootstrap_median_diff(times, base)
        diff = statistics.median(times) - statistics.median(base)
        within = low <= aa_high and aa_low <= high
        stats[name] = {"median_diff_s": diff, "ci95_s": [low, high], "within_noise": within,
                       "contains_zero": low <= 0 <= high}
        result.rows.append(Row(
            "2", label, fmt_time(times), f"{base_label} {fmt_time(base)}",
            fmt_ratio(ratio(times, base)), budget,
            verdict(within and not hook_ran) if judged else "info"))
        result.notes.append(
            f"{label}: Δ median {diff * 1e6:+.0f} µs "
            f"({diff / statistics.median(base) * 100:+.1f} %), 95 % bootstrap CI "
            f"[{low * 1e6:+.0f}, {high * 1e6:+.0f}] µs: "
            + ("within the A/A noise." if within else "measurable."))

    compare("aa_control", "A/A control: the config without the hook, a copy of the same file",
            samples["plain_copy"].times, base, "config without the hook", budget="–",
            judged=False)
    # The budget, read exactly: ssh's own work grows by less than 1 % (instructions executed,
    # counted by valgrind: no noise). Wall times are too noisy on a shared machine to resolve
    # a few tens of µs: they are shown, judged only when valgrind is missing (then
    # "measurable" means told apart from the A/A control).
    counts = {name: instructions([ctx.ssh, "-G", "-F", str(config), UNRELATED], box.env)
              for name, box, config in (("plain", sb, plain), ("hooked", sb, sb.config),
                                        ("hooked_cached", cached, cached.config),
                                        ("shadow_plain", shadow, shadow_plain),
                                        ("shadow_cached", shadow, shadow.config),
                                        ("static", static, static.config),
                                        ("static_old", static, static_old))}
    exact = {name: count for name, count in counts.items() if count is not None}
    by_wall = len(exact) < len(counts)
    compare("hooked", f"`ssh -G {UNRELATED}`, hook installed", samples["hooked"].times, base,
            "config without the hook", judged=by_wall)
    compare("hooked_cached", f"the same, {CACHED_JOBS} jobs reached through the hook more "
            "than a minute earlier", samples["hooked_cached"].times, base,
            "config without the hook", judged=by_wall)
    compare("recent", f"the same, within a minute of reaching those {CACHED_JOBS} jobs "
            "(their blocks are still in fresh.conf)", recent["recent"].times,
            recent["plain"].times, "config without the hook", budget="–", judged=False)
    compare("shadow_cached", f"a config that sets User for every host, {CACHED_JOBS} jobs "
            "reached earlier", samples["shadow_cached"].times, samples["shadow_plain"].times,
            "that config without the hook", judged=by_wall)
    compare("static", f"{FEW_JOBS} jobs added, no hook: the section's Include of the tool's "
            "file (host-key policy)", samples["static"].times, samples["static_old"].times,
            "the same section without the Include", judged=by_wall)
    if not by_wall:
        for name, base_name, label, base_label in (
                ("hooked", "plain", "hook installed", "without the hook"),
                ("hooked_cached", "plain", f"{CACHED_JOBS} jobs reached more than a minute "
                                           "earlier", "without the hook"),
                ("shadow_cached", "shadow_plain", f"a config that sets User for every host, "
                                                  f"{CACHED_JOBS} jobs", "without the hook"),
                ("static", "static_old", f"{FEW_JOBS} jobs added: the Include of ssh.conf",
                 "without the Include")):
            extra = exact[name] - exact[base_name]
            share = extra / exact[base_name]
            result.rows.append(Row(
                "2", f"instructions ssh executes for `ssh -G {UNRELATED}`: {label} "
                "(valgrind: exact)", f"{exact[name]:,}", f"{base_label} "
                f"{exact[base_name]:,}", f"+{extra:,} (+{share * 100:.2f} %)",
                "< 1 %", verdict(share < 0.01 and not hook_ran)))
        stats["instructions"] = exact
    result.rows.append(Row("2", "hook run for the unrelated host (`ssh -v`: Executing command)",
                           "yes" if hook_ran else "no", "no", budget="no",
                           verdict=verdict(not hook_ran)))
    result.notes.append(
        f"State folder {sb.state} ({len(str(sb.state))} characters, as long as a user's). "
        f"Effective config (`ssh -G`) identical with and without the hook for `{UNRELATED}` "
        f"and `myserver`; {reps} interleaved repeats ({reps // 2} for the first minute). What "
        "the installed config costs every host: the section's `Include` of the tool's "
        "`ssh.conf` (a `Host rescale-*` line and one `Match` line, whose `originalhost` "
        "fails, so the hook never runs) and, inside it, one `Include` of a file that exists "
        "only for a "
        f"minute after a hook run (the sweeper deleted it {waited:.0f} s into this item). "
        "Most of the instructions are the `exec` criterion, which OpenSSH 9.2 prepares (token "
        "expansion) even when `originalhost` has already failed. OpenSSH reads an Include's "
        "files even inside a block that does not match (readconf.c passes SSHCONF_NEVERMATCH "
        "down), which is why fresh.conf is deleted a minute after the last hook run. The Match "
        "sits at the top of the user's config now, so a config that sets User for every host "
        "needs nothing more (the jobs' blocks win from the first connection): it costs the same "
        "as any other.")
    result.raw = {"repeats": reps, "cached_jobs": CACHED_JOBS, "hook_ran": hook_ran,
                  "waited_for_sweeper_s": waited, "stats": stats,
                  "recent": {name: asdict(s) for name, s in recent.items()},
                  **{name: asdict(s) for name, s in samples.items()}}
    return result


# -- 3. cold resolution ------------------------------------------------------------------------


def bench_cold(ctx: Ctx) -> ItemResult:
    result = ItemResult("cold", "Cold resolution")
    latency = ctx.latency
    reps = ctx.reps(7, 3)
    with fake_platform() as platform:
        platform.add_job(JOB, host="203.0.113.7", port=22)
        sb = Sandbox(ctx, "cold", platform=platform)
        sb.install(USER_CONFIG)
        plain = Sandbox(ctx, "cold-add", platform=platform)
        platform.latency = latency
        line = platform.jobs[JOB].ready_line()

        hook_times: list[float] = []
        hook_requests: list[int] = []
        add_times: list[float] = []
        add_requests: list[int] = []
        paths: dict[str, list[str]] = {}
        for _ in range(reps):
            sb.clear_cache()
            start = platform.count()
            elapsed, proc = timed([ctx.ssh, "-G", "-F", str(sb.config), ALIAS], sb.env)
            if "hostname 203.0.113.7" not in proc.stdout.splitlines():
                raise BenchError(f"the cold hook did not resolve {ALIAS}:\n{proc.stderr}")
            hook_times.append(elapsed)
            hook_requests.append(platform.count() - start)
            paths["hook"] = [r.path for r in platform.requests[start:]]

            restore(plain.config, b"")
            start = platform.count()
            elapsed, proc = timed([ctx.cli, "add", JOB], plain.env)
            add_times.append(elapsed)
            add_requests.append(platform.count() - start)
            paths["add"] = [r.path for r in platform.requests[start:]]

        # Floors measured in the same run: the same work without the network.
        def reset_plain() -> None:
            restore(plain.config, b"")

        floors = interleave({
            "warm_hook": Cmd([ctx.ssh, "-G", "-F", str(sb.config), ALIAS], sb.env),
            "add_from_log": Cmd([ctx.cli, "add", JOB, "--from-log", line], plain.env,
                                prepare=reset_plain),
        }, ctx.reps(15, 5))
    # `add` also asks the job detail, once a job (its cluster's launch key, to warn when it is
    # not the user's: issue 15 item 2; remembered after): 3 the first time. The hook: 2.
    for label, times, counts, floor_name, floor_label, most in (
        ("`ssh -G` (hook), empty cache", hook_times, hook_requests, "warm_hook", "warm `ssh -G`",
         2),
        (f"`add {JOB}`", add_times, add_requests, "add_from_log", "`add --from-log`", 3),
    ):
        worst = max(counts)
        floor_t = floors[floor_name].times
        ideal = statistics.median(floor_t) + worst * latency
        result.rows += [
            Row("3", f"{label}: API requests", f"{worst}" + (
                f" (runs: {sorted(set(counts))})" if len(set(counts)) > 1 else ""),
                budget=f"≤ {most}", verdict=verdict(worst <= most)),
            Row("3", f"{label}: wall time at {latency * 1000:.0f} ms/request", fmt_time(times),
                f"{floor_label} + {worst} × latency = {fmt_seconds(ideal)}",
                fmt_ratio(statistics.median(times) / ideal)),
        ]
    result.notes.append(
        f"Requests of one cold `ssh -G`: {', '.join(paths['hook'])}. Of `add`: "
        f"{', '.join(paths['add'])}. The baseline is the same command without the network "
        f"(measured in this run) plus the requests' latency: the ratio shows the cost of the "
        f"cold path beyond waiting for the platform. {reps} repeats.")
    result.raw = {"latency_s": latency, "repeats": reps, "hook_times": hook_times,
                  "hook_requests": hook_requests, "add_times": add_times,
                  "add_requests": add_requests, "request_paths": paths,
                  **{name: asdict(s) for name, s in floors.items()}}
    return result


# -- 4. sync at scale --------------------------------------------------------------------------

SYNC_SIZES = (10, 100, 1000)
SYNC_TIMEOUT = 300.0
FAKE_MAX_PAGE = 100  # FakePlatform.max_page_size
HISTORY = 5000  # jobs in the history of the user of the 5,000-job rows
LIVE = 10  # of which live: 8 running, 1 queued, 1 completed with its cluster still up
LOOK_BACK_PAGES = 1  # joblist.LOOK_BACK: one page of the newest completed jobs
# sync.KEY_CHECKS: the job details (launch keys) one `sync` asks at most, for jobs it adds whose
# key is not known from before (issue 15 item 2): a first sync of N jobs costs min(N, 20) more.
KEY_CHECKS = 20


def request_kinds(requests: list[Any]) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for req in requests:
        kind = re.sub(r"/jobs/[^/]+/", "/jobs/JOB/", req.path)
        if req.query.get("state"):
            kind += f"?state={req.query['state']}"
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def fmt_kinds(kinds: dict[str, int]) -> str:
    return ", ".join(f"{count} × `{kind}`" for kind, count in kinds.items())


def bench_sync(ctx: Ctx) -> ItemResult:
    """`sync` of N running jobs: at most (pages of live jobs) + 1 + N requests (design.md, and
    issue 13's one page of recent completed jobs); then a user with 5,000 jobs in history."""
    result = ItemResult("sync", "`sync` at scale")
    probe = Sandbox(ctx, "sync-probe").cli("sync", "--help", expect=None)
    sizes = SYNC_SIZES[:2] if ctx.quick else SYNC_SIZES
    if probe.returncode != 0:
        said = (probe.stderr.strip().splitlines() or ["(nothing)"])[-1]
        for n in sizes:
            result.rows.append(Row("4", f"`sync` of {n} running jobs", "–", budget=(
                "≤ pages + 1 + N requests"), verdict="not implemented yet"))
        result.notes.append(f"`rescale-ssh sync --help` exits {probe.returncode}: {said}")
        result.raw = {"implemented": False, "probe_exit": probe.returncode}
        return result
    result.raw = {"implemented": True, "runs": {}}
    for n in sizes:
        with fake_platform() as platform:
            for i in range(n):
                platform.add_job(f"Sync{i:05d}", host=f"10.0.{i // 256}.{i % 256}")
            sb = Sandbox(ctx, f"sync-{n}", platform=platform)
            sb.config.write_text(USER_CONFIG)
            platform.latency = ctx.latency
            start = platform.count()
            command = [ctx.cli, "sync", *(["--yes"] if "--yes" in probe.stdout else [])]
            elapsed, _ = timed(command, sb.env, timeout=SYNC_TIMEOUT)
            requests = platform.count() - start
            kinds = request_kinds(platform.requests[start:])
            listed = len(json.loads(sb.cli("list", "--json").stdout))
            platform.max_page_size = FAKE_MAX_PAGE
            pages = math.ceil(n / FAKE_MAX_PAGE)
        budget = pages + LOOK_BACK_PAGES + n + min(n, KEY_CHECKS)
        serial = budget * ctx.latency
        result.rows.append(Row(
            "4", f"`sync` of {n} running jobs: requests / wall time",
            f"{requests} req, {fmt_seconds(elapsed)} ({listed} hosts listed)",
            f"{budget} req one at a time = {fmt_seconds(serial)}",
            fmt_ratio(elapsed / serial), f"≤ {budget} req, {n} hosts",
            verdict(requests <= budget and listed == n),
        ))
        result.raw["runs"][str(n)] = {"requests": requests, "seconds": elapsed,
                                      "listed": listed, "budget": budget, "by_path": kinds}
        result.notes.append(
            f"{n} jobs: {fmt_kinds(kinds)}; `{shlex.join(command[1:])}` at "
            f"{ctx.args.latency:g} ms per request, effective concurrency "
            f"{serial / elapsed:.1f} (requests × latency / wall time).")
    result.notes.append("Budget (design.md, issue 13): pages of the live jobs "
                        "(`state=not_completed`) + one page of the newest completed jobs + N "
                        f"requests, + min(N, {KEY_CHECKS}) job details (issue 15 item 2: the "
                        "launch keys of the jobs a sync adds, once a job); the fake platform "
                        f"serves at most {FAKE_MAX_PAGE} jobs a "
                        "page. The baseline is the budget's requests made one at a time.")
    bench_history(ctx, result)
    bench_custom(ctx, result)
    return result


def bench_custom(ctx: Ctx, result: ItemResult) -> None:
    """`sync` where the roles do not say which node is the head (every node CUSTOM, as on the
    real platform): the first `sync` also reads each such job's logs (its ready line names the
    head); from then on the head found before (its block) tells it, one request a job."""
    count = 3
    budget = 1 + LOOK_BACK_PAGES + count
    with fake_platform() as platform:
        for i in range(count):
            platform.add_job(f"Cust{i}", kind="custom", workers=1, host=f"10.2.0.{i + 1}")
        sb = Sandbox(ctx, "custom", platform=platform)
        platform.latency = ctx.latency
        runs: list[int] = []
        kinds: list[dict[str, int]] = []
        for _ in range(1 + ctx.reps(3, 1)):
            start = platform.count()
            run([ctx.cli, "sync", "--yes"], sb.env, timeout=SYNC_TIMEOUT)  # no terminal
            runs.append(platform.count() - start)
            kinds.append(request_kinds(platform.requests[start:]))
    later = max(runs[1:])
    result.rows.append(Row(
        "4", f"`sync` of {count} all-CUSTOM clusters: requests, first run / later runs",
        f"{runs[0]} / {later} req", budget=f"later ≤ {budget} req", verdict=verdict(
            later <= budget)))
    result.notes.append(
        f"All-CUSTOM clusters: the first `sync` {fmt_kinds(kinds[0])} (the logs tell the head, "
        f"once a job); later ones {fmt_kinds(kinds[-1])}.")


def bench_history(ctx: Ctx, result: ItemResult) -> None:
    """`jobs` and `sync` for a user with 5,000 jobs in history and 10 live ones: at most (pages
    of live jobs) + (one page of recent completed jobs) + (one request per live job). The
    baseline, in the same run, interleaved: the same platform ignoring the filter, so every
    page of the history is read (what rescale-ssh did before issue 13, and what it still does,
    with the same answers, on a platform without the filter)."""
    reps = ctx.reps(5, 2)
    running, queued = LIVE - 2, 1
    budget = math.ceil((running + queued) / FAKE_MAX_PAGE) + LOOK_BACK_PAGES + LIVE
    # `sync` (from the user's config alone, each run) adds the 9 ready jobs: their job details
    # (launch keys) the first run, remembered after (issue 15 item 2). `jobs` asks none.
    sync_budget = budget + min(running + 1, KEY_CHECKS)
    with fake_platform() as platform:
        for i in range(HISTORY - LIVE):
            platform.add_job(f"Old{i:05d}", status="Completed", cluster_status="Stopped")
        platform.add_job("UpDone", status="Completed", cluster_status="Started",
                         host="10.1.0.1")  # automatic termination off
        for i in range(running):
            platform.add_job(f"Live{i:02d}", host=f"10.1.1.{i + 1}")
        platform.add_job("Queued1", status="Queued", cluster_status="Not Started")
        sb = Sandbox(ctx, "history", platform=platform)
        platform.latency = ctx.latency
        cold_start = platform.count()
        sb.cli("jobs", "--json")  # fills the users/me cache (a day)
        cold = request_kinds(platform.requests[cold_start:])
        runs: dict[str, dict[str, list[Any]]] = {
            f"{mode}/{command}": {"seconds": [], "requests": [], "answer": []}
            for mode in ("honour", "ignore") for command in ("jobs", "sync")}
        kinds: dict[str, dict[str, int]] = {}
        rng = random.Random(0)
        for _ in range(reps):
            order = list(runs)
            rng.shuffle(order)
            for name in order:
                mode, command = name.split("/")
                platform.list_filter = mode
                restore(sb.config, USER_CONFIG.encode())
                start = platform.count()
                argv = [ctx.cli, "jobs", "--json"] if command == "jobs" else [
                    ctx.cli, "sync", "--yes"]  # no terminal: a sync that drops needs --yes
                elapsed, proc = timed(argv, sb.env, timeout=SYNC_TIMEOUT)
                runs[name]["seconds"].append(elapsed)
                runs[name]["requests"].append(platform.count() - start)
                kinds[name] = request_kinds(platform.requests[start:])
                if command == "jobs":
                    ready = sorted(row["id"] for row in json.loads(proc.stdout)
                                   if row["ssh"] == "ready")
                    runs[name]["answer"].append(ready)
                else:
                    runs[name]["answer"].append(sorted(
                        line.split()[-1].removeprefix("rescale-")
                        for line in proc.stdout.splitlines() if line.startswith("Added")))
    expected = sorted(["UpDone", *(f"Live{i:02d}" for i in range(running))])
    for command in ("jobs", "sync"):
        subject, base = runs[f"honour/{command}"], runs[f"ignore/{command}"]
        worst = max(subject["requests"])
        right = all(answer == expected for answer in subject["answer"] + base["answer"])
        shown = "`jobs --json`" if command == "jobs" else "`sync`"
        most = budget if command == "jobs" else sync_budget
        result.rows.append(Row(
            "4", f"{shown}, {HISTORY:,} jobs in history, {LIVE} live: requests / wall time",
            f"{worst} req, {fmt_time(subject['seconds'])}",
            f"filter ignored (every page): {max(base['requests'])} req, "
            f"{fmt_time(base['seconds'])}",
            fmt_ratio(ratio(subject["seconds"], base["seconds"])),
            f"≤ {most} req, the same {len(expected)} hosts",
            verdict(worst <= most and right),
        ))
    result.notes.append(
        f"{HISTORY:,} jobs in history: {HISTORY - LIVE:,} completed with stopped clusters, then "
        f"{running} running, 1 queued and 1 completed whose cluster is still up (found by the "
        f"look-back). Budget: pages of live jobs ({math.ceil((running + queued) / FAKE_MAX_PAGE)})"
        f" + {LOOK_BACK_PAGES} page of recent completed jobs + one request per live job "
        f"({LIVE}) = {budget}; `sync` + {sync_budget - budget} job details (the launch keys "
        f"of the jobs it adds, once a job) = {sync_budget}. Requests: `jobs` "
        f"{fmt_kinds(kinds['honour/jobs'])}; `sync` "
        f"{fmt_kinds(kinds['honour/sync'])}; with the filter ignored, `sync` "
        f"{fmt_kinds(kinds['ignore/sync'])}. The first `jobs` of the day also asks "
        f"`users/me` (then cached a day): {fmt_kinds(cold)}. {reps} interleaved repeats at "
        f"{ctx.args.latency:g} ms per request; both modes gave the same hosts: "
        f"{', '.join(expected)}.")
    result.raw["history"] = {"budget": budget, "cold_jobs": cold, "by_path": kinds,
                             "runs": {name: {k: v for k, v in run.items() if k != "answer"}
                                      for name, run in runs.items()}}


# -- 5. config editing at scale ----------------------------------------------------------------


def user_lines(count: int) -> bytes:
    """``count`` lines of a user's own config: globals, Host blocks, comments, a Match."""
    lines = ["# My own hosts (generated for the benchmark).", "ServerAliveInterval 60", ""]
    i = 0
    while len(lines) < count:
        lines += [
            f"# host {i}",
            f"Host dev{i} dev{i}.example.com",
            f"\tHostName 192.0.{i // 256 % 256}.{i % 256}",
            "\tUser alice",
            f"\tPort {2200 + i % 100}",
            "\tIdentityFile ~/.ssh/id_dev",
            "",
        ]
        if i % 50 == 0:
            lines += [f"Match originalhost lab{i}-* exec \"test -e /tmp/lab{i}\"",
                      "    ForwardAgent no", ""]
        i += 1
    return ("\n".join(lines[:count]) + "\n").encode()


def restore(path: Path, data: bytes) -> None:
    """Put a config back as a user's would be: written, and its time set 10 s back. A file
    another program changed less than half a second before is watched for a tenth of a second
    first (configfile.settled: it may be half-saved); a user's config was saved earlier."""
    path.write_bytes(data)
    past = time.time() - 10
    os.utime(path, (past, past))


def bench_edit(ctx: Ctx) -> ItemResult:
    result = ItemResult("edit", "Config editing at scale")
    sb = Sandbox(ctx, "edit")
    identity = sb.home / ".ssh" / "rescale_ed25519"
    identity.write_text("not a key: `add` only checks that it exists\n")
    identity.chmod(0o600)
    hosts, users = 1000, 5000
    section = run([ctx.python, "-c", RENDER_SECTION, str(hosts)], sb.env).stdout.encode()
    tail = user_lines(users)
    big = section + tail
    big_path = sb.home / ".ssh" / "config.big"
    empty_path = sb.home / ".ssh" / "config.empty"
    big_env = {**sb.env, "RESCALE_SSH_CONFIG": str(big_path)}
    empty_env = {**sb.env, "RESCALE_SSH_CONFIG": str(empty_path)}
    big_path.write_bytes(big)
    listed = json.loads(run([ctx.cli, "list", "--json"], big_env).stdout)
    if len(listed) != hosts:
        raise BenchError(f"`list` read {len(listed)} of the {hosts} generated hosts")

    new_job = "Newjob1"
    line = ("Instance ready for ssh access. Command: ssh -i </path/to/key> -p 2222 "
            f"uprod_{new_job}@198.51.100.9; working directory: /enc/uprod_{new_job}/work")
    argv = [ctx.cli, "add", new_job, "--from-log", line]
    # The result must be the generated section plus one block, the user's lines untouched.
    run(argv, big_env)
    after = big_path.read_bytes()
    if not after.endswith(tail) or len(json.loads(run([ctx.cli, "list", "--json"],
                                                        big_env).stdout)) != hosts + 1:
        raise BenchError("`add` into the big config did not keep the other hosts and lines")
    run(argv, empty_env)
    one = empty_path.read_bytes()
    block = one[one.index(b"Host rescale-"):one.index(b"# Jobs") if b"# Jobs" in one else None]
    if block.split(b"\nHost *")[0] not in after:
        raise BenchError("the block added to the big config differs from the one added alone")

    reps = ctx.reps(15, 5)
    samples = interleave({
        "big": Cmd(argv, big_env, prepare=lambda: restore(big_path, big)),
        "empty": Cmd(argv, empty_env, prepare=lambda: restore(empty_path, b"")),
    }, reps, warmup=1)
    big_t, empty_t = samples["big"].times, samples["empty"].times
    r = ratio(big_t, empty_t)
    result.rows.append(Row(
        "5", f"`add --from-log` into {hosts} managed hosts + {users} user lines "
        f"({len(big) // 1000} kB)", fmt_time(big_t), f"into an empty config {fmt_time(empty_t)}",
        fmt_ratio(r), "≤ 2×", verdict(r <= 2)))
    result.notes.append(f"The big config is the section rendered by `rescale_ssh.sshconfig.section."
                        f"Section(...).render()` for {hosts} jobs, followed by {users} user "
                        f"lines; restored before every run (with its time set back, as a "
                        f"file saved a while ago: see `restore`). {reps} interleaved repeats.")
    if r > 2 or ctx.args.profile:
        result.notes.append("Profile of one `add` into the big config, by own time "
                            "(cProfile slows it about 3×): "
                            + profile_cli(ctx, argv[1:], big_env,
                                          prepare=lambda: restore(big_path, big)))
    result.raw = {"repeats": reps, "config_bytes": len(big),
                  **{name: asdict(s) for name, s in samples.items()}}
    return result


def profile_cli(ctx: Ctx, args: list[str], env: dict[str, str], *,
                prepare: Callable[[], object] | None = None, top: int = 12) -> str:
    """The top functions by own time of one CLI run (cProfile), as a code block."""
    if prepare is not None:
        prepare()
    out = ctx.root / "profile.out"
    run([ctx.python, "-m", "cProfile", "-o", str(out), ctx.cli, *args], env)
    script = ("import pstats, sys; s = pstats.Stats(sys.argv[1]); s.sort_stats('tottime')"
              f".print_stats({top})")
    text = run([ctx.python, "-c", script, str(out)], env).stdout
    total = next((line.strip() for line in text.splitlines() if "function calls" in line), "")
    body = text[text.index("ncalls"):] if "ncalls" in text else text
    prefixes = [str(ROOT) + "/", *(sysconfig.get_paths()[key] + "/"  # ctx.python is this one
                                   for key in ("purelib", "stdlib"))]
    lines = []
    for line in body.splitlines():
        if line.strip():
            for prefix in prefixes:
                line = line.replace(prefix, "")
            lines.append(line.rstrip())
    return f"{total}\n```\n" + "\n".join(lines) + "\n```"


# -- 6. data path ------------------------------------------------------------------------------


def write_payload(path: Path, size: int) -> None:
    chunk = 1 << 20
    with open(path, "wb") as handle:
        left = size
        while left > 0:
            handle.write(os.urandom(min(chunk, left)))
            left -= chunk


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


def bench_data(ctx: Ctx) -> ItemResult:
    result = ItemResult("data", "Data path")
    size = (50 if ctx.quick else 200) * MB
    reps = ctx.reps(25, 3)
    server = loopback.start_sshd(ctx.root / "sshd")
    try:
        dest_root = ctx.fast_root / "dest"
        dest_root.mkdir(parents=True)
        with fake_platform() as platform:
            platform.add_job(JOB, user=server.user, host=server.host, port=server.port,
                             workdir=str(dest_root))
            sb = Sandbox(ctx, "data", platform=platform, identity=server.client_key)
            sb.install("# nothing of my own\n")
            options = sb.ssh_g(ALIAS)  # resolves the job (cold path) once
            if options.get("proxyusefdpass") != ["yes"] or options.get("port") != [
                    str(server.port)]:
                raise BenchError(f"unexpected effective config for {ALIAS}: {options}")
            via_alias = [ctx.ssh, "-F", str(sb.config), "-o", "BatchMode=yes"]
            direct = [ctx.ssh, "-F", "/dev/null", "-p", str(server.port), "-i",
                      str(server.client_key), "-o", "IdentitiesOnly=yes",
                      "-o", f"UserKnownHostsFile={sb.dir / 'direct_known_hosts'}",
                      "-o", "GlobalKnownHostsFile=/dev/null",
                      "-o", "StrictHostKeyChecking=accept-new", "-o", "BatchMode=yes"]
            targets = {"alias": (via_alias, ALIAS),
                       "direct": (direct, f"{server.user}@{server.host}")}
            for ssh_argv, host in targets.values():  # host keys accepted, caches warm
                run([*ssh_argv, host, "true"], sb.env)

            payload = ctx.fast_root / "payload.bin"
            write_payload(payload, size)
            counter = 0

            def rsync(mode: str) -> tuple[list[str], Path]:
                nonlocal counter
                counter += 1
                ssh_argv, host = targets[mode]
                dest = dest_root / f"{mode}-{counter}"
                return [ctx.rsync, "-a", "-e", shlex.join(ssh_argv), str(payload),
                        f"{host}:{dest}/"], dest

            def transfer(mode: str) -> Callable[[], float]:
                def go() -> float:
                    argv, dest = rsync(mode)
                    elapsed, _ = timed(argv, sb.env, timeout=600)
                    copied = dest / payload.name
                    if copied.stat().st_size != size:
                        raise BenchError(f"{copied} has {copied.stat().st_size} bytes")
                    shutil.rmtree(dest)
                    return elapsed
                return go

            def connect(mode: str) -> Callable[[], float]:
                ssh_argv, host = targets[mode]
                return lambda: spawn([*ssh_argv, host, "true"], sb.env)[0]

            # Each round: both transfers and both bare connections, in a shuffled order.
            jobs = {"alias": transfer("alias"), "direct": transfer("direct"),
                    "direct_again": transfer("direct"),
                    "alias_setup": connect("alias"), "direct_setup": connect("direct")}
            times: dict[str, list[float]] = {name: [] for name in jobs}
            rng = random.Random(6)
            for round_no in range(reps + 1):  # round 0: warm-up
                order = list(jobs)
                rng.shuffle(order)
                for name in order:
                    elapsed = jobs[name]()
                    if round_no:
                        times[name].append(elapsed)
            # The set-up alone, many more times: it is cheap, and it is the only part of the
            # transfer that differs between the routes (nothing of ours in the data path).
            setup_cmds = {mode: Cmd([*targets[mode][0], targets[mode][1], "true"], sb.env)
                          for mode in targets}
            # The first connection a minute after the last hook run: no marker, the hook runs.
            setup_cmds["alias_hook"] = Cmd(setup_cmds["alias"].argv, sb.env, prepare=lambda:
                                           shutil.rmtree(sb.state / "live", ignore_errors=True))
            setup_samples = interleave(setup_cmds, ctx.reps(80, 10))
            argv, dest = rsync("alias")
            watch = watch_processes(argv, sb.env, dest)
            shutil.rmtree(dest, ignore_errors=True)
            payload.unlink()
    finally:
        server.stop()
    throughput = {mode: [size / t / MB for t in times[mode]]
                  for mode in ("alias", "direct", "direct_again")}
    setup = {mode: statistics.median(times[f"{mode}_setup"]) for mode in targets}
    data_only = {mode: [size / (t - setup[mode]) / MB for t in times[mode]] for mode in targets}
    # Per round (the transfers of a round ran back to back): robust against drifting load.
    # "direct_again" is an A/A control: the same direct transfer twice, the noise floor.
    rounds = range(reps)
    paired = {
        "end to end": [times["direct"][i] / times["alias"][i] for i in rounds],
        "set-up excluded": [(times["direct"][i] - setup["direct"])
                            / (times["alias"][i] - setup["alias"]) for i in rounds],
        "A/A control": [times["direct"][i] / times["direct_again"][i] for i in rounds],
    }
    medians = {name: statistics.median(values) for name, values in paired.items()}
    cis = {name: bootstrap_median(values) for name, values in paired.items()}

    def data_verdict(name: str) -> str:
        if medians[name] >= 0.97:
            return "ok"
        return "**MISS**" if cis[name][1] < 0.97 else "inconclusive (noise)"

    def fmt_mbs(values: list[float]) -> str:
        s = summary(values)
        return f"{s['median']:.0f} MB/s [{s['p10']:.0f}–{s['p90']:.0f}]"

    def fmt_paired(name: str) -> str:
        low, high = cis[name]
        return f"{fmt_ratio(medians[name])} (95 % CI {low:.2f}–{high:.2f})"

    # From the parts: the direct transfer plus the extra set-up of the alias (the data path is
    # the same: the process check below finds no python in it, and the set-up-excluded ratio
    # is ~1). Far less noisy than one transfer against another.
    extra_low, extra_high = bootstrap_median_diff(setup_samples["alias"].times,
                                                  setup_samples["direct"].times)
    extra = (statistics.median(setup_samples["alias"].times)
             - statistics.median(setup_samples["direct"].times))
    direct_wall = statistics.median(times["direct"])
    composed = {"median": direct_wall / (direct_wall + extra),
                "low": direct_wall / (direct_wall + extra_high),
                "high": direct_wall / (direct_wall + extra_low)}
    no_python = watch["samples_with_python_while_flowing"] == 0
    result.rows += [
        Row("6", f"rsync {size // MB} MB through `{ALIAS}` (hook, ProxyUseFdpass): throughput "
            "= size / wall", fmt_mbs(throughput["alias"]),
            f"direct `ssh -p PORT` {fmt_mbs(throughput['direct'])}", fmt_paired("end to end"),
            "≥ 0.97×", data_verdict("end to end")),
        Row("6", "the same, connection set-up excluded: size / (wall − median `ssh HOST true`)",
            fmt_mbs(data_only["alias"]), f"direct {fmt_mbs(data_only['direct'])}",
            fmt_paired("set-up excluded"), "≥ 0.97×", data_verdict("set-up excluded")),
        Row("6", f"the same from its parts: median direct rsync wall / (it + the alias's extra "
            f"set-up, {extra * 1e3:+.1f} ms [{extra_low * 1e3:+.1f}, {extra_high * 1e3:+.1f}] "
            f"over {len(setup_samples['alias'].times)} interleaved `ssh HOST true`)",
            f"{fmt_seconds(direct_wall + extra)}", f"direct {fmt_seconds(direct_wall)}",
            f"{fmt_ratio(composed['median'])} (95 % CI {composed['low']:.3f}–"
            f"{composed['high']:.3f})", "≥ 0.97×",
            verdict(composed["low"] >= 0.97 and no_python)),
        Row("6", "connection set-up when the hook runs (the first connection a minute after the "
            "last one; every other row: with its marker, no Python but the proxy)",
            fmt_time(setup_samples["alias_hook"].times),
            f"direct {fmt_time(setup_samples['direct'].times)}",
            fmt_ratio(ratio(setup_samples["alias_hook"].times, setup_samples["direct"].times))),
        Row("6", "A/A control: direct vs the same direct transfer (the noise floor)",
            fmt_mbs(throughput["direct_again"]), f"direct {fmt_mbs(throughput['direct'])}",
            fmt_paired("A/A control")),
        Row("6", "connection set-up: `ssh HOST true`", fmt_time(times["alias_setup"]),
            f"direct {fmt_time(times['direct_setup'])}",
            fmt_ratio(ratio(times["alias_setup"], times["direct_setup"]))),
        Row("6", "python alive while data flows (the proxy must have exited)",
            f"{watch['samples_with_python_while_flowing']} of "
            f"{watch['samples_with_data_flowing']} samples", "0", budget="0",
            verdict=verdict(no_python and watch["samples_with_ssh"] > 0)),
    ]
    last = watch["last_python_s"]
    result.notes.append(
        f"Ratios are paired: the median over rounds of the throughput ratio within a round "
        f"(alias, direct and the A/A control ran back to back in a shuffled order), with a 95 % "
        f"bootstrap interval; a ratio under 0.97 whose interval reaches 0.97 is reported as "
        f"inconclusive. rsync wall times (alias): {fmt_time(times['alias'])}; (direct): "
        f"{fmt_time(times['direct'])}. {reps} rounds after one warm-up round, a fresh "
        f"destination folder each time, payload and destination on {ctx.fast_root.parent}. "
        f"Connection set-up includes the remote account's shell start-up (rsync pays it too) "
        f"and, through the alias, the hook and the proxy. Process check (one extra rsync "
        f"through the alias, its process tree sampled every 10 ms): {watch['samples']} samples "
        f"over {fmt_seconds(watch['duration_s'])}, ssh seen in {watch['samples_with_ssh']}, a "
        f"python process in {watch['samples_with_python']}"
        + (f" (last seen at {fmt_seconds(last)}; data first seen in the destination at "
           f"{fmt_seconds(watch['first_data_s'] or math.nan)})" if last is not None else "")
        + ".")
    result.raw = {"size_bytes": size, "repeats": reps, "times": times,
                  "throughput_MBps": throughput, "throughput_without_setup_MBps": data_only,
                  "paired_ratios": paired, "paired_ci95": cis, "process_watch": watch,
                  "setup_samples": {name: asdict(s) for name, s in setup_samples.items()},
                  "composed_ratio": composed}
    return result


# -- 7. interactive start-up -------------------------------------------------------------------


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


# -- 8. WAN: bench/wan.py ----------------------------------------------------------------------


def bench_wan(ctx: Ctx) -> ItemResult:
    sys.modules.setdefault("run", sys.modules[__name__])  # wan.py imports these helpers as `run`
    sys.path.insert(0, str(BENCH))
    from wan import bench_wan as wan_item

    return wan_item(ctx)


# -- driver ------------------------------------------------------------------------------------

ON_REQUEST = ("wan",)
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


def version_of(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except OSError as exc:
        return f"unavailable ({exc})"
    text = (proc.stdout + proc.stderr).strip().splitlines()
    return text[0].strip() if text else "unknown"


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


def markdown(info: dict[str, str], results: list[ItemResult], ctx: Ctx) -> str:
    mode = "quick" if ctx.quick else "full"
    lines = [f"## rescale-ssh benchmarks ({mode} run, {info['date']})", ""]
    lines += [f"- **{key}**: {value}" for key, value in info.items() if key != "date"]
    lines += [f"- **fake platform latency** (item 3): {ctx.args.latency:g} ms per request", ""]
    lines += ["Times: median [p10–p90] over the repeats; every baseline is measured in the same "
              "run, interleaved with its subject where possible.", "",
              "| # | measure | result | baseline | ratio | budget | verdict |",
              "|---|---|---|---|---|---|---|"]
    for item in results:
        for row in item.rows:
            lines.append(f"| {row.item} | {row.measure} | {row.value} | {row.baseline} | "
                         f"{row.ratio} | {row.budget} | {row.verdict} |")
    for item in results:
        if item.notes:
            lines += ["", f"### {item.rows[0].item if item.rows else '?'}. {item.title}", ""]
            for note in item.notes:
                lines += [note, ""]
            lines.pop()
    return "\n".join(lines) + "\n"


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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="items: " + ", ".join(ITEMS))
    parser.add_argument("--quick", action="store_true", help="fewer repeats, 50 MB data path")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only this item (repeatable, or comma-separated)")
    parser.add_argument("--latency", type=float, default=100.0, metavar="MS",
                        help="fake platform latency per request for cold resolution and sync "
                             "(default: 100)")
    parser.add_argument("--repeats", type=int, default=0, help="override every repeat count")
    parser.add_argument("--rtt", action="append", type=float, default=[], metavar="MS",
                        help="round trip time of the emulated link for the `wan` item "
                             "(repeatable; default: 80 and 150, --quick: 80)")
    parser.add_argument("--rate", type=float, default=100.0, metavar="MBIT",
                        help="rate of the emulated link, Mbit/s each direction (default: 100)")
    link = parser.add_mutually_exclusive_group()
    link.add_argument("--netns", dest="link", action="store_const", const="netns",
                      help="`wan`: a network namespace and tc netem (root; the default when "
                           "it works, else --tun, else the relay)")
    link.add_argument("--tun", dest="link", action="store_const", const="tun",
                      help="`wan`: a network namespace joined by two tun devices and a delaying "
                           "forwarder (bench/tunlink.py; root; the default without netem)")
    link.add_argument("--relay", dest="link", action="store_const", const="relay",
                      help="`wan`: the TCP relay on loopback (bench/relay.py), even as root")
    parser.set_defaults(link="auto")
    parser.add_argument("--platform-ms", type=float, default=0.0, metavar="MS",
                        help="the fake platform's own response time in the `wan` item "
                             "(default: 0)")
    parser.add_argument("--json", type=Path, default=RESULTS_JSON, metavar="FILE",
                        help=f"raw numbers (default: {RESULTS_JSON.relative_to(ROOT)})")
    parser.add_argument("--markdown", type=Path, metavar="FILE",
                        help="also write the markdown report to FILE")
    parser.add_argument("--profile", action="store_true",
                        help="add a cProfile of the big-config `add` even when within budget")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    chosen = [name.strip() for value in args.only for name in value.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in ITEMS]
    if unknown:
        parser.error(f"unknown item(s) {', '.join(unknown)}; choose from {', '.join(ITEMS)}")
    # The WAN item takes minutes of emulated round trips: it runs when named (--only wan).
    args.only = chosen or [name for name in ITEMS if name not in ON_REQUEST]
    return args


def tool(name: str) -> str:
    found = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), None)
    if found is None:
        raise BenchError(f"{name} is not installed")
    return found


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
    results: list[ItemResult] = []
    failed: list[str] = []
    started = time.monotonic()
    info = machine(ctx)
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
    args.json.write_text(json.dumps({
        "machine": info,
        "args": {**vars(args), "json": str(args.json),
                 "markdown": str(args.markdown) if args.markdown else None},
        "seconds": elapsed,
        "items": {r.name: {"title": r.title, "rows": [asdict(row) for row in r.rows],
                           "notes": r.notes, "raw": r.raw} for r in results},
    }, indent=1, default=str) + "\n")
    if ssh_dir_snapshot() != before:
        print("error: the real ~/.ssh changed during the run", file=sys.stderr)
        return 3
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
