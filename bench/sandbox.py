"""Sandboxes: a temporary HOME per subject with the settings as environment, the fake platform
of tests/fakeplatform.py, and what the benchmark reads of an installed hook."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.context import Ctx
from bench.errors import BenchError
from bench.process import clean_env, run
from bench.scenario import ROOT
from bench.tree import Tree


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


class Sandbox:
    """A temporary HOME with XDG folders, an ssh config path and the settings as environment."""

    def __init__(self, ctx: Ctx, name: str, *, platform: Any = None,
                 identity: Path | None = None, base: Path | None = None,
                 tree: Tree | None = None) -> None:
        self.ctx = ctx
        self.tree = tree or ctx.tree  # whose rescale-ssh runs here (and installs the hook)
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
        return run([self.tree.cli, *args], {**self.env, **(env or {})}, expect=expect,
                   input=input)

    def script(self, code: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a script with this sandbox's tree on its path (scenario.PUBLISH_BLOCKS)."""
        return run(self.tree.script(code, *args), self.env)

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


def short_root(ctx: Ctx) -> Path:
    """A temporary folder with a short name, so that the sandboxes' state folders are as long
    as a user's (``/home/alice/.local/state/rescale-ssh``, 37 characters): ssh's work on the
    hook's lines grows with the length of the paths in them (percent-expanding the exec
    command: about 350 instructions a character, measured with valgrind)."""
    folder = Path(tempfile.mkdtemp(prefix="rsb"))
    ctx.cleanup.append(folder)
    return folder


def restore(path: Path, data: bytes) -> None:
    """Put a config back as a user's would be: written, and its time set 10 s back. A file
    another program changed less than half a second before is watched for a tenth of a second
    first (configfile.settled: it may be half-saved); a user's config was saved earlier."""
    path.write_bytes(data)
    past = time.time() - 10
    os.utime(path, (past, past))


def write_payload(path: Path, size: int) -> None:
    chunk = 1 << 20
    with open(path, "wb") as handle:
        left = size
        while left > 0:
            handle.write(os.urandom(min(chunk, left)))
            left -= chunk
