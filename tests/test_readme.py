"""README.md's commands, run for real: every line of its ```sh blocks, in order, as a user would
type them on one machine, from the first `pipx install .` to `pipx uninstall rescale-ssh`.

The machine (one environment for the whole README, because the README is one story: make a key,
log in, install, connect, ..., uninstall):
- HOME, the XDG folders and RESCALE_SSH_CONFIG point into tmp_path (conftest). The ssh config
  starts with lines of the user's own, and must be byte-for-byte those again after `uninstall`.
- Rescale is the fake platform (tests/fakeplatform.py). RESCALE_API_URL and RESCALE_API_KEY are
  unset: the README's `rescale-ssh login` stores both, and every later command uses what it
  stored.
- The head node of jobs Fotxeb and Ptczhb is a real sshd (tests/sshd.py) that authorizes only
  the key the README's `rescale-ssh key generate` made.
- What the user does in the web UI between two commands happens after `rescale-ssh key show`
  (WEB_UI): the public key is "pasted into Job Settings" (the sshd authorizes it) and the two
  jobs are "submitted" with it (the platform reports it as their launch key, as doctor reads it).
- PATH starts with bin/ holding:
  - `ssh` and `scp`: the real programs with `-F "$RESCALE_SSH_CONFIG" -o BatchMode=yes` added.
    ssh takes `~` from the passwd entry, not $HOME, so without -F it would read the real
    user's config; BatchMode turns a prompt into a failure instead of a hang. rsync and
    `rescale-ssh shell` run the `ssh` they find on PATH, so they use the wrapper too.
  - `code`: records its arguments (VS Code cannot run here).
  - `pipx` (and `pip`): records its arguments. rescale-ssh is already installed (editable)
    in this interpreter's environment, and a real `pipx install .` would download its
    dependencies; so `pipx install` does what pipx does with the installed program: it links
    the console script into ~/.local/bin (`pipx uninstall` removes the link). The README's
    first command runs `~/.local/bin/rescale-ssh`, so it fails without that link. Building
    the wheel and installing it into a venv elsewhere, with the command linked into
    ~/.local/bin, is tested in test_completion.py (and the wheel's contents in test_docs.py).
  then ~/.local/bin (as after `pipx ensurepath`), then the directory of this interpreter (its
  `rescale-ssh`), then the system's PATH.
- Each line runs with `bash -o pipefail -c LINE` in a project folder holding the files the
  README uploads; stdin is /dev/null, so `ssh rescale-Fotxeb` and `rescale-ssh shell` get a
  shell without a terminal, which ends at once.
- Commands that ask questions on a terminal (prompted(): `key generate`, `login`) run on a
  pseudo-terminal (tests/terminal.py) and are answered as a person would: Enter twice for a key
  without passphrase (one with a passphrase would need an ssh-agent for every ssh line after
  it), then the fake platform's URL and API key.

Each command must exit 0, unless its comment says `exits N`. Skipped (SKIPPED): only the test
command after `<!-- test-command -->`, which runs this test suite; a separate test checks that
.ci/run finds it there. Shell commands in a ```bash, ```shell or ```console block fail the test:
they would escape it.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.fakeplatform import FakePlatform
from tests.helpers import Result, require
from tests.sshd import SSHDFactory, SSHServer
from tests.terminal import run_in_terminal

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
JOBS = ("Fotxeb", "Ptczhb")
USER_CONFIG = b"# my own hosts\nHost mybox\n    HostName 192.0.2.10\n    User me\n"
TEST_COMMAND = ("python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[test]' "
                "&& python -m pytest -n 2")
SKIPPED = {TEST_COMMAND: "the test command: it runs this test suite (.ci/run runs it)"}
OTHER_SHELL_FENCES = ("bash", "shell", "console", "zsh", "shell-session")
EXITS = re.compile(r"\bexits (\d+)\b")
COMMAND_TIMEOUT = 60.0


@dataclass(frozen=True)
class Command:
    line: str  # as written; continuation lines joined
    number: int  # README line it starts on

    @property
    def expected_exit(self) -> int:
        found = EXITS.search(self.line[len(self.bare):])
        return int(found.group(1)) if found else 0

    @property
    def bare(self) -> str:
        """The command without a trailing comment (a `#` outside quotes, after a blank)."""
        quote = ""
        for at, char in enumerate(self.line):
            if quote:
                quote = "" if char == quote else quote
            elif char in "'\"":
                quote = char
            elif char == "#" and (at == 0 or self.line[at - 1].isspace()):
                return self.line[:at].strip()
        return self.line.strip()


def sh_commands(text: str) -> list[Command]:
    """Every command line of the ```sh blocks, in order."""
    commands: list[Command] = []
    fence: str | None = None
    pending, start = "", 0
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            if fence is None:
                fence = stripped[3:].strip()
                assert fence not in OTHER_SHELL_FENCES, (
                    f"README.md:{number}: ```{fence} blocks are not run by this test; use ```sh "
                    "for commands, ```text for anything else")
            else:
                assert not pending, f"README.md:{start}: a continued line ends the block"
                fence = None
            continue
        if fence != "sh" or (not pending and (not stripped or stripped.startswith("#"))):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        commands.append(Command(pending + stripped, start))
        pending = ""
    assert fence is None, "README.md: a ``` block is not closed"
    return commands


# -- the machine ---------------------------------------------------------------------------------


@dataclass
class Machine:
    env: dict[str, str]
    project: Path
    home: Path
    logs: Path
    server: SSHServer
    platform: FakePlatform
    workdirs: dict[str, Path] = field(default_factory=dict)

    def log(self, program: str) -> list[str]:
        path = self.logs / program
        return path.read_text().splitlines() if path.exists() else []


def _program(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture
def machine(isolated_home: Path, platform: FakePlatform, sshd_factory: SSHDFactory,
            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Machine:
    ssh, scp = require("ssh"), require("scp")
    require("rsync")
    # The README's `login` is where the key and the platform come from.
    monkeypatch.delenv("RESCALE_API_URL")
    monkeypatch.delenv("RESCALE_API_KEY")
    logs = tmp_path / "logs"
    logs.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, real in (("ssh", ssh), ("scp", scp)):
        _program(bin_dir, name,
                 f"exec {shlex.quote(real)} -F \"$RESCALE_SSH_CONFIG\" -o BatchMode=yes \"$@\"\n")
    for name in ("code", "pip"):
        _program(bin_dir, name, f"echo \"$*\" >> {shlex.quote(str(logs / name))}\n")
    local_bin = isolated_home / ".local" / "bin"
    program = shlex.quote(str(Path(sys.executable).parent / "rescale-ssh"))
    _program(bin_dir, "pipx", (
        f"echo \"$*\" >> {shlex.quote(str(logs / 'pipx'))}\n"
        'case "$1" in\n'
        f'  install) mkdir -p "$HOME/.local/bin" && ln -sf {program} "$HOME/.local/bin/" ;;\n'
        '  uninstall) rm -f "$HOME/.local/bin/rescale-ssh" ;;\n'
        "esac\n"))
    path = os.pathsep.join([str(bin_dir), str(local_bin), str(Path(sys.executable).parent),
                            os.environ.get("PATH", os.defpath)])
    monkeypatch.setenv("PATH", path)  # the pseudo-terminal runs take os.environ

    config = isolated_home / ".ssh" / "config"
    config.parent.mkdir(mode=0o700)
    config.write_bytes(USER_CONFIG)
    project = tmp_path / "project"
    (project / "inputs").mkdir(parents=True)
    (project / "model.step").write_text("ISO-10303-21;\n")
    (project / "inputs" / "mesh.dat").write_text("nodes 8\n")
    server = sshd_factory()
    server.root.joinpath("authorized_keys").write_text("")  # until the README's key is pasted
    return Machine(dict(os.environ), project, isolated_home, logs, server, platform)


def paste_key_and_submit_jobs(machine: Machine) -> None:
    """In the web UI: paste the key into Job Settings, Save, then submit the two jobs."""
    public = (machine.home / ".ssh" / "rescale_ed25519.pub").read_text().strip()
    machine.server.root.joinpath("authorized_keys").write_text(public + "\n")
    for job in JOBS:
        workdir = machine.server.new_workdir(job)
        machine.workdirs[job] = workdir
        machine.platform.add_job(job, user=machine.server.user, host=machine.server.host,
                                 port=machine.server.port, workdir=str(workdir),
                                 public_key=public)
    (machine.workdirs["Fotxeb"] / "results").mkdir()  # what the job has written so far
    (machine.workdirs["Fotxeb"] / "results" / "summary.txt").write_text("residual 1e-6\n")


# What happens outside the terminal after a command (its bare form) ran.
WEB_UI: dict[str, Callable[[Machine], None]] = {
    "rescale-ssh key show": paste_key_and_submit_jobs,
}


def prompted(machine: Machine) -> dict[str, list[tuple[str, str]]]:
    """Commands that ask on a terminal, with the answers a person types."""
    return {
        "rescale-ssh key generate": [("Passphrase for the new key", ""),
                                     ("Repeat for confirmation", "")],
        "rescale-ssh login": [("Platform", machine.platform.base_url),
                              ("API key", machine.platform.api_key)],
    }


def run_command(machine: Machine, command: Command) -> Result:
    answers = prompted(machine).get(command.bare)
    if answers is not None:
        args = shlex.split(command.bare)
        assert args[0] == "rescale-ssh", command
        session = run_in_terminal(args[1:], answers, env=machine.env, timeout=COMMAND_TIMEOUT)
        return Result(args, session.returncode, session.output, "")
    proc = subprocess.run(
        [require("bash"), "--noprofile", "--norc", "-o", "pipefail", "-c", command.line],
        cwd=machine.project, env=machine.env, stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=COMMAND_TIMEOUT)
    return Result([command.line], proc.returncode, proc.stdout, proc.stderr)


# -- the tests -----------------------------------------------------------------------------------


@pytest.mark.e2e
def test_every_command_in_the_readme_runs(machine: Machine) -> None:
    commands = sh_commands(README.read_text())
    assert commands[0].line.startswith(
        'pipx install . && ~/.local/bin/rescale-ssh add Fotxeb --dry-run --from-log '
        '"Instance ready'), (
        "the README starts with the fresh-machine command")
    seen: set[str] = set()
    transcript: list[str] = []
    for command in commands:
        seen.add(command.bare)
        if command.bare in SKIPPED:
            transcript.append(f"README.md:{command.number}: skipped: {SKIPPED[command.bare]}")
            continue
        result = run_command(machine, command)
        transcript.append(f"README.md:{command.number}: exit {result.returncode}: "
                          f"{command.line}")
        assert result.returncode == command.expected_exit, (
            "\n".join(transcript) + f"\n\nREADME.md:{command.number}: expected exit "
            f"{command.expected_exit}\n{result}")
        if command.bare in WEB_UI:
            WEB_UI[command.bare](machine)
    stale = (set(SKIPPED) | set(WEB_UI) | set(prompted(machine))) - seen
    assert not stale, f"no longer in the README's sh blocks: {sorted(stale)}"

    # What the commands did, beyond exiting 0.
    assert machine.log("pipx") == ["install .", "uninstall rescale-ssh"]
    assert machine.log("pip") == []
    share = machine.home / ".local" / "share"
    assert not os.path.lexists(share / "bash-completion" / "completions" / "rescale-ssh"), (
        "uninstall removed the completion links install made")
    assert not os.path.lexists(machine.home / ".local" / "bin" / "rescale-ssh")
    fotxeb, ptczhb = (str(machine.workdirs[job]) for job in JOBS)
    assert machine.log("code") == [
        f"--folder-uri vscode-remote://ssh-remote+rescale-Fotxeb{fotxeb}",
        f"--folder-uri vscode-remote://ssh-remote+rescale-Ptczhb{ptczhb}",
        "--folder-uri vscode-remote://ssh-remote+rescale-Ptczhb/enc/uprod_Ptczhb/work",
    ]
    assert (machine.workdirs["Fotxeb"] / "model.step").read_text() == "ISO-10303-21;\n"
    assert (machine.workdirs["Fotxeb"] / "inputs" / "mesh.dat").read_text() == "nodes 8\n"
    assert (machine.project / "results" / "summary.txt").read_text() == "residual 1e-6\n"
    assert (machine.project / "rescale.ppk").read_text().startswith(
        "PuTTY-User-Key-File-3: ssh-ed25519\n")
    config = machine.home / ".ssh" / "config"
    assert config.read_bytes() == USER_CONFIG, "uninstall left the ssh config as it was"
    apiconfig = machine.home / ".config" / "rescale" / "apiconfig"
    assert machine.platform.api_key not in apiconfig.read_text(), "logout removed the key"
    assert not (machine.home / ".local" / "state" / "rescale-ssh" / "known_hosts").exists()
    # `putty Fotxeb` wrote a session (plink used it); uninstall removed it with the rest.
    assert not (machine.home / ".putty" / "sessions" / "rescale-Fotxeb").exists()
    assert (machine.home / ".putty" / "sessions").is_dir()


def test_ci_finds_the_test_command() -> None:
    """.ci/run runs the line it finds after `<!-- test-command -->`: the one skipped above."""
    ci = (ROOT / ".ci" / "run").read_text()
    found = re.search(r"^test_command=\$\((.*)\)$", ci, re.MULTILINE)
    assert found is not None, ".ci/run no longer sets test_command=$(...)"
    proc = subprocess.run([require("bash"), "--noprofile", "--norc", "-c", found.group(1)],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == TEST_COMMAND
    assert TEST_COMMAND in {c.bare for c in sh_commands(README.read_text())}


def doctor_problems() -> set[str]:
    """The names of the checks doctor (src/rescale_ssh/doctor/) can report as failed or as a
    warning."""
    trees = [ast.parse(path.read_text())
             for path in sorted((ROOT / "src" / "rescale_ssh" / "doctor").glob("*.py"))]
    found: set[str] = set()
    for node in (node for tree in trees for node in ast.walk(tree)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "add" and len(node.args) >= 2
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)):
            status = node.args[1]
            # PASS, INFO and SKIP need no fix; anything else (FAIL, WARN, a variable) may.
            if not (isinstance(status, ast.Name) and status.id in ("PASS", "INFO", "SKIP")):
                found.add(node.args[0].value)
    return found


def test_troubleshooting_covers_every_doctor_problem() -> None:
    text = README.read_text()
    part = text[text.index("## Troubleshooting"):text.index("### Known limitations")]
    rows = re.findall(r"^\| ([a-zA-Z ]+) \| (.+?) \| (.+?) \|$", part, re.MULTILINE)
    named = {check for check, _, _ in rows} - {"check"}
    problems = doctor_problems()
    assert len(problems) >= 10, problems
    assert named == problems, (
        f"in doctor/, not in the README: {sorted(problems - named)}; "
        f"in the README, not in doctor/: {sorted(named - problems)}")


def test_sh_blocks_are_read_as_bash_would_run_them() -> None:
    text = (
        "```text\nssh not-run\n```\n"
        "```sh\n# a comment line\n\n"
        "rescale-ssh wait Fotxeb  # exits 7 when it times out\n"
        "rescale-ssh add Fotxeb --from-log \"a # b\" \\\n    --dry-run  # shows a diff\n"
        "ssh rescale-Fotxeb 'echo exits 3'\n```\n"
    )
    commands = sh_commands(text)
    assert [(c.bare, c.expected_exit, c.number) for c in commands] == [
        ("rescale-ssh wait Fotxeb", 7, 7),
        ('rescale-ssh add Fotxeb --from-log "a # b"  --dry-run', 0, 8),
        ("ssh rescale-Fotxeb 'echo exits 3'", 0, 10),
    ]
    with pytest.raises(AssertionError, match="```console blocks are not run"):
        sh_commands("```console\n$ ssh rescale-Fotxeb\n```\n")
