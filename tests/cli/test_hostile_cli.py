"""Hostile values in what a command is run with: job IDs on its command line, the
environment, and the Rescale CLI's profile file. See tests/hostile.py for the payloads."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from rescale_ssh.errors import ExitCode
from tests.helpers import Cli
from tests.hostile import PATH_HOSTILE, PLATFORM_VALUES, PROFILE_VALUES, World, hostile, run_here

# -- job IDs on the command line ---------------------------------------------------------------

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


# -- the environment and the Rescale CLI's profile ---------------------------------------------

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
