"""Other ssh config parsers must read what we write: the npm ``ssh-config`` package (VS Code
Remote-SSH), paramiko, and the ``code`` command that opens Remote-SSH.

The npm package is installed from tests/js/package-lock.json (``npm ci --prefix tests/js``);
tests/js/list_hosts.js prints what an IDE built on it would list. Its listing is an
approximation of Remote-SSH's (closed source), from the extension's issues #9642, #9683, #10642,
#11064 (design.md, "Lessons from tools that already do this").
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import paramiko
import pytest
from filelock import FileLock

from tests.helpers import IN_CI, Cli, require

JS = Path(__file__).parent.parent / "js"
INSTALLED = JS / "node_modules" / "ssh-config" / "package.json"

IDENTITY = "/keys/id"
JOBS = {
    "Fotxeb": (
        "Instance ready for ssh access. Command: ssh -i </path/to/key> uprod_Fotxeb@203.0.113.7; "
        "working directory: /enc/uprod_Fotxeb/work"
    ),
    "Kt9xPa": (
        "Instance ready for ssh access. Command: ssh -i </path/to/key> -p 2222 "
        "uprod_Kt9xPa@198.51.100.23; working directory: /enc/uprod_Kt9xPa/work"
    ),
}
EXPECTED = {
    "rescale-Fotxeb": {"HostName": "203.0.113.7", "User": "uprod_Fotxeb", "Port": "22"},
    "rescale-Kt9xPa": {"HostName": "198.51.100.23", "User": "uprod_Kt9xPa", "Port": "2222"},
}
ALIASES = set(EXPECTED)

_GLOBAL_THEN_HOSTS = """\
# Personal config
ServerAliveInterval 60
AddKeysToAgent yes
User globaluser

Host gitlab
    HostName gitlab.example.com
    User git
    Port 2222

Host dev dev-alt
    HostName 192.0.2.10
    User alice
    IdentityFile ~/.ssh/id_dev

Host *.corp !bastion.corp
    ProxyJump bastion.corp

Host bastion.corp
    User jump

Host *
    User fallback
    Port 2022
    IdentityFile ~/.ssh/id_ed25519
"""

# A user Match of their own, in the middle, with hosts after it.
_USER_MATCH = """\
Host alpha
  HostName alpha.example.org
  User deploy

Match host buildbox exec "true"
  HostName 198.51.100.20
  User builder

Host beta
  HostName beta.example.org
  Port 2200

Host *
  ForwardAgent no
"""

# Include lines (global, and inside a Host), `=` separators, tabs, odd keyword case.
_INCLUDES = """\
Include ~/.ssh/config.d/*
Include "~/.ssh/work config"

Host=gamma
\tHostname=203.0.113.50
\tUSER=gam

Host delta
    Include ~/.ssh/delta.conf
    HostName delta.example.net
"""

# A Match at the very top (seen in the wild for gpg-agent), a `Match all` at the end. The exec
# is harmless: paramiko (with invoke, a dependency since paramiko 4) runs it on every lookup.
_MATCH_FIRST = """\
Match host * exec "test -S ~/.gnupg/S.gpg-agent.ssh"

Host epsilon
    HostName 192.0.2.99
    User eps

Match all
    ServerAliveInterval 15
"""

USER_CONFIGS = {
    "none": None,
    "empty": "",
    "global-then-hosts": _GLOBAL_THEN_HOSTS,
    "user-match": _USER_MATCH,
    "crlf": _GLOBAL_THEN_HOSTS.replace("\n", "\r\n"),
    "includes": _INCLUDES,
    "match-first": _MATCH_FIRST,
    "no-final-newline": "Host zeta\n    HostName zeta.example.com\n    User z",
}


# --- the npm parser -------------------------------------------------------------------------------


def _npm_ci() -> str | None:
    """Run ``npm ci``; None when it worked, else why not."""
    npm = require("npm")
    command = [npm, "ci", "--prefix", str(JS), "--no-audit", "--no-fund", "--loglevel=error"]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return "`npm ci --prefix tests/js` timed out"
    if proc.returncode != 0:
        return f"`npm ci --prefix tests/js` failed: {(proc.stderr or proc.stdout).strip()[-500:]}"
    return None


def _pinned_version() -> str:
    lock = json.loads((JS / "package-lock.json").read_text())
    version: str = lock["packages"]["node_modules/ssh-config"]["version"]
    return version


def _installed_version() -> str | None:
    if not INSTALLED.exists():
        return None
    version: str = json.loads(INSTALLED.read_text())["version"]
    return version


@pytest.fixture(scope="session")
def npm_parser(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """``node tests/js/list_hosts.js``, with the pinned ssh-config installed (``npm ci`` when
    tests/js/node_modules is missing or stale; one xdist worker at a time)."""
    node = require("node")
    if _installed_version() != _pinned_version():
        shared = tmp_path_factory.getbasetemp().parent  # the same for every xdist worker
        with FileLock(str(shared / "rescale-ssh-npm-ci.lock"), timeout=600):
            problem = None
            if _installed_version() != _pinned_version():
                problem = _npm_ci()
            if problem is None and _installed_version() != _pinned_version():
                problem = f"npm ci did not install ssh-config {_pinned_version()}"
        if problem is not None:
            if IN_CI:
                pytest.fail(problem + " (CI=true: .ci/run must install it)")
            pytest.skip(problem)
    return [node, str(JS / "list_hosts.js")]


def npm_list(npm_parser: list[str], config: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [*npm_parser, str(config)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    listed: dict[str, Any] = json.loads(proc.stdout)
    return listed


# --- helpers --------------------------------------------------------------------------------------


def write_user_config(ssh_config: Path, text: str | None) -> None:
    if text is None:
        return
    ssh_config.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    ssh_config.write_bytes(text.encode())


def add_jobs_and_install(cli: Cli) -> None:
    for job, line in JOBS.items():
        cli("add", job, "--from-log", line, "--identity", IDENTITY)
    cli("install", "--yes", "--identity", IDENTITY)


def included_file(ssh_config: Path) -> Path:
    """The tool's own file that the section includes (it holds the hook's Match)."""
    return ssh_config.parent.parent / ".local" / "state" / "rescale-ssh" / "ssh.conf"


def hook_command(ssh_config: Path) -> str:
    """The exec argument of the hook's Match line, as a parser that unquotes it sees it."""
    lines = [line for line in included_file(ssh_config).read_text().splitlines()
             if line.startswith("Match originalhost ") and " host " in line]
    assert len(lines) == 1, lines
    words = shlex.split(lines[0])
    assert words[1] == "originalhost" and words[3] == "host" and words[5] == "exec", words
    return words[6]


_PARAMIKO_LOOKUP = """
import json, sys, paramiko
try:
    config = paramiko.SSHConfig.from_path(sys.argv[1])
except Exception as error:
    print(json.dumps({"parse error": repr(error)}))
    raise SystemExit
found = {}
for host in sys.argv[2:]:
    try:
        found[host] = dict(config.lookup(host))
    except Exception as error:
        found[host] = f"raised {type(error).__name__}: {error}"
print(json.dumps(found))
"""


def paramiko_lookups(config: Path, hosts: list[str]) -> dict[str, Any]:
    """paramiko's lookup of each host (or what it raised), in a separate process as a program
    using paramiko would run it: paramiko runs a ``Match exec`` through invoke, which reads
    stdin (refused under pytest's capture)."""
    proc = subprocess.run([sys.executable, "-c", _PARAMIKO_LOOKUP, str(config), *hosts],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    found: dict[str, Any] = json.loads(proc.stdout)
    assert "parse error" not in found, found
    return found


def _named_hosts(text: str) -> list[str]:
    """Host names a user config mentions (Host words and Match host values, no patterns)."""
    found = set()
    for line in text.splitlines():
        words = line.replace("=", " ").split()
        if words and words[0].lower() == "host":
            found.update(words[1:])
        elif words and words[0].lower() == "match" and "host" in words:
            found.update(words[words.index("host") + 1].split(","))
    return sorted(name for name in found if not set(name) & set("*?!"))


def unincluded(found: dict[str, Any] | str) -> dict[str, Any] | str:
    return found if isinstance(found, str) else without(found, "include")


def without(options: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in options.items() if key not in keys}


# --- VS Code's parser -----------------------------------------------------------------------------


@pytest.mark.parametrize("user_config", list(USER_CONFIGS), ids=list(USER_CONFIGS))
def test_npm_ssh_config_lists_our_hosts_and_keeps_the_users(
    npm_parser: list[str], cli: Cli, ssh_config: Path, user_config: str
) -> None:
    write_user_config(ssh_config, USER_CONFIGS[user_config])
    before = npm_list(npm_parser, ssh_config) if ssh_config.exists() else {
        "hosts": [], "hosts_until_match": [], "computed": {}, "options": {}
    }
    add_jobs_and_install(cli)
    after = npm_list(npm_parser, ssh_config)

    # Our jobs are listed, with the values ssh would use.
    for alias, expected in EXPECTED.items():
        assert alias in after["hosts"], after["hosts"]
        assert after["computed"][alias] == expected, (alias, after["options"][alias])
        assert after["options"][alias]["identityfile"][0] == IDENTITY
    # Exactly the user's hosts plus ours; also for a parser that stops at the first Match
    # (#9683): the user's file holds no Match of ours.
    assert set(after["hosts"]) == set(before["hosts"]) | ALIASES
    assert set(after["hosts_until_match"]) == set(before["hosts_until_match"]) | ALIASES
    # The user's hosts resolve as before. `host` (the first matching Host line: now our
    # `Host *`) and `include` (ssh-config keeps Include as an option, first value wins) differ.
    for host in before["hosts"]:
        assert after["computed"][host] == before["computed"][host], host
        assert without(after["options"][host], "host", "include") == without(
            before["options"][host], "host", "include"
        ), host
    # No bogus entries from our Match, Include or comments.
    for name in after["hosts"]:
        for bad in ("*", "!", '"', "'", "exec", "originalhost", "Match", "Include", "/", "%"):
            assert bad not in name, (name, after["hosts"])
    # Computing a listed host never reaches our hook's exec (originalhost excludes them).
    for host, commands in after["exec"].items():
        assert not any("launch.py" in command for command in commands), (host, commands)


def test_npm_ssh_config_parses_our_match_as_a_section(
    npm_parser: list[str], cli: Cli, ssh_config: Path
) -> None:
    """The user's file holds no Match of ours: the hook's is in the tool's own file, which a
    parser that does not follow Include never sees. One that does (OpenSSH; Remote-SSH for its
    host list) finds the added jobs' aliases again (the line of their host-key policy) and a
    Match whose criteria are patterns only."""
    add_jobs_and_install(cli)
    assert b"Match" not in ssh_config.read_bytes()
    script = (
        "const {parse} = require('ssh-config');"
        "const fs = require('node:fs');"
        "const c = parse(fs.readFileSync(process.argv[1], 'utf8'));"
        "const m = c.filter(l => /^match$/i.test(l.param));"
        "console.log(JSON.stringify(m.map(l => ({criteria: l.criteria,"
        " config: l.config.filter(s => s.param).map(s => [s.param, s.value])}))));"
    )
    proc = subprocess.run([npm_parser[0], "-e", script, str(included_file(ssh_config))], cwd=JS,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    matches = json.loads(proc.stdout)
    # The static aliases' route through the proxy (only while its program is there), then the
    # hook's.
    route, hook = matches
    assert list(route["criteria"]) == ["originalhost", "exec"]
    assert set(route["criteria"]["originalhost"].split(",")) == {*ALIASES, "!*'*"}
    assert [param for param, _ in route["config"]] == ["ProxyCommand", "ProxyUseFdpass"]
    first, *negated = hook["criteria"]["originalhost"].split(",")
    assert first == "rescale-*"
    assert negated == ["!*'*"], negated
    assert list(hook["criteria"]) == ["originalhost", "host", "exec"]
    assert hook["criteria"]["exec"] == hook_command(ssh_config)
    ((param, value),) = hook["config"]
    assert param == "Include"
    assert value == f"{Path.home()}/.local/state/rescale-ssh/fresh.conf"
    # Listed from there: the added jobs' aliases (the policy line names them), nothing else.
    listed = npm_list(npm_parser, included_file(ssh_config))
    assert set(listed["hosts"]) == ALIASES


@pytest.mark.parametrize("user_config", ["global-then-hosts", "user-match"])
def test_old_remote_ssh_shows_match_words_as_hosts(
    npm_parser: list[str], cli: Cli, ssh_config: Path, user_config: str
) -> None:
    """Remote-SSH before the fix of #10620 (early 2025) listed every word of a Match line
    (#9642, #10642). With the hook's Match in the tool's own file, the user's file gives such a
    parser no word of ours: exactly the jobs are added to the list."""
    write_user_config(ssh_config, USER_CONFIGS[user_config])
    before = npm_list(npm_parser, ssh_config)
    add_jobs_and_install(cli)
    after = npm_list(npm_parser, ssh_config)
    assert set(after["legacy_hosts"]) == set(before["legacy_hosts"]) | ALIASES


# --- paramiko -------------------------------------------------------------------------------------


@pytest.mark.parametrize("user_config", list(USER_CONFIGS), ids=list(USER_CONFIGS))
def test_paramiko_reads_our_hosts_and_keeps_the_users(
    cli: Cli, ssh_config: Path, user_config: str
) -> None:
    text = USER_CONFIGS[user_config]
    write_user_config(ssh_config, text)
    user_hosts = _named_hosts(text or "")
    others = [*user_hosts, "example.org", "rescale"]
    before = paramiko_lookups(ssh_config, others) if text is not None else {}
    add_jobs_and_install(cli)
    after = paramiko_lookups(ssh_config, [*EXPECTED, *others])  # the whole file parses

    for alias, expected in EXPECTED.items():
        found = after[alias]
        assert isinstance(found, dict), found
        assert (found["hostname"], found["user"], found["port"]) == (
            expected["HostName"], expected["User"], expected["Port"]
        ), found
        assert found["identityfile"][0] == IDENTITY
    for host in others:
        # `originalhost` fails before our `exec` (which paramiko would run through invoke).
        assert isinstance(after[host], dict) or before.get(host) == after[host], after[host]
        if text is not None:
            # paramiko keeps Include as an ordinary option (first value wins): ours, at the
            # end of the section, comes first.
            ours = after[host] if isinstance(after[host], str) else after[host].get("include")
            theirs = before[host] if isinstance(before[host], str) else before[host].get("include")
            assert ours == theirs or str(ours).endswith("/rescale-ssh/ssh.conf"), ours
            assert unincluded(after[host]) == unincluded(before[host]), host


def test_paramiko_get_hostnames_with_static_blocks(cli: Cli, ssh_config: Path) -> None:
    write_user_config(ssh_config, _GLOBAL_THEN_HOSTS)
    for job, line in JOBS.items():
        cli("add", job, "--from-log", line, "--identity", IDENTITY)
    names = paramiko.SSHConfig.from_path(str(ssh_config)).get_hostnames()
    assert names >= ALIASES
    assert names >= {"gitlab", "dev", "dev-alt", "bastion.corp"}


def test_paramiko_get_hostnames_after_install(cli: Cli, ssh_config: Path) -> None:
    """paramiko's get_hostnames() raises KeyError('host') on any Match block (paramiko #2014,
    #2339; fix PRs #1674 #1991 #2340 unmerged): `install` once put one in the user's file. The
    hook's Match now lives in the tool's own file, which paramiko does not include."""
    write_user_config(ssh_config, _GLOBAL_THEN_HOSTS)
    add_jobs_and_install(cli)
    names = paramiko.SSHConfig.from_path(str(ssh_config)).get_hostnames()
    assert names >= ALIASES


# --- rescale-ssh code -----------------------------------------------------------------------------


def _fake_program(folder: Path, name: str, log: Path, *, exit_code: int = 0) -> None:
    folder.mkdir(exist_ok=True)
    program = folder / name
    program.write_text(
        f"#!/bin/sh\nfor arg in \"$@\"; do printf '%s\\n' \"$arg\" >> '{log}'; done\n"
        + ("echo 'Remote-SSH is not installed' >&2\n" if exit_code else "")
        + f"exit {exit_code}\n"
    )
    program.chmod(program.stat().st_mode | stat.S_IXUSR)


@pytest.mark.parametrize("name", ["code", "code-insiders"])
def test_code_opens_the_working_directory(
    cli: Cli, ssh_config: Path, tmp_path: Path, name: str
) -> None:
    cli("add", "Fotxeb", "--from-log", JOBS["Fotxeb"], "--identity", IDENTITY)
    log = tmp_path / "argv.txt"
    _fake_program(tmp_path / "bin", name, log)
    result = cli("code", "Fotxeb",
                 env={"PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"})
    uri = "vscode-remote://ssh-remote+rescale-Fotxeb/enc/uprod_Fotxeb/work"
    assert log.read_text().splitlines() == ["--folder-uri", uri]
    assert uri in result.stdout


def test_code_without_code_on_path(cli: Cli, ssh_config: Path, tmp_path: Path) -> None:
    cli("add", "Fotxeb", "--from-log", JOBS["Fotxeb"], "--identity", IDENTITY)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    assert Path(sys.executable).is_absolute()  # the cli fixture needs nothing from PATH
    result = cli("code", "Fotxeb", env={"PATH": str(empty)}, expect=3)  # a local program
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result
    assert lines[0].startswith("rescale-ssh: error: ") and "`code`" in lines[0], result
    assert lines[1].startswith("hint: ") and "code" in lines[1], result
    assert "Traceback" not in result.stderr
    # Nothing is said to open before it is known that nothing can (issue 15's walk: "Opening
    # vscode-remote://..." came first), and the hint's quotes do not nest.
    assert result.stdout == "", result
    assert "\"Shell Command: Install 'code' command in PATH\"" in lines[1], result


def test_code_that_fails(cli: Cli, ssh_config: Path, tmp_path: Path) -> None:
    cli("add", "Fotxeb", "--from-log", JOBS["Fotxeb"], "--identity", IDENTITY)
    _fake_program(tmp_path / "bin", "code", tmp_path / "argv.txt", exit_code=3)
    result = cli("code", "Fotxeb", env={"PATH": str(tmp_path / "bin")}, expect=3)
    lines = result.stderr.splitlines()
    assert lines[0].startswith("rescale-ssh: error: ") and "exited with 3" in lines[0], result
    assert "Remote-SSH is not installed" in lines[0]
    assert all(line.startswith("hint: ") for line in lines[1:]) and len(lines) <= 2
