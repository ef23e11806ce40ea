"""The exit-code table (errors.EXIT_CODES, README's "## Exit codes") is true: each failure of
each command, driven through the real command line against the fake platform, exits with the
code the table gives it, as one error line (and a hint, when there is one)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rescale_ssh.errors import EXIT_CODE_MEANINGS, ExitCode
from tests.fakeplatform import FakePlatform, Hang, Malformed, Status
from tests.helpers import Cli, Result

LINE = ("Instance ready for ssh access. Command: ssh -i </path/to/key> uprod_Fotxeb@203.0.113.7; "
        "working directory: /enc/uprod_Fotxeb/work")
WRONG_KEY = "not-the-key-0000"
FAST = {"RESCALE_SSH_POLL_INTERVAL": "0.2"}


@dataclass
class World:
    cli: Cli
    platform: FakePlatform
    home: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, expect: int) -> Result:
        return self.cli(*args, env=self.env, expect=expect)


def _empty_path(world: World) -> None:
    empty = world.home / "empty-bin"
    empty.mkdir(exist_ok=True)
    world.env["PATH"] = str(empty)


def _block(world: World) -> None:
    world.cli("add", "Fotxeb", "--from-log", LINE)


def _hook(world: World) -> None:
    world.cli("install", "--yes")


def _queued(world: World) -> None:
    world.platform.add_job("Waits", status="Queued", cluster_status="Not Started")


def _stopped(world: World) -> None:
    world.platform.add_job("Done", status="Completed", cluster_status="Stopped")


def _running(world: World) -> None:
    world.platform.add_job("Fotxeb")


def _wrong_key(world: World) -> None:
    world.platform.add_job("Fotxeb")
    world.env["RESCALE_API_KEY"] = WRONG_KEY


def _no_key(world: World) -> None:
    world.env["RESCALE_API_KEY"] = ""


def _forbidden(world: World) -> None:
    world.platform.add_job("Theirs").forbidden = True


def _fault(*faults: object, path: str = "/api/") -> Callable[[World], None]:
    def setup(world: World) -> None:
        world.platform.add_job("Fotxeb")
        world.platform.inject(path, *faults)  # type: ignore[arg-type]
    return setup


def _hanging(world: World) -> None:
    world.platform.add_job("Fotxeb")
    world.platform.inject("/api/", *[Hang(5.0)] * 8)
    world.env["RESCALE_SSH_TIMEOUT"] = "1"


def _damaged(world: World) -> None:
    config = world.home / ".ssh" / "config"
    config.parent.mkdir(mode=0o700, exist_ok=True)
    config.write_bytes(b"# >>> rescale-ssh managed section >>>\nHost rescale-X\n")


def _config_is_a_folder(world: World) -> None:
    (world.home / ".ssh" / "config").mkdir(parents=True)


def _hostile_value(world: World) -> None:
    world.platform.add_job("Evil", host="-oProxyCommand=touch /tmp/x")


SERVER_ERRORS = [Status(500)] * 8
BROKEN_JSON = Status(200, body="{not json", headers={"Content-Type": "application/json"})
TOO_MANY = [Status(429, headers={"Retry-After": "0"})] * 8


@dataclass(frozen=True)
class Case:
    setup: tuple[Callable[[World], None], ...]
    args: tuple[str, ...]
    code: int
    message: str = ""  # the error line starts with "rescale-ssh: error: " + this


def case(code: int, *args: str, setup: tuple[Callable[[World], None], ...] = (),
         message: str = "") -> Case:
    return Case(setup, args, code, message)


CASES: dict[str, Case] = {
    # 2: the command line
    "add without JOB": case(2, "add", message="missing argument 'JOB'"),
    "unknown option": case(2, "add", "Fotxeb", "--bogus", message="no such option: --bogus"),
    "unknown command": case(2, "frob", message="no such command 'frob'"),
    "bad --timeout": case(2, "wait", "Fotxeb", "--timeout", "abc",
                          message="invalid value for '--timeout'"),
    "negative --timeout": case(2, "wait", "Fotxeb", "--timeout", "-1",
                               message="invalid value for '--timeout'"),
    "invalid job ID": case(2, "add", "bad-id", "--from-log", LINE,
                           message="invalid job ID from the command line"),
    "status invalid job ID": case(2, "status", "a.b", message="invalid job ID"),
    "shell command before --": case(2, "shell", "Fotxeb", "ls", setup=(_block,),
                                    message="'ls' is not an ssh option"),
    "key generate, unknown type": case(2, "key", "generate", "--type", "dsa",
                                       message="unknown key type 'dsa'"),
    # 3: local problems
    "key show without a key": case(3, "key", "show", message="no key at "),
    "key export without a key": case(3, "key", "export", "--ppk", "out.ppk",
                                     message="no key at "),
    "damaged section": case(3, "add", "Fotxeb", "--from-log", LINE, setup=(_damaged,),
                            message="the rescale-ssh section of "),
    "damaged section, list": case(3, "list", setup=(_damaged,)),
    "config is a folder": case(3, "add", "Fotxeb", "--from-log", LINE,
                               setup=(_config_is_a_folder,)),
    "code without VS Code": case(3, "code", "Fotxeb", setup=(_block, _empty_path),
                                 message="VS Code's `code` command is not on PATH"),
    "shell without ssh": case(3, "shell", "Fotxeb", setup=(_block, _no_key, _empty_path),
                              message="ssh is not installed"),
    # 4: the API key
    "add without a key": case(4, "add", "Fotxeb", setup=(_no_key,),
                              message="no Rescale API key"),
    "jobs without a key": case(4, "jobs", setup=(_no_key,), message="no Rescale API key"),
    "whoami without a key": case(4, "whoami", setup=(_no_key,), message="no Rescale API key"),
    "add, 401": case(4, "add", "Fotxeb", setup=(_wrong_key,),
                     message="the platform rejected the API key"),
    "status, 401": case(4, "status", "Fotxeb", setup=(_wrong_key,)),
    "jobs, 401": case(4, "jobs", setup=(_wrong_key,)),
    "sync, 401": case(4, "sync", setup=(_wrong_key,)),
    "prune, 401": case(4, "prune", setup=(_block, _wrong_key)),
    "wait, 401": case(4, "wait", "Fotxeb", "--timeout", "5", setup=(_wrong_key,)),
    "whoami, 401": case(4, "whoami", setup=(_wrong_key,)),
    "path through the hook, 401": case(4, "path", "Fotxeb", setup=(_hook, _wrong_key)),
    "add, 403": case(4, "add", "Theirs", setup=(_forbidden,),
                     message="the platform refused access"),
    # 5: no such job
    "add unknown job": case(5, "add", "Nope", message="job Nope not found"),
    "status unknown job": case(5, "status", "Nope"),
    "wait unknown job": case(5, "wait", "Nope", "--timeout", "5"),
    "shell unknown job": case(5, "shell", "Nope"),
    "path without block or hook": case(5, "path", "Nothere", message="no host for job Nothere"),
    "code without block or hook": case(5, "code", "Nothere", message="no host for job Nothere"),
    "path through the hook, unknown job": case(5, "path", "Nope", setup=(_hook,)),
    # 6: the platform in trouble
    "add, 500": case(6, "add", "Fotxeb", setup=(_fault(*SERVER_ERRORS),)),
    "status, 500": case(6, "status", "Fotxeb", setup=(_fault(*SERVER_ERRORS),)),
    "jobs, 500": case(6, "jobs", setup=(_fault(*SERVER_ERRORS),)),
    "sync, 500": case(6, "sync", setup=(_fault(*SERVER_ERRORS),)),
    # The instances: the logs, asked for at the same time (issue 16), may take a fault first.
    "add, 429 beyond the retries": case(6, "add", "Fotxeb",
                                        setup=(_fault(*TOO_MANY, path="/instances/"),)),
    "add, HTML": case(6, "add", "Fotxeb", setup=(_fault(Malformed(), path="/instances/"),),
                      message="the platform sent a malformed answer"),
    "jobs, broken JSON": case(6, "jobs", setup=(_fault(BROKEN_JSON, path="/api/v2/jobs/$"),),
                              message="the platform sent a malformed answer"),
    "add, no answer in time": case(6, "add", "Fotxeb", setup=(_hanging,)),
    # 7: the job exists, its cluster does not accept SSH
    "add queued": case(7, "add", "Waits", setup=(_queued,)),
    "add stopped": case(7, "add", "Done", setup=(_stopped,)),
    "shell queued": case(7, "shell", "Waits", setup=(_queued,)),
    "path queued, through the hook": case(7, "path", "Waits", setup=(_queued, _hook)),
    "code queued, through the hook": case(7, "code", "Waits", setup=(_queued, _hook)),
    "wait past --timeout": case(7, "wait", "Waits", "--timeout", "1", setup=(_queued,)),
    "wait, platform failing past --timeout": case(
        7, "wait", "Fotxeb", "--timeout", "1", setup=(_fault(*[Status(503)] * 40),)),
    "add --wait past --timeout": case(7, "add", "Waits", "--wait", "--timeout", "1",
                                      setup=(_queued,)),
    # 8: a value that failed validation
    "add, hostile address": case(8, "add", "Evil", setup=(_hostile_value,),
                                 message="invalid host"),
    "add --from-log, no SSH line": case(8, "add", "Fotxeb", "--from-log", "nothing useful",
                                        message="invalid log text from --from-log"),
    "add --from-log, bad user": case(8, "add", "Fotxeb", "--from-log",
                                     LINE.replace("uprod_Fotxeb@", "u`id`@"),
                                     message="invalid user name from --from-log"),
    "add --from-log, another job's line": case(
        8, "add", "Ptczhb", "--from-log", LINE,
        message="the line from --from-log is job Fotxeb's (user uprod_Fotxeb), not job "
        "Ptczhb's"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_failure_exits_with_the_documented_code(
    name: str, cli: Cli, platform: FakePlatform, isolated_home: Path
) -> None:
    item = CASES[name]
    world = World(cli, platform, isolated_home, env=dict(FAST))
    for setup in item.setup:
        setup(world)
    result = world.run(*item.args, expect=item.code)
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("rescale-ssh: error: ")]
    assert len(errors) == 1, result
    assert errors[0].startswith("rescale-ssh: error: " + item.message), result
    after = lines[lines.index(errors[0]) + 1 :]
    assert len(after) <= 1 and all(line.startswith("hint: ") for line in after), result
    assert "Traceback" not in result.stderr and "Usage:" not in result.stdout + result.stderr
    assert platform.api_key not in result.stdout + result.stderr


def test_every_failure_code_of_the_table_is_driven() -> None:
    driven = {item.code for item in CASES.values()}
    failures = set(EXIT_CODE_MEANINGS) - {ExitCode.OK, ExitCode.FAILURE, ExitCode.INTERNAL,
                                          ExitCode.INTERRUPTED}
    assert failures <= driven


def test_another_jobs_line_is_taken_with_force(cli: Cli, ssh_config: Path) -> None:
    cli("add", "Ptczhb", "--from-log", LINE, expect=8)
    assert not ssh_config.exists()
    cli("add", "Ptczhb", "--from-log", LINE.replace("uprod_Fotxeb@", "someone@"), expect=8)
    assert not ssh_config.exists()  # the working directory names Fotxeb too
    added = cli("add", "Ptczhb", "--from-log", LINE, "--force")
    assert "Added rescale-Ptczhb → uprod_Fotxeb@203.0.113.7" in added.stdout
    # The job's own line, in the Japanese spelling, and a user of no such shape: taken.
    jp = LINE.replace("uprod_Fotxeb", "ujpprod_Ptczhb")
    cli("add", "Ptczhb", "--from-log", jp)
    cli("add", "Ptczhb", "--from-log", "Command: ssh engineer@192.0.2.3")
    assert b"User engineer" in ssh_config.read_bytes()


def test_an_upper_case_job_is_not_anothers(cli: Cli) -> None:
    """Job IDs are case-sensitive: fotxeb's line is not Fotxeb's."""
    result = cli("add", "fotxeb", "--from-log", LINE, expect=8)
    assert "job Fotxeb's" in result.stderr
    assert "rescale-ssh add Fotxeb --from-log" in result.stderr.splitlines()[1]
