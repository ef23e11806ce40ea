"""Hostile values in the platform's answers (instances, the job list, what is only shown)
reach no config and run nothing: through add, sync, status, jobs and doctor (and ssh with
the hook). See tests/hostile.py for the payloads."""

from __future__ import annotations

import json

from rescale_ssh.errors import ExitCode
from tests.helpers import Cli
from tests.hostile import World, hostile, run_here, ssh

# -- values from the platform -----------------------------------------------------------------


def head(world: World, job: str, **fields: object) -> dict[str, object]:
    node: dict[str, object] = {"role": "MPI_MASTER", "publicIp": "127.0.0.1",
                               "username": f"uprod_{job}", "sshPort": world.closed}
    node.update(fields)
    return {k: v for k, v in node.items() if v is not None}


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
