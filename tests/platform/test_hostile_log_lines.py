"""Hostile Job Logs lines ("Instance ready for ssh access. Command: ssh ..."), from the
platform's logs and pasted with add --from-log, are refused or cut at the newline. See
tests/hostile.py for the payloads."""

from __future__ import annotations

from rescale_ssh.errors import ExitCode
from tests.helpers import Cli
from tests.hostile import Figures, World, hostile, run_here, ssh


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
