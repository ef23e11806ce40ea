"""What item 8 (``wan``) times: routes to the server (direct ssh, the aliases) and the
workloads through them (a connection, the user sequence, a VS Code-like start, a bulk rsync)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests import loopback

from bench.context import Ctx
from bench.errors import BenchError
from bench.process import run, spawn
from bench.scenario import MB

SMALL_FILES = 200
SMALL_FILE_BYTES = 2048
SCP_BYTES = 5 * MB
NO_MUX = ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
VSCODE_COMMANDS = ("uname -a", "true", "echo $HOME", "ls /")


@dataclass
class Route:
    """An ssh command line (config file, options, port) and the host it names."""

    name: str
    ssh: str
    scp: str
    config: Path
    host: str
    env: dict[str, str]
    options: list[str] = field(default_factory=list)
    port: int | None = None

    def ssh_argv(self, *extra: str) -> list[str]:
        port = ["-p", str(self.port)] if self.port else []
        return [self.ssh, "-F", str(self.config), *self.options, *port, *extra]

    def scp_argv(self) -> list[str]:
        port = ["-P", str(self.port)] if self.port else []
        return [self.scp, "-F", str(self.config), *self.options, *port]

    def exit_master(self) -> None:
        """``ssh -O exit``: the next connection starts without a master (if there was one)."""
        subprocess.run(self.ssh_argv("-O", "exit", self.host), env=self.env,
                       capture_output=True, timeout=30, stdin=subprocess.DEVNULL)

    def has_master(self) -> bool:
        return subprocess.run(self.ssh_argv("-O", "check", self.host), env=self.env,
                              capture_output=True, timeout=30,
                              stdin=subprocess.DEVNULL).returncode == 0

    def multiplexed(self) -> bool:
        """Whether ``ssh -G`` says connections share a master (ControlPath and ControlMaster)."""
        proc = run([*self.ssh_argv("-G"), self.host], self.env)
        values = dict(line.partition(" ")[::2] for line in proc.stdout.splitlines())
        return (values.get("controlpath", "none") != "none"
                and values.get("controlmaster", "false") != "false")


def short_dir(ctx: Ctx, prefix: str) -> Path:
    """A folder under /tmp with a short name: a Unix socket's path has at most ~104 bytes."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    ctx.cleanup.append(folder)
    return folder


def check(argv: list[str], env: dict[str, str], timeout: float = 300) -> str:
    return run(argv, env, timeout=timeout).stdout


def connect(route: Route) -> float:
    elapsed, code = spawn(route.ssh_argv(route.host, "true"), route.env)
    if code != 0:
        run(route.ssh_argv(route.host, "true"), route.env)  # raises, with the output
        raise BenchError(f"{shlex.join(route.ssh_argv(route.host, 'true'))} failed when timed")
    return elapsed


@dataclass
class Payloads:
    small: Path  # SMALL_FILES files
    big: Path  # SCP_BYTES
    bulk: Path  # the bulk rsync's file
    remote: Path  # the server's folder for uploads (the same machine: loopback)
    local: Path  # downloads
    counter: int = 0

    def fresh(self, name: str) -> tuple[Path, Path]:
        self.counter += 1
        return self.remote / f"{name}-{self.counter}", self.local / f"{name}-{self.counter}"


def user_sequence(route: Route, data: Payloads) -> float:
    """``ssh true``; rsync 200 small files up; rsync them back; scp 5 MB; ``ssh ls``."""
    remote, local = data.fresh(route.name)
    rsync_e = shlex.join(route.ssh_argv())
    start = time.perf_counter()
    check(route.ssh_argv(route.host, "true"), route.env)
    check(["rsync", "-a", "-e", rsync_e, f"{data.small}/", f"{route.host}:{remote}/"],
          route.env)
    check(["rsync", "-a", "-e", rsync_e, f"{route.host}:{remote}/", f"{local}/"], route.env)
    check([*route.scp_argv(), "-q", str(data.big), f"{route.host}:{remote}/big.bin"], route.env)
    listing = check(route.ssh_argv(route.host, "ls", str(remote)), route.env)
    elapsed = time.perf_counter() - start
    if len(listing.split()) != SMALL_FILES + 1 or len(list(local.iterdir())) != SMALL_FILES:
        raise BenchError(f"the user sequence through {route.name} did not copy every file")
    shutil.rmtree(remote)
    shutil.rmtree(local)
    return elapsed


def vscode_start(route: Route, _data: Payloads) -> float:
    """``ssh -T -D PORT HOST bash`` kept open (a command sent, its answer awaited), then 4
    short ``ssh HOST cmd``: roughly what VS Code Remote-SSH does when it opens a window."""
    start = time.perf_counter()
    argv = route.ssh_argv("-T", "-D", f"127.0.0.1:{loopback.free_port()}", route.host, "bash")
    proc = subprocess.Popen(argv, env=route.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("echo rescale-ssh-bench-ready\n")
        proc.stdin.flush()
        answer = proc.stdout.readline()
        if answer.strip() != "rescale-ssh-bench-ready":
            proc.kill()
            raise BenchError(f"$ {shlex.join(argv)} answered {answer!r}: "
                             f"{proc.communicate(timeout=10)[1][-2000:]}")
        for command in VSCODE_COMMANDS:
            check(route.ssh_argv(route.host, command), route.env)
        elapsed = time.perf_counter() - start
        proc.stdin.close()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    return elapsed


def bulk_rsync(route: Route, data: Payloads) -> float:
    remote, _ = data.fresh(f"bulk-{route.name}")
    argv = ["rsync", "-a", "-e", shlex.join(route.ssh_argv()), str(data.bulk),
            f"{route.host}:{remote}/"]
    start = time.perf_counter()
    check(argv, route.env, timeout=900)
    elapsed = time.perf_counter() - start
    copied = remote / data.bulk.name
    if copied.stat().st_size != data.bulk.stat().st_size:
        raise BenchError(f"{copied} has {copied.stat().st_size} bytes")
    shutil.rmtree(remote)
    return elapsed


@dataclass
class Subject:
    """One measured thing: ``prepare`` (untimed) then ``measure`` (returns seconds)."""

    measure: Callable[[], float]
    prepare: Callable[[], object] | None = None
    times: list[float] = field(default_factory=list)
