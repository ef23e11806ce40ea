"""Hostile input through every entry point (issue 7): nothing reaches a config, nothing runs.

Every value that could end up in an ssh config - from the platform (instances, logs, the job
list), a pasted log line, the command line, the environment, the Rescale CLI's profile file, and
the hook's own files on disk - is fed newlines, carriage returns, NUL, quotes, %-tokens, ${...},
leading dashes, spaces, look-alike letters, line separators and over-long strings, most of them
carrying a command that creates a canary file if ssh ever runs it. Each must fail with one line
naming the field (and a hint) and a documented exit code, leave the config byte-for-byte as it
was, and create no canary.

The large matrices call the real entry point in this process (hundreds of runs a second); each
entry point is also run as the installed program, and under the real ssh wherever ssh is the
caller. ssh never connects beyond 127.0.0.1 here: every address in these tests is a closed
loopback port, and real ssh runs get ``-o HostName=127.0.0.1`` as well.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rescale_ssh import entry, paths
from rescale_ssh.errors import ExitCode, InvalidValueError
from rescale_ssh.hook import hookconf, jobcache, matcher
from rescale_ssh.hook.jobcache import OK, Entry
from rescale_ssh.sshconfig.hostblock import HostEntry
from rescale_ssh.sshconfig.section import Section
from rescale_ssh.target import Target
from tests.fakeplatform import FakePlatform
from tests.helpers import Cli, Result, require, ssh_config_of
from tests.sshd import free_port

USER_CONFIG = b"# my own hosts\nHost mine\n    HostName 192.0.2.10\n    User me\n"
Figures = Callable[[str, int], None]


def payloads(canary: Path) -> dict[str, str]:
    """Suffixes that try to end the value and start an ssh_config line, an option or a
    shell command; each that could run something would create ``canary``."""
    touch = f"touch {canary}"
    return {
        "newline": f"\nProxyCommand {touch}",
        "carriage return": f"\rProxyCommand {touch}",
        "crlf local command": f"\r\nPermitLocalCommand yes\r\nLocalCommand {touch}",
        "match exec": f'\nMatch exec "{touch}"',
        "include": "\nInclude /etc/passwd",
        "nul": "\x00",
        "line separator": f"\u2028ProxyCommand {touch}",
        "paragraph separator": "\u2029",
        "next line": f"\x85ProxyCommand {touch}",
        "vertical tab": "\x0b",
        "double quote": f'" ProxyCommand "{touch}',
        "single quote": "'",
        "percent tokens": "%h%n%d",
        "environment": "${HOME}",
        "option": f" -oProxyCommand={touch}",
        "tab option": f"\t-oLocalCommand={touch}",
        "semicolon": f";{touch}",
        "command substitution": f"$({touch})",
        "backticks": f"`{touch}`",
        "escape sequence": "\x1b]0;owned\x07",
        "zero width": "\u200b",
        "backslash": "\\",
        "hash": "#",
    }


def hostile(base: str, canary: Path, *, alone: tuple[str, ...] = ()) -> dict[str, str]:
    """``base`` with each payload appended, plus values that are hostile on their own."""
    values = {name: base + suffix for name, suffix in payloads(canary).items()}
    values.update({
        "leading dash": f"-oProxyCommand=touch {canary}",
        "space": f"{base} {base}",
        "cyrillic look-alike": base.replace("a", "\u0430").replace("e", "\u0435")
        .replace("o", "\u043e").replace("1", "\uff11"),
        "fullwidth digits": "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in base),
        "over-long": base + "a" * 5000,
    })
    values.update({f"alone {i}": value for i, value in enumerate(alone)})
    # A look-alike that changed nothing (a base with no such letter) is not hostile.
    return {name: value for name, value in values.items() if value != base}


# -- running the program ----------------------------------------------------------------------


def run_here(*args: str, stdin: str = "") -> Result:
    """The real entry point, in this process (for the large matrices)."""
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = entry.main(list(args))
    finally:
        sys.stdin = saved
    return Result(["rescale-ssh", *args], code, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def environment(**values: str | None) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    try:
        set_environment(values)
        yield
    finally:
        set_environment(saved)


def set_environment(values: dict[str, str | None]) -> None:
    """Set each variable; None unsets it."""
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def ssh(config: Path, alias: str, *command: str, closed: int,
        get: bool = False) -> subprocess.CompletedProcess[str]:
    """The real ssh, its Port forced to a closed loopback port. HostName is not forced: a
    HostName from the command line would keep the hook from running (its Match asks that no
    HostName is set yet); every address the fake platform serves is 127.0.0.1 or refused, and
    a name that got through would find no DNS here (a ProxyCommand would run: the canary)."""
    options = ["-o", f"Port={closed}", "-o", "BatchMode=yes", "-o", "ConnectTimeout=3"]
    args = [require("ssh"), "-F", str(config), *options, *(["-G"] if get else []), alias,
            *command]
    return subprocess.run(args, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


@dataclass
class World:
    """A config with the user's lines, one added job and the hook; a platform; a canary."""

    config: Path
    state: Path
    canary: Path
    closed: int
    platform: FakePlatform
    figures: Figures

    def before(self) -> bytes:
        return self.config.read_bytes()

    def refused(self, result: Result, before: bytes, *, fields: tuple[str, ...],
                codes: tuple[int, ...], family: str) -> None:
        """One line naming the field, a hint, a documented code; nothing changed, nothing ran."""
        lines = result.stderr.splitlines()
        shown = str(result)
        assert result.returncode in codes, shown
        assert "Traceback" not in result.stderr, shown
        assert lines and lines[0].startswith("rescale-ssh: error: "), shown
        assert any(field in lines[0] for field in fields), shown
        assert all(line.startswith("hint: ") for line in lines[1:]) and len(lines) <= 2, shown
        assert result.stdout == "", shown
        assert self.config.read_bytes() == before, shown
        assert not self.canary.exists(), shown
        self.figures("hostile inputs refused", 1)
        self.figures(f"hostile inputs refused: {family}", 1)

    def nothing_ran(self, *aliases: str) -> None:
        """ssh -G for the aliases (it runs Match exec, so the hook too): no canary."""
        for alias in aliases:
            ssh(self.config, alias, closed=self.closed, get=True)
        assert not self.canary.exists()


@pytest.fixture
def world(cli: Cli, ssh_config: Path, platform: FakePlatform, isolated_home: Path,
          tmp_path: Path, figures: Figures, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.chdir(tmp_path)  # a relative path that slipped through lands here, not in the repo
    monkeypatch.setenv("RESCALE_SSH_TIMEOUT", "3")  # a value that slipped through fails fast
    ssh_config.parent.mkdir(mode=0o700)
    ssh_config.write_bytes(USER_CONFIG)
    closed = free_port()
    cli("add", "Static1", "--from-log", f"Command: ssh -p {closed} u_Static1@127.0.0.1")
    cli("install", "--yes", "--timeout", "5")
    return World(ssh_config, isolated_home / ".local" / "state" / "rescale-ssh",
                 tmp_path / "CANARY", closed, platform, figures)


def head(world: World, job: str, **fields: object) -> dict[str, object]:
    node: dict[str, object] = {"role": "MPI_MASTER", "publicIp": "127.0.0.1",
                               "username": f"uprod_{job}", "sshPort": world.closed}
    node.update(fields)
    return {k: v for k, v in node.items() if v is not None}


# -- 1. values from the platform --------------------------------------------------------------

PORT_VALUES: tuple[object, ...] = (0, -1, 65536, 99999999, 22.5, True, [22], {"port": 22},
                                   "0x16", "+22", " 22", "")


def test_instance_fields_from_the_platform_are_refused(world: World) -> None:
    job = "Evil1"
    world.platform.add_job(job, host="127.0.0.1", port=world.closed, instances=[])
    cases: list[tuple[str, str, object]] = []
    for value in hostile("127.0.0.1", world.canary).values():
        cases += [("publicIp", "host", value), ("publicHostname", "host", value)]
    for value in hostile(f"uprod_{job}", world.canary, alone=("", "-root", ".x")).values():
        cases.append(("username", "user name", value))
    for port in (*hostile("22", world.canary).values(), *PORT_VALUES):
        cases.append(("sshPort", "port", port))
    for key, field, value in cases:
        if key == "publicHostname":
            instances = [head(world, job, publicIp=None, publicHostname=value)]
        else:
            instances = [head(world, job, **{key: value})]
        world.platform.jobs[job].instances = instances
        before = world.before()
        world.refused(run_here("add", job), before, fields=(f"invalid {field} from the platform",),
                      codes=(ExitCode.INVALID_DATA,), family="platform instances")
    # A worker's bad address costs that worker its block, never the head its own: the value
    # reaches no file, and status says why.
    for value in hostile("10.0.0.5", world.canary).values():
        if not isinstance(value, str) or value == "10.0.0.5":
            continue
        world.platform.jobs[job].instances = [head(world, job),
                                              {"role": "MPI_SLAVE", "privateIp": value}]
        result = run_here("add", job)
        assert result.returncode == 0, result
        text = world.config.read_bytes() + b"".join(
            p.read_bytes() for p in world.state.rglob("*") if p.is_file())
        assert value.encode() not in text and f"rescale-{job}-1".encode() not in text, value
        status = json.loads(run_here("status", job, "--json").stdout)
        assert status["workers"] == [] and any(
            note.startswith("no block for node (no id): invalid host from the platform")
            for note in status["notes"]), status["notes"]
        assert not world.canary.exists()
        run_here("remove", "--yes", job)
    # The same through the installed program and, with the hook, through ssh itself.
    world.platform.jobs[job].instances = [head(world, job, publicIp=f"127.0.0.1 -oProxyCommand="
                                                                    f"touch {world.canary}")]
    before = world.before()
    world.refused(Cli()("add", job, expect=None), before, fields=("invalid host",),
                  codes=(ExitCode.INVALID_DATA,), family="platform instances")
    result = ssh(world.config, f"rescale-{job}", "true", closed=world.closed)
    assert result.returncode == 255
    assert result.stderr.startswith("rescale-ssh: error: invalid host from the platform"), \
        result.stderr
    assert world.config.read_bytes() == before and not world.canary.exists()
    world.nothing_ran(f"rescale-{job}", "rescale-Static1", "mine")


def ssh_line(user: str, host: str, port: str, workdir: str, extra: str = "") -> str:
    return (f"Instance ready for ssh access. Command: ssh -i </path/to/key> -p {port}{extra} "
            f"{user}@{host}; working directory: {workdir}")


def log_cases(world: World, job: str) -> list[tuple[str, str]]:
    """(line, a field its refusal may name) for every hostile value in every part."""
    good = {"user": f"uprod_{job}", "host": "127.0.0.1", "port": str(world.closed),
            "workdir": f"/enc/uprod_{job}/work"}
    names = {"user": "user name", "host": "host", "port": "port", "workdir": "working directory"}
    cases = []
    for part, base in good.items():
        for value in hostile(base, world.canary).values():
            cases.append((ssh_line(**{**good, part: value}), names[part]))
    touch = f"touch {world.canary}"
    for extra in (f" -o ProxyCommand={touch.replace(' ', '_')}", f" -oLocalCommand={touch}",
                  " -J jump.example.org", " -F /tmp/other_config", " -E /tmp/log",
                  " -L 8080:127.0.0.1:80", " -W 127.0.0.1:22", " -S /tmp/control"):
        cases.append((ssh_line(**good, extra=extra), "ssh command"))
    cases.append((ssh_line(**good) + f" && {touch}", "ssh command"))
    cases.append((ssh_line(**good).replace("; working", f" {touch}; working"), "ssh command"))
    return cases


FIELDS_OF_A_LINE = ("user name", "host", "port", "working directory", "ssh command")


def test_log_lines_from_the_platform_are_refused(world: World) -> None:
    job = "Logs1"
    world.platform.add_job(job, host="127.0.0.1", port=world.closed, instances=[])
    for line, _ in log_cases(world, job):
        world.platform.jobs[job].log_lines = ["Job submitted", line, "Running command"]
        before = world.before()
        world.refused(run_here("add", job), before,
                      fields=tuple(f"invalid {f} from the job logs" for f in FIELDS_OF_A_LINE),
                      codes=(ExitCode.INVALID_DATA,), family="platform logs")
    world.nothing_ran(f"rescale-{job}")


def test_pasted_log_lines_are_refused(world: World, figures: Figures) -> None:
    job = "Paste1"
    for line, _ in log_cases(world, job):
        if "\n" in line:
            continue  # a pasted log has many lines: see test_pasted_lines_end_at_a_newline
        before = world.before()
        fields = tuple(f"invalid {f} from --from-log" for f in FIELDS_OF_A_LINE)
        world.refused(run_here("add", job, "--from-log", line), before, fields=fields,
                      codes=(ExitCode.INVALID_DATA,), family="--from-log")
        world.refused(run_here("add", job, "--from-log", "-", stdin=f"log\n{line}\nmore\n"),
                      before, fields=fields, codes=(ExitCode.INVALID_DATA,), family="--from-log")
    line = ssh_line(f"uprod_{job}", "127.0.0.1", f"22 -oProxyCommand=touch {world.canary}",
                    "/enc/w")
    before = world.before()
    world.refused(Cli()("add", job, "--from-log", line, expect=None), before,
                  fields=("invalid ssh command from --from-log",),
                  codes=(ExitCode.INVALID_DATA,), family="--from-log")
    world.nothing_ran(f"rescale-{job}")


def test_pasted_lines_end_at_a_newline(world: World) -> None:
    """A pasted log is many lines: text after a newline is the next line, never part of a
    value; what is taken is exactly the valid line, as ssh -G shows."""
    job = "Paste2"
    line = ssh_line(f"uprod_{job}", "127.0.0.1", str(world.closed), f"/enc/uprod_{job}/work")
    for suffix in (f"\nProxyCommand touch {world.canary}", f'\nMatch exec "touch {world.canary}"',
                   f"\r\nPermitLocalCommand yes\r\nLocalCommand touch {world.canary}"):
        result = run_here("add", job, "--from-log", line + suffix)
        assert result.returncode == 0, result
        got = ssh(world.config, f"rescale-{job}", closed=world.closed, get=True).stdout
        options = dict(line.split(" ", 1) for line in got.splitlines())
        assert (options["user"], options["port"]) == (f"uprod_{job}", str(world.closed))
        # The only ProxyCommand is rescale-ssh's own (the static blocks': issue 16).
        assert options.get("proxycommand", " proxy %h %p").endswith(" proxy %h %p")
        assert str(world.canary) not in options.get("proxycommand", "")
        assert "localcommand" not in options
        assert options["permitlocalcommand"] == "no"
        assert not world.canary.exists()
        assert run_here("remove", "--yes", job).returncode == 0


def test_the_job_list_skips_what_it_cannot_trust(world: World) -> None:
    """`sync` reads ids from the job list and instances for each: hostile ids are skipped,
    hostile instances are reported with the field named, and nothing is written."""
    bad_ids = [v for v in hostile("Abc", world.canary).values() if "\0" not in v][:12]
    for bad in bad_ids:
        world.platform.add_job(bad, host="127.0.0.1", port=world.closed)
    world.platform.add_job("Static1", instances=[head(world, "Static1",
                                                      username="u_Static1")])
    world.platform.add_job("Good1", instances=[head(world, "Good1", publicIp="127.0.0.1;x")])
    world.platform.add_job("Good2", instances=[head(world, "Good2", username="-oProxyCommand=x")])
    before = world.before()
    result = run_here("sync", "--yes")
    assert result.returncode == 0, result
    assert "invalid host from the platform (job Good1)" in result.stdout + result.stderr
    assert "invalid user name from the platform (job Good2)" in result.stdout + result.stderr
    for bad in bad_ids:
        assert f"rescale-{bad}" not in result.stdout + result.stderr
    assert world.config.read_bytes() == before
    assert not world.canary.exists()
    world.figures("hostile inputs refused", len(bad_ids) + 2)
    world.figures("hostile inputs refused: platform job list", len(bad_ids) + 2)


def test_job_details_and_statuses_reach_the_terminal_inert(world: World) -> None:
    """What the platform says about a job only to be shown (name, owner, statuses, CIDR rule,
    launch key) never reaches the config, and reaches the terminal without control
    characters: no escape sequence, no line of its own."""
    evil = f"\x1b]0;owned\x07\x1b[2J\nProxyCommand touch {world.canary}\u2028\x85x"
    world.platform.add_job("Det1", host="127.0.0.1", port=world.closed, name=evil, owner=evil,
                           cidr_rule="0.0.0.0/0" + evil, public_key="ssh-ed25519 AAAA" + evil)
    world.platform.set_status("Det1", "Executing" + evil)
    before = world.before()
    for command in (("status", "Det1"), ("status", "Det1", "--json"), ("jobs",),
                    ("jobs", "--json"), ("doctor", "Det1")):
        result = run_here(*command)
        shown = result.stdout + result.stderr
        for bad in ("\x1b", "\x07", "\u2028", "\x85", "\nProxyCommand"):
            assert bad not in shown, (command, shown)
        assert "Traceback" not in shown
        world.figures("hostile inputs refused", 1)
        world.figures("hostile inputs refused: job details shown", 1)
    assert world.config.read_bytes() == before
    world.nothing_ran("rescale-Det1")


# -- 2. the command line -----------------------------------------------------------------------

JOB_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("add",), ("add", "--from-log", "Command: ssh u@127.0.0.1"), ("remove",), ("path",),
    ("status",), ("wait", "--timeout", "0"), ("shell",), ("code",), ("doctor",),
)


def test_job_ids_on_the_command_line_are_refused(world: World) -> None:
    values = [v for v in hostile("Abc", world.canary, alone=("", "rescale-Abc")).values()
              if "\0" not in v]  # argv cannot hold NUL
    for command in JOB_COMMANDS:
        for value in values:
            before = world.before()
            world.refused(run_here(*command, "--", value), before,
                          fields=("invalid job ID from the command line",),
                          codes=(ExitCode.USAGE,), family="command-line job IDs")
    before = world.before()
    world.refused(Cli()("add", "--", f"x;touch {world.canary}", expect=None), before,
                  fields=("invalid job ID",), codes=(ExitCode.USAGE,),
                  family="command-line job IDs")


def run_program(*args: str) -> Result:
    """`rescale-ssh hook` / `proxy` as ssh runs them: a separate, standard-library process."""
    proc = subprocess.run([sys.executable, "-m", "rescale_ssh", *args], capture_output=True,
                          text=True, timeout=30, stdin=subprocess.DEVNULL)
    return Result(["rescale-ssh", *args], proc.returncode, proc.stdout, proc.stderr)


def test_aliases_given_to_the_hook_and_proxy_are_refused(world: World) -> None:
    values = [v for v in hostile("Abc", world.canary, alone=("", "rescale-")).values()
              if "\0" not in v]
    state = str(world.state)

    def both(value: str) -> tuple[str, Result, Result]:
        return (value, run_program("hook", "--state", state, f"rescale-{value}"),
                run_program("proxy", "--state", state, "--job", value, "127.0.0.1",
                            str(world.closed)))

    before = world.before()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(both, values))
    for _, hooked, proxied in results:
        world.refused(hooked, before, fields=("invalid job ID from the ssh command line",),
                      codes=(ExitCode.USAGE,), family="hook aliases")
        world.refused(proxied, before, fields=("invalid job ID from the command line",),
                      codes=(ExitCode.USAGE,), family="proxy --job")
    # The proxy's port, and an alias ssh itself hands to the hook through Match exec.
    for port in (*[v for v in hostile("22", world.canary).values() if "\0" not in v], "0"):
        world.refused(run_program("proxy", "127.0.0.1", port), before,
                      fields=("invalid port from the command line",), codes=(ExitCode.USAGE,),
                      family="proxy port")

    def via_ssh(value: str) -> subprocess.CompletedProcess[str]:
        return ssh(world.config, f"rescale-{value}", "true", closed=world.closed)

    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = list(pool.map(via_ssh, values))
    for run in runs:
        assert run.returncode == 255
        assert "Traceback" not in run.stderr
    assert world.config.read_bytes() == before
    assert not world.canary.exists()
    assert not list((world.state / "hosts").glob("*"))
    world.figures("hostile inputs refused", len(values))
    world.figures("hostile inputs refused: ssh aliases (Match exec)", len(values))


# -- 3. files on disk that were tampered with --------------------------------------------------

# Refused in a local path (spaces, %, ;, $(...) and backticks are fine there: quoted, see
# test_odd_state_and_identity_paths_run_nothing and the property tests below).
PATH_HOSTILE = ("newline", "carriage return", "line separator", "next line", "double quote",
                "single quote", "environment", "backslash", "hash", "escape sequence",
                "zero width", "leading dash", "over-long", "vertical tab", "match exec",
                "crlf local command")




def cache_job(world: World, job: str) -> Path:
    """A job the hook resolved (valid record and block), without asking the platform."""
    conf = hookconf.load(str(world.state))
    target = Target(job, f"uprod_{job}", "127.0.0.1", world.closed, f"/enc/uprod_{job}/work",
                    (("127.0.0.1", world.closed, True),))
    entry = Entry(state=OK, resolved=time.time(), target=target)
    jobcache.save(str(world.state), job, entry)
    matcher.publish(conf, job, entry)
    return Path(jobcache.path_for(str(world.state), job))


@pytest.mark.slow
def test_tampered_cache_records_are_refused(world: World) -> None:
    """jobs/<JOB>: every field, through the real ssh (the hook's warm path, then the proxy)."""
    good = {"user": "uprod_X", "host": "127.0.0.1", "port": str(world.closed),
            "workdir": "/enc/uprod_X/work", "workers": f"127.0.0.1/{world.closed}",
            "resolved": "TIME", "state": "ok", "job": "JOB"}
    names = {"user": ("user name",), "host": ("host",), "port": ("port",),
             "workdir": ("working directory",), "workers": ("host", "port"),
             "resolved": ("resolved",), "state": ("state",), "job": ("job ID",)}
    cases: list[tuple[str, str]] = []
    for key, base in good.items():
        extra = ("", "nan", "inf", "-1e400") if key == "resolved" else ()
        cases += [(key, value) for value in hostile(base, world.canary, alone=extra).values()]
    jobs = [f"Tamp{i}" for i in range(len(cases))]
    before = world.before()

    def tamper_and_ssh(item: tuple[str, tuple[str, str]]) -> tuple[str, str, Result]:
        job, (key, value) = item
        path = cache_job(world, job)
        now = f"{time.time():.3f}"
        lines = []
        for line in path.read_text().splitlines():
            name = line.partition("=")[0]
            if name == key:
                line = f"{name}={value.replace('TIME', now).replace('JOB', job)}"
            lines.append(line)
        path.write_bytes(("\n".join(lines) + "\n").encode("utf-8", "surrogatepass"))
        run = ssh(world.config, f"rescale-{job}", "true", closed=world.closed)
        # The job's marker (blockfile.py) let ssh skip the hook: the proxy finds the record
        # tampered with, says so, and ssh adds its two lines about the missing connection
        # (the hook's failure block, with LogLevel QUIET, is what the next run reads).
        ours = "".join(line for line in run.stderr.splitlines(keepends=True)
                       if not line.startswith(("mm_receive_fd", "proxy dialer")))
        return key, value, Result([job, key, repr(value)], run.returncode, "", ours)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(tamper_and_ssh, zip(jobs, cases, strict=True)))
    for key, _value, result in results:
        # ssh's own exit code is 255; the proxy's line says why.
        shown = Result(result.args, ExitCode.INVALID_DATA if result.returncode == 255 else -1,
                       "", result.stderr)
        fields = tuple(f"invalid {name} from the cache file" for name in (*names[key], "line"))
        world.refused(shown, before, fields=fields, codes=(ExitCode.INVALID_DATA,),
                      family="tampered jobs/ records")
    # Every tampered job now has a failure block, rendered from nothing of its record.
    assert not (world.state / "hosts.conf").exists()
    fresh = (world.state / "fresh.conf").read_text()
    assert fresh.count("cannot be reached") == len(jobs)
    assert "touch" not in fresh
    world.nothing_ran(*(f"rescale-{job}" for job in jobs[:5]))


def test_tampered_failure_records_are_shown_safely(world: World) -> None:
    """A failed record's reason is printed by the proxy: terminal escapes never get through."""
    job = "Fail1"
    path = cache_job(world, job)
    now = f"{time.time():.3f}"
    path.write_text(f"job={job}\nstate=failed\nresolved={now}\nreason=cluster gone\x1b]0;owned"
                    f"\x07\x1b[2J\nhint=run\x1b[31m this\ncode=7\n")
    result = ssh(world.config, f"rescale-{job}", "true", closed=world.closed)
    assert result.returncode == 255
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert result.stderr.startswith("rescale-ssh: error: cluster gone]0;owned"), result.stderr
    world.figures("hostile inputs refused", 1)
    world.figures("hostile inputs refused: tampered jobs/ records", 1)


def test_tampered_hook_settings_are_refused(world: World) -> None:
    conf_path = world.state / hookconf.FILE
    original = conf_path.read_text()
    record = dict(line.split("=", 1) for line in original.splitlines())
    path_values = [v for n, v in hostile("/opt/x", world.canary).items()
                   if n in (*PATH_HOSTILE, "nul")]
    cases = [(key, value) for key in ("python", "launcher", "identity", "known_hosts")
             for value in path_values]
    names = {"python": "python", "launcher": "launcher", "identity": "identity file",
             "known_hosts": "known_hosts file"}
    before = world.before()
    for key, value in cases:
        conf_path.write_text(original.replace(f"{key}={record[key]}\n", f"{key}={value}\n"))
        result = run_program("hook", "--state", str(world.state), "rescale-Conf1")
        world.refused(result, before, fields=(f"invalid {names[key]} from the hook settings",
                                              "invalid line from the hook settings"),
                      codes=(ExitCode.INVALID_DATA,), family="tampered hook.conf")
    # Through ssh: the hook says why on ssh's stderr, and ssh goes on without a block.
    conf_path.write_text(original.replace(f"launcher={record['launcher']}\n",
                                          f"launcher={record['launcher']}\nProxyCommand=touch "
                                          f"{world.canary}\n"))
    run = ssh(world.config, "rescale-Conf1", "true", closed=world.closed)
    assert run.stderr.startswith("rescale-ssh: error: invalid line from the hook settings"), run
    assert world.config.read_bytes() == before and not world.canary.exists()
    conf_path.write_text(original)
    world.nothing_ran("rescale-Conf1")


PLATFORM_VALUES = (
    "http://127.0.0.1:1/${HOME}", "http://127.0.0.1:1 -oProxyCommand=x", "http://12\uff17.0.0.1:1",
    "http://pl\u0430tform.rescale.com", "javascript:alert(1)", "file:///etc/passwd",
    "http://user@127.0.0.1:1", "http://127.0.0.1:99999", "http://127.0.0.1:1/`touch x`",
    "http://127.0.0.1:1/$(touch x)", "http://127.0.0.1:1/\u2028", "http://127.0.0.1:1/'",
    "http://127.0.0.1:1/\"", "-oProxyCommand=x", "http://127.0.0.1:1/\x1b[2J",
    "http://" + "a" * 3000 + ".example.org",
)
PROFILE_VALUES = ("prod;touch x", "-x", "a b", "${HOME}", "pr\u043ed", "x" * 65, "a\u2028b",
                  "prod'", "prod]\n[x", "%h", "\x1b[2J", "a\\b", "$(touch x)")


@pytest.mark.slow
def test_tampered_platform_and_profile_in_the_hook_settings_are_refused(world: World) -> None:
    """Checked on the cold path (the warm path does not read them): ssh shows the reason."""
    conf_path = world.state / hookconf.FILE
    original = conf_path.read_text()
    cases = [("platform", v) for v in PLATFORM_VALUES if "\n" not in v] + [
        ("profile", v) for v in PROFILE_VALUES if "\n" not in v]
    before = world.before()

    for index, (key, value) in enumerate(cases):
        text = "".join(f"{key}={value}\n" if line.startswith(f"{key}=") else line
                       for line in original.splitlines(keepends=True))
        assert text != original
        conf_path.write_text(text)
        result = ssh(world.config, f"rescale-Cold{index}", "true", closed=world.closed)
        assert result.returncode == 255
        assert result.stderr.startswith(f"rescale-ssh: error: invalid {key} from the hook "
                                        "settings"), result.stderr
        assert "Traceback" not in result.stderr
        world.figures("hostile inputs refused", 1)
        world.figures("hostile inputs refused: tampered hook.conf", 1)
    conf_path.write_text(original)
    assert world.config.read_bytes() == before
    assert not world.canary.exists()
    assert world.platform.count() == 0, "nothing was asked of any platform"


def test_tampered_include_files_are_rewritten_from_the_record(world: World) -> None:
    """The include files are rendered from validated records: the next hook run puts back
    exactly what the record says for the job, dropping whatever was added."""
    job = "Inc1"
    cache_job(world, job)
    conf = hookconf.load(str(world.state))
    fresh = world.state / "fresh.conf"

    def stamps_out(data: bytes) -> bytes:
        return re.sub(rb" at=[0-9.]+", b" at=T", data)

    clean = stamps_out(fresh.read_bytes())
    touch = f"touch {world.canary}"
    for tampering in (f"    ProxyCommand {touch}\n", f"    LocalCommand {touch}\n"
                      "    PermitLocalCommand yes\n", f'Match exec "{touch}"\n',
                      f"    KnownHostsCommand {touch}\n", "Include /etc/passwd\n"):
        fresh.write_bytes(fresh.read_bytes().replace(b"    HostName",
                                                     tampering.encode() + b"    HostName", 1))
        result = run_program("hook", "--state", str(world.state), f"rescale-{job}")
        assert result.returncode == 0, result
        assert stamps_out(fresh.read_bytes()) == clean
        got = ssh(world.config, f"rescale-{job}", closed=world.closed, get=True).stdout
        options = dict(line.split(" ", 1) for line in got.splitlines())
        assert "localcommand" not in options and "knownhostscommand" not in options
        assert options["permitlocalcommand"] == "no"
        assert options["proxycommand"].startswith(f"'{conf.program[0]}' ")
        assert not world.canary.exists()
        world.figures("hostile inputs refused", 1)
        world.figures("hostile inputs refused: tampered include files", 1)
    # A failure block is rendered from the record too.
    jobcache.save(str(world.state), job, matcher.failure(InvalidValueError("host", "x", "y"), conf))
    matcher.publish(conf, job, jobcache.load(str(world.state), job))  # type: ignore[arg-type]
    clean_failure = stamps_out(fresh.read_bytes())
    assert b"cannot be reached" in clean_failure
    fresh.write_bytes(fresh.read_bytes().replace(b"    LogLevel QUIET",
                                                 f"    LocalCommand {touch}\n".encode()
                                                 + b"    LogLevel QUIET"))
    assert run_program("hook", "--state", str(world.state), f"rescale-{job}").returncode == 0
    assert stamps_out(fresh.read_bytes()) == clean_failure
    assert not world.canary.exists()


# -- 4. the environment and the Rescale CLI's profile ------------------------------------------

def test_environment_variables_are_refused(world: World) -> None:
    line = f"Command: ssh u_Env1@127.0.0.1 -p {world.closed}"
    paths = {n: v for n, v in hostile(f"{world.config.parent}/key", world.canary).items()
             if n in PATH_HOSTILE}
    paths["relative option"] = f"-oIdentityFile=/etc/passwd -oProxyCommand=touch {world.canary}"
    configs = {n: v for n, v in paths.items() if n in ("newline", "carriage return", "leading dash",
                                                       "line separator", "next line", "over-long",
                                                       "escape sequence", "zero width",
                                                       "vertical tab", "relative option")}
    cases: list[tuple[dict[str, str | None], tuple[str, ...], str, tuple[int, ...]]] = []
    for value in paths.values():
        cases.append(({"RESCALE_SSH_IDENTITY": value}, ("add", "Env1", "--from-log", line),
                      "identity file from RESCALE_SSH_IDENTITY", (ExitCode.USAGE,)))
    for value in configs.values():
        cases.append(({"RESCALE_SSH_CONFIG": value}, ("add", "Env1", "--from-log", line),
                      "ssh config file from RESCALE_SSH_CONFIG", (ExitCode.USAGE,)))
    for value in PLATFORM_VALUES:
        cases.append(({"RESCALE_API_URL": value}, ("add", "Env1"),
                      "platform from RESCALE_API_URL", (ExitCode.USAGE,)))
    for value in ("a\nb", "a b", "k" * 5000, "\u043a\u043b\u044e\u0447", "key\x00", "key\u2028"):
        cases.append(({"RESCALE_API_KEY": value}, ("add", "Env1"), "API key",
                      (ExitCode.AUTH,)))
    for value in ("nan", "-1", "1e9", "abc", "1;touch x", "\u0661"):
        cases.append(({"RESCALE_SSH_TIMEOUT": value}, ("add", "Env1"), "RESCALE_SSH_TIMEOUT",
                      (ExitCode.USAGE,)))
    for env, args, field, codes in cases:
        if any("\0" in (v or "") for v in env.values()):
            continue  # the environment cannot hold NUL
        before = world.before()
        with environment(**env):
            result = run_here(*args)
        world.refused(result, before, fields=(field,), codes=codes, family="environment")
    assert sorted(p.name for p in Path(".").iterdir()) == ["home"], "a file appeared in the cwd"
    before = world.before()
    world.refused(Cli()("add", "Env1", "--from-log", line, expect=None,
                        env={"RESCALE_SSH_IDENTITY": f"/k\n  ProxyCommand touch {world.canary}"}),
                  before, fields=("identity file",), codes=(ExitCode.USAGE,),
                  family="environment")


def test_profiles_and_the_rescale_cli_apiconfig_are_refused(world: World,
                                                            isolated_home: Path) -> None:
    apiconfig = isolated_home / ".config" / "rescale" / "apiconfig"
    apiconfig.parent.mkdir(parents=True, mode=0o700)
    good = f"[prod]\napikey = {world.platform.api_key}\napibaseurl = {world.platform.base_url}\n"
    apiconfig.write_text(good)
    with environment(RESCALE_API_URL=None, RESCALE_API_KEY=None):
        for value in PROFILE_VALUES:
            before = world.before()
            for command in (("add", "Prof1"), ("install", "--yes")):
                with environment(RESCALE_PROFILE=value):
                    result = run_here(*command)
                world.refused(result, before, fields=("invalid profile from RESCALE_PROFILE",),
                              codes=(ExitCode.USAGE,), family="environment")
        for value in PLATFORM_VALUES:
            if value != value.strip():
                continue  # the INI format strips it: what is left is a plain URL
            apiconfig.write_text(good.replace(f"apibaseurl = {world.platform.base_url}",
                                              f"apibaseurl = {value}"))
            before = world.before()
            world.refused(run_here("add", "Prof1"), before,
                          fields=("invalid platform from apibaseurl in",),
                          codes=(ExitCode.CONFIG,), family="Rescale CLI apiconfig")
        for value in ("a b", "k" * 5000, "\u043a\u043b\u044e\u0447", "key\n  more"):
            apiconfig.write_text(good.replace(f"apikey = {world.platform.api_key}",
                                              f"apikey = {value}"))
            before = world.before()
            world.refused(run_here("add", "Prof1"), before, fields=("API key",),
                          codes=(ExitCode.AUTH,), family="Rescale CLI apiconfig")
    assert world.platform.count() == 0, "no request was made with a hostile setting"


# -- 5. quoting: odd but valid local paths reach ssh as one literal argument -------------------


def test_odd_state_and_identity_paths_run_nothing(cli: Cli, ssh_config: Path,
                                                  platform: FakePlatform, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Paths may hold spaces, ;, $(...), backticks, | & < > and non-ASCII letters: they go
    into Match exec and ProxyCommand single-quoted and into Include double-quoted, so the
    hook runs with exactly that folder and no shell ever reads them as code."""
    canary = tmp_path / "CANARY"
    odd = tmp_path / f"st ate;touch {canary} $(touch {canary}) `touch {canary}` |&<>ü"
    monkeypatch.setenv("XDG_STATE_HOME", str(odd))
    key = tmp_path / f"my key;$(touch {canary}) 100%"
    monkeypatch.setenv("RESCALE_SSH_IDENTITY", str(key))
    closed = free_port()
    platform.add_job("Odd1", host="127.0.0.1", port=closed)
    cli("install", "--yes")
    got = ssh(ssh_config, "rescale-Odd1", closed=closed, get=True).stdout
    options = dict(line.split(" ", 1) for line in got.splitlines())
    assert options["user"] == "uprod_Odd1", got
    assert options["identityfile"] == str(key).replace("%", "%%")
    assert options["userknownhostsfile"] == str(odd / "rescale-ssh" / "known_hosts")
    assert (odd / "rescale-ssh" / "jobs").is_dir()
    result = ssh(ssh_config, "rescale-Odd1", "true", closed=closed)
    assert "Connection refused" in result.stderr or "connection refused" in result.stderr
    assert not canary.exists()


# -- 6. the writer, property-based --------------------------------------------------------------

ANY_TEXT = st.text(st.characters(codec="utf-8"), max_size=40)
# Letters, digits, punctuation, symbols and spaces of any script: what odd but real paths hold.
PATH_CHARACTERS = st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs"))
COMMANDS = ("proxycommand", "localcommand", "remotecommand", "knownhostscommand",
            "proxyjump", "include", "match")


def _maybe(checker: Callable[[], Any]) -> Any:
    try:
        return checker()
    except InvalidValueError:
        return None


@st.composite
def targets(draw: st.DrawFn) -> tuple[Target, str | None, str] | None:
    """A Target built with Target.checked from text (arbitrary or of the valid alphabet), and
    local paths checked the same way; None when anything is refused."""
    alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    # Most examples from the valid alphabet (so many are accepted), the rest any text per field.
    anything = draw(st.integers(0, 9)) >= 6

    def text(valid: st.SearchStrategy[str]) -> str:
        return draw(st.one_of(valid, ANY_TEXT) if anything else valid)

    job = text(st.text(alnum, min_size=1, max_size=12))
    user = text(st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,15}", fullmatch=True))
    label = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9-]{0,10}[A-Za-z0-9])?", fullmatch=True)
    hostname = st.lists(label, min_size=1, max_size=4).map(".".join)
    ipv4 = st.ip_addresses(v=4).map(str)
    ipv6 = st.ip_addresses(v=6).map(lambda a: str(a).upper())
    host = text(st.one_of(hostname, ipv4, ipv6))
    port = draw(st.one_of(st.integers(-5, 70000), st.text("0123456789", max_size=6), ANY_TEXT)
                if anything else st.integers(1, 65535))
    workdir = text(st.from_regex(r"(/[A-Za-z0-9_.+@,=~-]{1,8}){1,4}", fullmatch=True))
    workers = draw(st.lists(st.tuples(st.one_of(ipv4, hostname, *([ANY_TEXT] if anything else [])),
                                      st.integers(1, 65535), st.booleans()), max_size=2))
    segment = st.text(PATH_CHARACTERS, min_size=1, max_size=10)
    local = st.lists(segment, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts))
    identity = draw(st.one_of(st.none(), local, *([ANY_TEXT] if anything else [])))
    known = draw(st.one_of(local, ANY_TEXT) if anything else local)
    try:
        target = Target.checked(job=job, user=user, host=host, port=port, workdir=workdir,
                                source="hypothesis", workers=tuple(workers))
        from rescale_ssh import validate

        if identity is not None:
            validate.local_path(identity, field="identity file")
        validate.local_path(known, field="known_hosts file")
    except InvalidValueError:
        return None
    return target, identity, known


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=targets())
def test_whatever_the_writer_accepts_ssh_reads_back_exactly(case: tuple[Target, str | None, str]
                                                           | None, tmp_path: Path,
                                                           figures: Figures) -> None:
    figures("property examples (writer)", 1)
    if case is None:
        figures("property examples refused by validation", 1)
        return
    target, identity, known = case
    config = tmp_path / "config"
    entry_ = HostEntry(target=target, identity=identity, known_hosts=known)
    config.write_bytes(Section(entries={target.job: entry_}).render())
    got = ssh_g(config, target.alias)
    assert same_host(got["hostname"], target.host)
    assert got["port"] == [str(target.port)]
    assert got["user"] == [target.user]
    assert got["hostkeyalias"] == [target.alias.lower()]
    assert got["userknownhostsfile"] == [known]
    if identity is not None:
        assert got["identityfile"][0] == identity.replace("%", "%%")
    assert got["permitlocalcommand"] == ["no"]
    assert not set(got) & {"proxycommand", "localcommand", "remotecommand", "knownhostscommand",
                           "proxyjump"}
    for index, (host, port, jump) in enumerate(target.workers, start=1):
        worker = ssh_g(config, f"{target.alias}-{index}")
        assert same_host(worker["hostname"], host) and worker["port"] == [str(port)]
        assert worker.get("proxyjump") == ([target.alias] if jump else None)
        assert worker["user"] == [target.user]
        assert "proxycommand" not in worker and "localcommand" not in worker
    # Only our own lines: Host lines, the marker comment, options we write.
    lines = [line.strip() for line in config.read_text().splitlines()]
    allowed = ("#", "Host ", "HostName ", "Port ", "User ", "IdentityFile ", "IdentitiesOnly ",
               "HostKeyAlias ", "UserKnownHostsFile ", "StrictHostKeyChecking ",
               "ServerAliveInterval ", "ServerAliveCountMax ", "ProxyJump ", "Include ")
    assert all(not line or line.startswith(allowed) for line in lines), lines
    # The one Include names the tool's own file (its host-key policy; absent here).
    includes = [line for line in lines if line.startswith("Include ")]
    assert includes == [f"Include {paths.state_dir()}/ssh.conf"], includes
    figures("property examples accepted and read back by ssh -G (writer)", 1)


def same_host(seen: list[str], host: str) -> bool:
    """ssh -G lowercases names and writes address literals in libc's form (::ffff:0.0.0.0
    for Python's ::ffff:0:0): the same name, the same address."""
    import ipaddress

    if len(seen) != 1:
        return False
    try:
        return ipaddress.ip_address(seen[0]) == ipaddress.ip_address(host)
    except ValueError:
        return seen[0] == host.lower()


def ssh_g(config: Path, alias: str) -> dict[str, list[str]]:
    return ssh_config_of(str(config), alias)


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(names=st.lists(st.text(PATH_CHARACTERS, min_size=1, max_size=12), min_size=2,
                      max_size=2))
def test_the_hook_command_reaches_the_program_as_its_argv(names: list[str], tmp_path: Path,
                                                          figures: Figures) -> None:
    """Whatever folder names the writer accepts for the program and the state folder, the
    command ssh runs for Match exec (and ProxyCommand) hands the program exactly its words."""
    from rescale_ssh import validate
    from rescale_ssh.hook.hookconf import HookConf
    from rescale_ssh.sshconfig import included, section
    from rescale_ssh.sshconfig.section import HookSpec

    figures("property examples (hook command)", 1)
    assume(all("/" not in name and name not in (".", "..") for name in names))
    base = tmp_path / "p"
    try:
        program_dir = validate.local_path(f"{base}/{names[0]}", field="program")
        state_dir = section.validate_state_dir(f"{base}/{names[1]}")
    except InvalidValueError:
        figures("property examples refused by validation", 1)
        return
    os.makedirs(program_dir, exist_ok=True)
    recorder = Path(program_dir) / "record"
    record = tmp_path / "argv.txt"
    recorder.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > '{record}'\nexit 1\n")
    recorder.chmod(0o755)
    spec = HookSpec(state_dir=state_dir)
    # The Match line runs the script install writes into the state folder; it starts the program.
    conf = HookConf(state_dir=state_dir, python="", launcher=str(recorder), identity=None,
                    known_hosts=f"{state_dir}/known_hosts")
    os.makedirs(state_dir, exist_ok=True)
    Path(conf.script_file).write_text(conf.script_text())
    Path(conf.script_file).chmod(0o700)
    Path(state_dir, "hook.conf").write_text(conf.to_text())
    Path(state_dir, "ssh.conf").write_text(included.render(state_dir, hook=True))
    config = tmp_path / "config"
    config.write_bytes(Section(hook=spec).render())
    with contextlib.suppress(FileNotFoundError):
        record.unlink()
    subprocess.run([require("ssh"), "-G", "-F", str(config), "rescale-Abc1"], capture_output=True,
                   timeout=30, stdin=subprocess.DEVNULL)
    assert record.read_text().split("\n")[:-1] == ["hook", "--state", state_dir, "rescale-Abc1"]
    figures("property examples accepted and run by ssh (hook command)", 1)
