"""Configs written by earlier versions keep working after an upgrade (issue 12, item 3).

tests/fixtures/upgrade/<commit>/ holds what an earlier version of rescale-ssh left on disk, one
folder per layout the config and the state folder had (scripts/gen_upgrade_fixtures.py ran that
commit's own CLI: `add` of two jobs, `install`, one job resolved by its hook). Each test puts
one into the isolated home the way `pip install --upgrade` leaves it: the same paths, the new
code behind the launcher they name. Then it runs what a user runs next and checks, with the real
ssh, that the user's hosts mean what they meant without the tool and every job still resolves.

The issue's reports: `add` after an upgrade rewrote the Match line to run a script only
`install` writes (every hook job failed: `.../hook: No such file`); after `pipx uninstall`, a
deleted venv or a Python upgrade, `ssh rescale-X` printed raw shell errors and `install` could
not repair a lost state folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rescale_ssh
from tests.fakeplatform import FakePlatform
from tests.helpers import Cli, Result
from tests.layouts import (
    FIXTURES,
    FLAT,
    HOOK_JOB,
    HOOK_LAUNCHER,
    HOOKED,
    LATER,
    LAUNCHER,
    LAUNCHING,
    LAYOUTS,
    NEWEST,
    NO_FINAL_NEWLINE,
    ONE_REGION,
    STALE,
    STATIC,
    USER_HOSTS,
    assert_connects,
    assert_hook_reaches_a_new_job,
    assert_one_region_at_the_top,
    assert_resolves,
    assert_user_hosts_unchanged,
    effective,
    end_masters,
    launchers,
    managed_jobs,
    materialize,
    ssh,
    ssh_static,
    state_folder,
)
from tests.sshd import SSHServer

pytestmark = pytest.mark.e2e

ADDED = "Qrstuv"
ADDED_LINE = ("Instance ready for ssh access. Command: ssh -i </path/to/key> -p 2022 "
              "uprod_Qrstuv@203.0.113.9; working directory: /enc/uprod_Qrstuv/work")


# -- whatever runs next ------------------------------------------------------------------------

# ssh-hook-fresh: the upgrade came seconds after the last ssh (the old records, blocks and
# markers are still fresh, so the old script and blocks are used as they are).
NEXT = ("ssh-hook", "ssh-hook-fresh", "ssh-static", "add", "remove", "sync", "prune", "install",
        "uninstall", "doctor")
# The configs without a final newline differ from the others only where the file is written
# (the old hook region at its end brought the newline): a command that rewrites the section,
# and one that removes it (install: test_install_says_what_it_repaired). Keeps the file fast.
NEXT_NO_FINAL_NEWLINE = ("add", "uninstall")


def cases() -> list[object]:
    found = []
    for name in LAYOUTS:
        for command in NEXT_NO_FINAL_NEWLINE if name.endswith(NO_FINAL_NEWLINE) else NEXT:
            if command.startswith("ssh-hook") and name not in HOOKED:
                continue  # no hook: nothing reaches a job never added
            found.append(pytest.param(name, command, id=f"{name}-{command}"))
    return found


@pytest.mark.parametrize(("name", "command"), cases())
def test_every_earlier_config_keeps_working_whatever_runs_next(
    name: str, command: str, cli: Cli, isolated_home: Path, tmp_path: Path,
    platform: FakePlatform, sshd: SSHServer, request: pytest.FixtureRequest,
) -> None:
    """An earlier version's config and state folder, upgraded in place, then one command: the
    user's hosts are untouched, every job resolves, and the hook still reaches new jobs (the
    report: `add` after an upgrade made every hook job fail with `.../hook: No such file`)."""
    up = materialize(name, isolated_home, tmp_path, platform, sshd,
                     age=5.0 if command == "ssh-hook-fresh" else STALE,
                     state=state_folder(request, name))
    before = up.config.read_bytes()
    static = dict(STATIC)
    hooked = up.hooked
    if command.startswith("ssh-hook"):
        # A real connection to the job the old hook resolved, through its old records, blocks
        # and Match line, run by the new code.
        proc = ssh(up.config, f"rescale-{HOOK_JOB}", "echo", "connected")
        assert proc.returncode == 0 and proc.stdout == "connected\n", proc.stderr
    elif command == "ssh-static":
        assert_resolves(up.config, "Fotxeb", *STATIC["Fotxeb"])
    elif command == "add":
        cli("add", ADDED, "--from-log", ADDED_LINE)
        static[ADDED] = ("203.0.113.9", "2022", "uprod_Qrstuv")
    elif command == "remove":
        cli("remove", "--yes", "Ptczhb")
        del static["Ptczhb"]
        assert managed_jobs(up.config) == {"Fotxeb"}
    elif command in ("sync", "prune"):
        platform.set_status("Ptczhb", "Completed", "Stopped")
        cli(command, "--yes")
        del static["Ptczhb"]
        if command == "sync":  # every running job gets a block of its own
            static[HOOK_JOB] = (sshd.host, str(sshd.port), sshd.user)
        assert managed_jobs(up.config) == set(static)
    elif command == "install":
        out = cli("install", "--yes").stdout
        assert ("Repaired" if hooked else "Installed") in out, out
        hooked = True
    elif command == "uninstall":
        cli("uninstall", "--yes")
        assert up.config.read_bytes() == up.original
        left = sorted(str(p.relative_to(up.state)) for p in up.state.rglob("*")) \
            if up.state.exists() else []
        assert left == [], f"uninstall left {left} in {up.state}"
        static, hooked = {}, False
    elif command == "doctor":
        result = cli("doctor", expect=None)
        assert result.returncode in (0, 1) and "Traceback" not in result.stderr, str(result)
        assert up.config.read_bytes() == before, "doctor changed the config"
        # It tells the user why, and what rewrites the lines (in a one-region layout, the
        # included file's: it names the launcher's old place).
        said = "an earlier version, an edit" if name in ONE_REGION else \
            "an earlier version wrote them"
        assert said in result.stdout, str(result)
    else:  # pragma: no cover - a command missing from this table
        pytest.fail(f"no step for {command}")

    rewritten = up.config.read_bytes() != before
    # The earlier version's hook region still at the end of the file (no command wrote it).
    old_layout = hooked and not rewritten and name not in ONE_REGION
    for job, (host, port, user) in static.items():
        assert_resolves(up.config, job, host, port, user)
    if hooked:
        assert_hook_reaches_a_new_job(up, platform, sshd, old_layout=old_layout)
        # Jobs without a block (removed, or only ever resolved by the hook) still resolve.
        for job in {"Ptczhb", HOOK_JOB} - set(static):
            if job == "Ptczhb" and command in ("sync", "prune"):
                continue  # its cluster stopped
            want = STATIC.get(job, (sshd.host, str(sshd.port), sshd.user))
            assert_resolves(up.config, job, *want)
    else:  # nothing of ours claims it (ssh -G shows a name it did not replace in lower case)
        options, _ = effective(up.config, f"rescale-{LATER}")
        assert options["hostname"] == [f"rescale-{LATER}".lower()]
    if (rewritten or name in ONE_REGION) and command != "uninstall":
        assert_one_region_at_the_top(up)
    # The user's own rescale-lab under an earlier version's Match line: the test below.
    assert_user_hosts_unchanged(
        up, tuple(host for host in USER_HOSTS if not (old_layout and host == "rescale-lab")))


@pytest.mark.parametrize("name", sorted(name for name in HOOKED
                                         if not name.endswith(NO_FINAL_NEWLINE)))
def test_the_users_own_rescale_host_stays_theirs_before_any_write(
    name: str, isolated_home: Path, tmp_path: Path, platform: FakePlatform, sshd: SSHServer,
    request: pytest.FixtureRequest,
) -> None:
    """Right after the upgrade, before any command writes the config, the earlier version's
    Match line (which did not exclude the user's own hosts) runs the new hook for the user's
    rescale-lab: the new hook must leave it alone (no request, no block of ours), as it does
    under the Match lines this version writes."""
    up = materialize(name, isolated_home, tmp_path, platform, sshd,
                     state=state_folder(request, name))
    for _ in range(2):  # the first run, and one that finds whatever the first left behind
        assert_user_hosts_unchanged(up, ("rescale-lab",))
    assert platform.count("/api/v2/jobs/lab/") == 0


# -- install repairs every earlier layout and says what it repaired ----------------------------


@pytest.mark.parametrize("name", LAYOUTS)
def test_install_says_what_it_repaired(name: str, cli: Cli, isolated_home: Path,
                                       tmp_path: Path, platform: FakePlatform,
                                       sshd: SSHServer, request: pytest.FixtureRequest) -> None:
    """`install` after an upgrade: an earlier version's hook is repaired, each file it
    rewrote is named, and a second `install` finds nothing left to repair."""
    up = materialize(name, isolated_home, tmp_path, platform, sshd,
                     state=state_folder(request, name))
    out = cli("install", "--yes").stdout
    if not up.hooked:
        assert "\nInstalled the rescale-ssh hook" in out, out
    else:
        # After the diff of the config: the heading, then one "  - " line per repair.
        heading = f"Repaired the rescale-ssh hook in {up.config}:\n"
        assert heading in out, out
        notes = out.split(heading, 1)[1].splitlines()
        assert notes and notes[0].startswith("  - "), out
        wanted = [
            f"the hook's settings {up.state}/hook.conf",
            f"the hook's script {up.state}/hook",
        ]
        if name in ONE_REGION:  # the lines are this version's; the files name the old launcher
            wanted.append(f"rewrote the file the section includes {up.state}/ssh.conf")
            assert f"rewrote the rescale-ssh lines of {up.config}" not in out, out
        else:
            wanted += [f"rewrote the rescale-ssh lines of {up.config}",
                       f"the file the section includes {up.state}/ssh.conf, which was missing"]
        if (FIXTURES / name / "state" / "hosts").exists() or \
                (FIXTURES / name / "state" / "hosts.conf").exists():
            wanted.append(f"removed what an earlier version kept in {up.state}")
        for text in wanted:
            assert text in out, f"{text!r} not in:\n{out}"
    assert_one_region_at_the_top(up)
    assert not (up.state / "hosts").exists() and not (up.state / "hosts.conf").exists()
    again = cli("install", "--yes").stdout
    assert again.startswith("Already installed"), again  # nothing left to repair
    assert_user_hosts_unchanged(up)
    for job, (host, port, user) in STATIC.items():
        assert_resolves(up.config, job, host, port, user)
    assert_hook_reaches_a_new_job(up, platform, sshd)
    proc = ssh(up.config, f"rescale-{LATER}", "echo", "connected")
    assert proc.returncode == 0 and proc.stdout == "connected\n", proc.stderr


# -- the program the hook names is gone --------------------------------------------------------


def moved_python(folder: Path) -> Path:
    """An interpreter of this environment at a path of its own (a venv that will be deleted)."""
    if sys.prefix == sys.base_prefix:  # no venv: a link to the interpreter is one
        folder.mkdir(parents=True)
        link = folder / "python"
        link.symlink_to(sys.executable)
        return link
    # A venv finds its packages from pyvenv.cfg next to (or above) the path it was started
    # by, not from the file a symlink points to.
    (folder / "bin").mkdir(parents=True)
    shutil.copyfile(Path(sys.prefix) / "pyvenv.cfg", folder / "pyvenv.cfg")
    for name in ("lib", "lib64"):
        if (Path(sys.prefix) / name).exists():
            (folder / name).symlink_to(Path(sys.prefix) / name)
    link = folder / "bin" / "python"
    link.symlink_to(sys.executable)
    return link


def run_cli(python: str, *args: str, env: dict[str, str]) -> Result:
    proc = subprocess.run([python, "-m", "rescale_ssh", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60, stdin=subprocess.DEVNULL)
    result = Result(["rescale-ssh", *args], proc.returncode, proc.stdout, proc.stderr)
    assert proc.returncode == 0, str(result)
    return result


@pytest.mark.parametrize("gone", ["python", "launcher", "both"])
def test_a_hook_whose_program_is_gone_fails_in_one_line_and_install_repairs_it(
    gone: str, cli: Cli, isolated_home: Path, tmp_path: Path, platform: FakePlatform,
    sshd: SSHServer, request: pytest.FixtureRequest,
) -> None:
    """After `pipx uninstall`, a deleted venv or a Python upgrade, `ssh rescale-X` printed raw
    shell errors. Now: one rescale-ssh line that names the fix, the user's other hosts stay
    silent and unaffected, doctor says the hook's program is gone, `install` repairs it."""
    up = materialize(NEWEST, isolated_home, tmp_path, platform, sshd,
                     state=state_folder(request, NEWEST))
    doomed = tmp_path / "doomed"
    python, env = sys.executable, {}
    if gone in ("python", "both"):
        python = str(moved_python(doomed / "venv"))
    if gone in ("launcher", "both"):
        shutil.copytree(Path(LAUNCHER).parent, doomed / "site" / "rescale_ssh",
                        ignore=shutil.ignore_patterns("__pycache__"))
        env["PYTHONPATH"] = str(doomed / "site")
    run_cli(python, "install", "--yes", env=env)
    conf = (up.state / "hook.conf").read_text()
    assert str(doomed) in conf, conf  # the hook names what is about to disappear
    assert_hook_reaches_a_new_job(up, platform, sshd)
    shutil.rmtree(doomed)

    proc = ssh(up.config, "rescale-Newjob1", "true")
    lines = proc.stderr.splitlines()
    assert proc.returncode != 0
    assert len(lines) == 1 and lines[0].startswith("rescale-ssh: error:"), proc.stderr
    assert "rescale-ssh install" in lines[0], lines[0]
    # ... and how to be rid of it, for whoever removed the package on purpose (issue 15's walk).
    assert "delete the rescale-ssh section" in lines[0], lines[0]
    assert_user_hosts_unchanged(up)
    for job, (host, port, user) in STATIC.items():  # their blocks need no program
        assert_resolves(up.config, job, host, port, user)

    report = json.loads(cli("doctor", "--json", expect=None).stdout)
    hook = [check for check in report["checks"] if check["name"] == "hook"]
    assert [check["status"] for check in hook] == ["fail"], hook
    assert "is gone" in hook[0]["summary"] and str(doomed) in hook[0]["summary"], hook

    out = cli("install", "--yes").stdout
    assert out.startswith("Repaired the rescale-ssh hook"), out
    assert f"the hook's settings {up.state}/hook.conf" in out and "which is gone" in out, out
    assert str(doomed) not in (up.state / "hook.conf").read_text()
    platform.add_job("Newjob1", host=sshd.host, port=sshd.port, user=sshd.user,
                     workdir=str(sshd.new_workdir("Newjob1")))
    proc = ssh(up.config, "rescale-Newjob1", "echo", "connected")
    assert proc.returncode == 0 and proc.stdout == "connected\n", proc.stderr
    assert_user_hosts_unchanged(up)


def test_a_lost_state_folder_is_recreated_by_install(
    cli: Cli, isolated_home: Path, tmp_path: Path, platform: FakePlatform, sshd: SSHServer,
    request: pytest.FixtureRequest,
) -> None:
    """Dotfiles synced to a new machine: the config names a state folder that does not exist.
    The user's hosts and the added jobs still work; `install` succeeds and says it recreated
    the folder (it once failed with a hint that said to run install)."""
    up = materialize(NEWEST, isolated_home, tmp_path, platform, sshd,
                     state=state_folder(request, NEWEST))
    cli("install", "--yes")
    shutil.rmtree(up.state)

    assert_user_hosts_unchanged(up)
    for job, (host, port, user) in STATIC.items():
        options, stderr = effective(up.config, f"rescale-{job}")
        assert (options["hostname"], options["port"], options["user"]) == ([host], [port], [user])
        assert stderr == "", stderr
    report = json.loads(cli("doctor", "--json", expect=None).stdout)
    failed = {check["name"] for check in report["checks"] if check["status"] == "fail"}
    assert "included" in failed, report

    out = cli("install", "--yes").stdout
    assert out.startswith("Repaired the rescale-ssh hook"), out
    assert f"created the state folder {up.state}" in out, out
    assert f"the hook's settings {up.state}/hook.conf, which was missing" in out, out
    assert_user_hosts_unchanged(up)
    assert_hook_reaches_a_new_job(up, platform, sshd)
    proc = ssh(up.config, f"rescale-{LATER}", "echo", "connected")
    assert proc.returncode == 0 and proc.stdout == "connected\n", proc.stderr


# -- the last flat layout: its files name the launcher's old place (issue 17, item 6) ----------

def test_the_last_flat_layout_works_before_any_command_and_install_names_the_new_launcher(
    cli: Cli, isolated_home: Path, tmp_path: Path, platform: FakePlatform, sshd: SSHServer,
    request: pytest.FixtureRequest,
) -> None:
    """Issue 17's risk: the files d5e8ad0 wrote start ``src/rescale_ssh/launch.py``, which is
    now a shim for hook/launch.py. Before any command runs, the hook's and the static blocks'
    jobs connect through it and the user's hosts are unchanged; `install` says it repaired the
    hook, every file then names hook/launch.py, and everything still works."""
    up = materialize(FLAT, isolated_home, tmp_path, platform, sshd,
                     state=state_folder(request, FLAT))
    assert launchers(up, LAUNCHER, HOOK_LAUNCHER) == {name: ["old"] for name in LAUNCHING}
    before = up.config.read_bytes()

    assert_user_hosts_unchanged(up)
    for job, (host, port, user) in STATIC.items():
        assert_resolves(up.config, job, host, port, user)
    options, _ = effective(up.config, "rescale-Fotxeb")  # the old Match exec found the shim
    assert LAUNCHER in options["proxycommand"][0], options.get("proxycommand")
    assert options["controlpath"] == [str(up.state / "rescale-Fotxeb")], options["controlpath"]
    assert_connects(ssh_static(up, "Fotxeb", sshd))
    # The old script runs the shim for the hook (its record is hours old: it asks again).
    assert_connects(ssh(up.config, f"rescale-{HOOK_JOB}", "echo", "connected"))
    options, _ = effective(up.config, f"rescale-{HOOK_JOB}")
    assert LAUNCHER in options["proxycommand"][0], options["proxycommand"]
    assert_hook_reaches_a_new_job(up, platform, sshd)
    assert_connects(ssh(up.config, f"rescale-{LATER}", "echo", "connected"))
    assert up.config.read_bytes() == before
    assert_user_hosts_unchanged(up)

    out = cli("install", "--yes").stdout
    assert f"Repaired the rescale-ssh hook in {up.config}:\n" in out, out
    for text in (f"rewrote the hook's settings {up.state}/hook.conf",
                 f"rewrote the hook's script {up.state}/hook",
                 f"rewrote the file the section includes {up.state}/ssh.conf"):
        assert text in out, f"{text!r} not in:\n{out}"
    assert up.config.read_bytes() == before  # the section was this version's already
    assert launchers(up, LAUNCHER, HOOK_LAUNCHER) == {name: ["new"] for name in LAUNCHING}
    assert cli("install", "--yes").stdout.startswith("Already installed")

    end_masters(up)
    assert_user_hosts_unchanged(up)
    for job, (host, port, user) in STATIC.items():
        assert_resolves(up.config, job, host, port, user)
    options, _ = effective(up.config, "rescale-Fotxeb")
    assert HOOK_LAUNCHER in options["proxycommand"][0], options.get("proxycommand")
    assert_connects(ssh_static(up, "Fotxeb", sshd))
    for job in (HOOK_JOB, LATER):
        assert_connects(ssh(up.config, f"rescale-{job}", "echo", "connected"))
        options, _ = effective(up.config, f"rescale-{job}")
        assert HOOK_LAUNCHER in options["proxycommand"][0], options["proxycommand"]
    assert launchers(up, LAUNCHER, HOOK_LAUNCHER)["fresh.conf"] == ["new"]


@pytest.mark.parametrize("command", [("add", ADDED, "--from-log", ADDED_LINE),
                                     ("remove", "Ptczhb", "--yes")])
def test_any_command_that_writes_the_files_moves_them_off_the_shim(
    command: tuple[str, ...], cli: Cli, isolated_home: Path, tmp_path: Path,
    platform: FakePlatform, sshd: SSHServer, request: pytest.FixtureRequest,
) -> None:
    """Not only `install`: the first command after the upgrade that rewrites the tool's files
    names hook/launch.py in the hook's settings and script (so that a later version may drop
    the shim), keeping install's other choices; every job still connects."""
    up = materialize(FLAT, isolated_home, tmp_path, platform, sshd,
                     state=state_folder(request, FLAT))
    conf = (up.state / "hook.conf").read_text()
    assert launchers(up, LAUNCHER, HOOK_LAUNCHER, ("hook", "hook.conf")) == \
        {"hook": ["old"], "hook.conf": ["old"]}
    cli(*command)
    assert launchers(up, LAUNCHER, HOOK_LAUNCHER, ("hook", "hook.conf", "ssh.conf")) == \
        {"hook": ["new"], "hook.conf": ["new"], "ssh.conf": ["new"]}
    kept = [line for line in conf.splitlines() if not line.startswith(("launcher=", "#"))]
    now = (up.state / "hook.conf").read_text().splitlines()
    assert [line for line in kept if line not in now] == []  # install's other settings stay
    end_masters(up)
    assert_user_hosts_unchanged(up)
    assert_connects(ssh_static(up, "Fotxeb", sshd))
    assert_connects(ssh(up.config, f"rescale-{HOOK_JOB}", "echo", "connected"))


def test_without_the_shim_the_users_hosts_still_work_and_install_repairs_the_jobs(
    cli: Cli, isolated_home: Path, tmp_path: Path, platform: FakePlatform, sshd: SSHServer,
    request: pytest.FixtureRequest,
) -> None:
    """The shim deleted (a packager's clean-up, a later version without it): d5e8ad0's files
    name a launcher that is gone. ssh for the user's own hosts is untouched (first law), the
    static jobs connect without the proxy (its Match exec tests for the launcher), a hook job
    fails in one line that names the fix, and `install` repairs the jobs. The package is a
    copy without the shim, upgraded in place there."""
    site = tmp_path / "site"
    shutil.copytree(Path(rescale_ssh.__file__).parent, site / "rescale_ssh",
                    ignore=shutil.ignore_patterns("__pycache__"))
    old, new = site / "rescale_ssh" / "launch.py", site / "rescale_ssh" / "hook" / "launch.py"
    old.unlink(missing_ok=True)  # (the package copied may have none)
    env = {"PYTHONPATH": str(site)}
    up = materialize(FLAT, isolated_home, tmp_path, platform, sshd,
                     state=state_folder(request, FLAT), launcher=str(old))
    before = up.config.read_bytes()

    for _ in range(2):  # the first runs, and what they left behind
        assert_user_hosts_unchanged(up)
        for job, (host, port, user) in STATIC.items():
            assert_resolves(up.config, job, host, port, user)
        options, _ = effective(up.config, "rescale-Fotxeb")
        assert options.get("proxycommand") in (None, ["none"]), options["proxycommand"]
        assert_connects(ssh_static(up, "Fotxeb", sshd))
        proc = ssh(up.config, f"rescale-{HOOK_JOB}", "true")
        lines = proc.stderr.splitlines()
        assert proc.returncode != 0
        assert len(lines) == 1 and lines[0].startswith("rescale-ssh: error:"), proc.stderr
        assert f"{old} is gone" in lines[0] and "rescale-ssh install" in lines[0], lines[0]
    assert up.config.read_bytes() == before

    out = cli("install", "--yes", env=env).stdout
    assert f"Repaired the rescale-ssh hook in {up.config}:\n" in out, out
    for text in (f"it named {old}, which is gone: the hook now runs {new}",
                 f"rewrote the hook's script {up.state}/hook (to start the program now named)",
                 "removed the notice the script left while the hook could not start",
                 f"rewrote the file the section includes {up.state}/ssh.conf"):
        assert text in out, f"{text!r} not in:\n{out}"
    # (No fresh.conf: install removed the notice the script had put there, and the hook's
    # record is too old for a block until the next ssh.)
    assert not (up.state / "fresh.conf").exists()
    assert launchers(up, str(old), str(new), LAUNCHING[:-1]) == \
        {name: ["new"] for name in LAUNCHING[:-1]}

    end_masters(up)
    assert_user_hosts_unchanged(up)
    for job, (host, port, user) in STATIC.items():
        assert_resolves(up.config, job, host, port, user)
    options, _ = effective(up.config, "rescale-Fotxeb")
    assert str(new) in options["proxycommand"][0], options.get("proxycommand")
    assert_connects(ssh_static(up, "Fotxeb", sshd))
    assert_connects(ssh(up.config, f"rescale-{HOOK_JOB}", "echo", "connected"))
    assert_hook_reaches_a_new_job(up, platform, sshd)
    assert_connects(ssh(up.config, f"rescale-{LATER}", "echo", "connected"))
    assert launchers(up, str(old), str(new))["fresh.conf"] == ["new"]
