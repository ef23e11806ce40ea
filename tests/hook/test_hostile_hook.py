"""Hostile input to what ssh runs on every connection: the aliases and ports handed to
`rescale-ssh hook` and `proxy`, and the hook's own files on disk tampered with (jobs/
records, hook.conf, the include files). See tests/hostile.py for the payloads."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rescale_ssh.errors import ExitCode, InvalidValueError
from rescale_ssh.hook import hookconf, jobcache, matcher
from rescale_ssh.hook.jobcache import OK, Entry
from rescale_ssh.target import Target
from tests.helpers import Result
from tests.hostile import PATH_HOSTILE, PLATFORM_VALUES, PROFILE_VALUES, World, hostile, ssh

# -- the aliases and ports ssh hands the hook and the proxy ------------------------------------

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


# -- the hook's files on disk that were tampered with ------------------------------------------

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
