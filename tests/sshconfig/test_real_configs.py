"""Issue 12, item 6, against real users' configs: ``ssh rescale-<job never added>`` gets the
job's HostName, User, Port, IdentityFile, HostKeyAlias and known-hosts file on its very first
run, for each of the configs from public dotfiles in ../shared/real-ssh-configs/ (SOURCES.tsv
says where each is from); the user's hosts resolve as before, and the npm ``ssh-config`` parser
(VS Code Remote-SSH) and paramiko list and compute them as before.

The configs are never copied into the project (each test writes one into its tmp_path), and
their ``Match exec`` commands are never run: ssh runs them through ``$SHELL -c``, and ``$SHELL``
is a stub that runs only rescale-ssh's own hook script and refuses (exit 1: "no match")
anything else, recording it; the npm parser's exec is stubbed by tests/js/list_hosts.js,
paramiko's (invoke) here.

Some configs do not parse on this machine's OpenSSH (9.2: ``Match tagged`` is 9.4+, macOS's
``UseKeychain`` without ``IgnoreUnknown``): ssh refuses them for every host, with or without
rescale-ssh. For those, ssh must fail after install exactly as before, and the job's values
cannot be checked (counted in the summary's figures).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import paramiko
import paramiko.config
import pytest

import tests.sshconfig.test_parsers as parsers
from tests.fakeplatform import FakePlatform
from tests.helpers import IN_CI, Cli, require

FOLDER = Path(__file__).resolve().parents[3] / "shared" / "real-ssh-configs"
NAMES = sorted(path.name for path in FOLDER.glob("*.conf")) if FOLDER.is_dir() else []

HOSTS_PER_CONFIG = 16  # user hosts checked with ssh and paramiko (the first ones named)
EXTRA_HOSTS = ("github.com",)  # what `Host *` and leading globals give any other host

JIT_JOB = "Jit7Qa"  # never added: resolved by the hook on its first `ssh`
JIT = {"hostname": "198.51.100.77", "user": "uprod_Jit7Qa", "port": "2222"}
STATIC_JOB = "Stat9Kb"  # added with `add --from-log`
STATIC = {"hostname": "203.0.113.45", "user": "uprod_Stat9Kb", "port": "2200"}
STATIC_LOG = (
    "Instance ready for ssh access. Command: ssh -i </path/to/key> -p 2200 "
    "uprod_Stat9Kb@203.0.113.45; working directory: /enc/uprod_Stat9Kb/work"
)

npm_parser = parsers.npm_parser  # the session fixture: node + tests/js/list_hosts.js


# --- the folder -----------------------------------------------------------------------------------


def _folder_missing() -> None:
    message = f"{FOLDER} is missing (the real users' configs of issue 12)"
    if IN_CI:
        pytest.fail(message + " (CI=true: it must be there)")
    pytest.skip(message)


def test_the_folder_holds_what_sources_lists() -> None:
    if not NAMES:
        _folder_missing()
    rows = (FOLDER / "SOURCES.tsv").read_text().splitlines()
    assert rows[0].split("\t")[0] == "file"
    listed = sorted(row.split("\t")[0] for row in rows[1:] if row.strip())
    assert listed == NAMES


# --- what the user's config names -----------------------------------------------------------------

_HOST_LINE = re.compile(r"\s*host(?:\s*=\s*|\s+)(.*)", re.IGNORECASE)


def user_hosts(text: str) -> list[str]:
    """Hosts a config names literally on its Host lines (no patterns), in file order."""
    found: list[str] = []
    for line in text.splitlines():
        match = _HOST_LINE.fullmatch(line)
        if match is None:
            continue
        for word in match.group(1).split():
            if word.startswith("#"):
                break
            word = word.strip('"')
            literal = word and not word.startswith("-") and not set(word) & set("*?!%\"'")
            if literal and word not in found:
                found.append(word)
    return found


# --- ssh, with a shell that runs nothing of the user's ----------------------------------------


class Shell:
    """The ``$SHELL`` ssh runs ``Match exec`` commands with: a script that runs a command only
    when it is rescale-ssh's hook (it starts with the quoted path of the state folder's
    ``hook``), and otherwise exits 1 without running anything. Both kinds are logged."""

    def __init__(self, folder: Path, hook: Path) -> None:
        folder.mkdir()
        self.ran = folder / "ran.log"
        self.refused = folder / "refused.log"
        self.path = folder / "shell"
        # The hook's exec as included.py writes it: the script's path in single quotes.
        prefix = self.prefix = "'" + str(hook).replace("'", "'\\''") + "' "
        self.path.write_text(
            "#!/bin/sh\n"
            "# ssh runs: $SHELL -c COMMAND\n"
            f'case "$2" in\n'
            f'  {shlex.quote(prefix)}*)\n'
            f'    printf "%s\\n" "$2" >> {shlex.quote(str(self.ran))}\n'
            '    exec /bin/sh -c "$2" ;;\n'
            "esac\n"
            f'printf "%s\\n" "$2" >> {shlex.quote(str(self.refused))}\n'
            "exit 1\n"
        )
        self.path.chmod(0o755)

    def take(self) -> tuple[list[str], list[str]]:
        """(ran, refused) since the last call."""
        logs = []
        for log in (self.ran, self.refused):
            logs.append(log.read_text().splitlines() if log.exists() else [])
            log.unlink(missing_ok=True)
        return logs[0], logs[1]


Answer = tuple[int, str, str]  # ssh -G: returncode, stdout, stderr


def ssh_g(config: Path, hosts: list[str], shell: Shell) -> dict[str, Answer]:
    ssh = require("ssh")
    env = {**os.environ, "SHELL": str(shell.path)}

    def one(host: str) -> Answer:
        proc = subprocess.run([ssh, "-G", "-F", str(config), host], env=env, timeout=60,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              errors="replace")
        return proc.returncode, proc.stdout, proc.stderr

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(hosts, pool.map(one, hosts), strict=True))


def options(answer: Answer) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in answer[1].splitlines():
        key, _, value = line.partition(" ")
        found.setdefault(key, []).append(value)
    return found


def lines_above(written: bytes, theirs: bytes) -> int:
    """How many lines rescale-ssh put above the user's, which it keeps byte for byte."""
    start = written.find(theirs)
    assert start >= 0, "the user's lines must be kept, unchanged and together"
    return written.count(b"\n", 0, start)


def shifted(answer: Answer, config: Path, offset: int) -> Answer:
    """The answer with line numbers in messages about ``config`` moved back by ``offset``
    (the lines of the section above the user's own)."""
    pattern = re.compile(re.escape(str(config)) + r"(:? line )(\d+)")
    stderr = pattern.sub(lambda m: f"{config}{m.group(1)}{int(m.group(2)) - offset}", answer[2])
    return answer[0], answer[1], stderr


# --- the parsers ----------------------------------------------------------------------------------


def without(options: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in options.items() if key not in keys}


class Npm:
    """tests/js/list_hosts.js on a file: started at once, read when needed (node needs about
    0.2 s; the test does other work meanwhile)."""

    def __init__(self, npm_parser: list[str], config: Path) -> None:
        self.proc = subprocess.Popen([*npm_parser, str(config)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)

    def result(self) -> dict[str, Any] | str:
        """What it printed, or how ssh-config failed."""
        stdout, stderr = self.proc.communicate(timeout=60)
        if self.proc.returncode != 0:
            error = [line for line in stderr.splitlines() if "Error" in line]
            return f"exit {self.proc.returncode}: {error[:1] or stderr[-300:]}"
        listed: dict[str, Any] = json.loads(stdout)
        return listed


def paramiko_lookups(config: Path, hosts: list[str]) -> dict[str, Any] | str:
    """paramiko's lookup of each host (without ``include``, which paramiko keeps as an
    option), or what it raised. ``paramiko.config.invoke`` is replaced (the paramiko_execs
    fixture): a ``Match exec`` is recorded, not run, and fails."""
    try:
        parsed = paramiko.SSHConfig.from_path(str(config))
    except Exception as error:
        return f"parse raised {type(error).__name__}: {error}"
    found: dict[str, Any] = {}
    for host in hosts:
        try:
            found[host] = without(dict(parsed.lookup(host)), "include")
        except Exception as error:
            found[host] = f"raised {type(error).__name__}: {error}"
    return found


@pytest.fixture
def paramiko_execs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ``Match exec`` commands paramiko wanted to run (none is run: each fails)."""
    asked: list[str] = []

    def run(command: str, **_: Any) -> SimpleNamespace:
        asked.append(command)
        return SimpleNamespace(ok=False)

    monkeypatch.setattr(paramiko.config, "invoke", SimpleNamespace(run=run))
    return asked


# --- the test -------------------------------------------------------------------------------------


def check_job(found: dict[str, list[str]], expected: dict[str, str], job: str,
              identity: str, known_hosts: str) -> list[str]:
    got = {
        "hostname": found.get("hostname"),
        "user": found.get("user"),
        "port": found.get("port"),
        "identityfile[0]": found.get("identityfile", [None])[:1],
        "hostkeyalias": found.get("hostkeyalias"),
        "userknownhostsfile": found.get("userknownhostsfile"),
        "stricthostkeychecking": found.get("stricthostkeychecking"),
    }
    want = {
        **{key: [value] for key, value in expected.items()},
        "identityfile[0]": [identity],
        "hostkeyalias": [f"rescale-{job}".lower()],
        "userknownhostsfile": [known_hosts],
        "stricthostkeychecking": ["accept-new"],  # a new cluster's key, taken once
    }
    return [f"{key}: {got[key]} != {want[key]}" for key in want if got[key] != want[key]]


@pytest.mark.parametrize("name", NAMES or ["missing"])
def test_real_config(
    name: str, cli: Cli, ssh_config: Path, platform: FakePlatform, isolated_home: Path,
    tmp_path: Path, npm_parser: list[str], paramiko_execs: list[str],
    figures: Callable[[str, int], None], monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not NAMES:
        _folder_missing()
    data = (FOLDER / name).read_bytes()
    ssh_config.parent.mkdir(mode=0o700)
    ssh_config.write_bytes(data)
    # A desktop session has it; 025.conf's `RemoteForward ${XDG_RUNTIME_DIR}/...` needs it
    # (short: a socket path longer than sun_path is "Bad forwarding specification").
    monkeypatch.setenv("XDG_RUNTIME_DIR", f"/run/user/{os.getuid()}")
    state = isolated_home / ".local" / "state" / "rescale-ssh"
    shell = Shell(tmp_path / "shell", state / "hook")
    identity = str(isolated_home / ".ssh" / "rescale test key")
    known_hosts = str(state / "known_hosts")
    hosts = [*user_hosts(data.decode("utf-8", "replace"))[:HOSTS_PER_CONFIG], *EXTRA_HOSTS]
    problems: list[str] = []
    # ssh-config reads the file only (no Include), so a copy of it reads the same; it is
    # read while ssh runs.
    theirs = tmp_path / "theirs.conf"
    theirs.write_bytes(data)
    npm_reading = Npm(npm_parser, theirs)

    # Before: ssh, the npm parser and paramiko on the user's own config.
    before = ssh_g(ssh_config, hosts, shell)
    ran, refused_before = shell.take()
    assert ran == []
    figures("real configs: Match exec of the user's refused by the stub shell, not run",
            len(refused_before))
    figures("real configs: user hosts compared (ssh -G, paramiko)", len(hosts))
    paramiko_before = paramiko_lookups(ssh_config, hosts)
    paramiko_asked_before = Counter(paramiko_execs)
    paramiko_execs.clear()
    parses = all(code == 0 for code, _, _ in before.values())

    # Install; the job was never added: its first `ssh -G` runs the hook.
    cli("install", "--yes", "--identity", identity)
    offset = lines_above(ssh_config.read_bytes(), data)
    platform.add_job(JIT_JOB, user=JIT["user"], host=JIT["hostname"], port=int(JIT["port"]))
    (jit,) = ssh_g(ssh_config, [f"rescale-{JIT_JOB}"], shell).values()
    ran, _ = shell.take()
    if parses:
        if jit[0] != 0:
            problems.append(f"first connection: ssh -G failed: {jit[2].strip()}")
        else:
            problems += [f"first connection: {problem}" for problem in
                         check_job(options(jit), JIT, JIT_JOB, identity, known_hosts)]
            if ran != [f"{shell.prefix}'rescale-{JIT_JOB}'"]:
                problems.append(f"first connection: the hook ran {ran}, not once")
        figures("real configs: first connection checked", 1)
    else:
        figures(f"real configs: job not checked, {name} does not parse on this OpenSSH", 1)
        # ssh refuses the job as it refused any host before.
        assert shifted(jit, ssh_config, offset) == (before["github.com"][0], "",
                                                    before["github.com"][2]), jit

    def users_hosts_as_before(when: str) -> None:
        now = ssh_g(ssh_config, hosts, shell)
        ran, refused = shell.take()
        for host in hosts:
            if shifted(now[host], ssh_config, offset) != before[host]:
                lines_now, lines_was = set(now[host][1].splitlines()), set(
                    before[host][1].splitlines())
                problems.append(f"{when}: ssh -G {host} changed: exit {now[host][0]}, "
                                f"{now[host][2].strip()[:300]!r}, "
                                f"+{sorted(lines_now - lines_was)[:5]} "
                                f"-{sorted(lines_was - lines_now)[:5]} (was exit "
                                f"{before[host][0]}, {before[host][2].strip()[:300]!r})")
        if ran:
            problems.append(f"{when}: the hook ran for the user's hosts: {ran}")
        if any(command.startswith(shell.prefix) for command in refused):
            problems.append(f"{when}: the stub shell refused our hook: {refused}")
        if Counter(refused) != Counter(refused_before):
            problems.append(f"{when}: the user's Match exec asked differently: "
                            f"{sorted(refused)} vs {sorted(refused_before)}")

    users_hosts_as_before("after install")

    # A static job: `add --from-log`, no API; its block is in the section.
    cli("add", STATIC_JOB, "--from-log", STATIC_LOG, "--identity", identity)
    offset = lines_above(ssh_config.read_bytes(), data)
    (static,) = ssh_g(ssh_config, [f"rescale-{STATIC_JOB}"], shell).values()
    ran, _ = shell.take()
    if parses:
        if static[0] != 0:
            problems.append(f"static job: ssh -G failed: {static[2].strip()}")
        else:
            problems += [f"static job: {problem}" for problem in
                         check_job(options(static), STATIC, STATIC_JOB, identity, known_hosts)]
        if ran:
            problems.append(f"static job: the hook ran: {ran}")
    users_hosts_as_before("after add")

    # The parsers: the same user hosts, plus the static alias only, computed as before.
    alias = f"rescale-{STATIC_JOB}"
    npm_reading_after = Npm(npm_parser, ssh_config)
    # paramiko first, while node reads.
    paramiko_after = paramiko_lookups(ssh_config, hosts)
    if paramiko_after != paramiko_before:
        if isinstance(paramiko_before, str) or isinstance(paramiko_after, str):
            problems.append(f"paramiko: {paramiko_after!r} vs {paramiko_before!r}")
        else:
            problems += [f"paramiko looks {host} up differently: {paramiko_after[host]} vs "
                         f"{paramiko_before[host]}" for host in hosts
                         if paramiko_after[host] != paramiko_before[host]]
    if Counter(paramiko_execs) != paramiko_asked_before:
        problems.append(f"paramiko's Match exec asked differently: {paramiko_execs}")
    paramiko_execs.clear()
    if not isinstance(paramiko_after, str):
        found = paramiko_lookups(ssh_config, [alias])
        assert isinstance(found, dict)
        got = found[alias] if isinstance(found[alias], str) else {
            key: found[alias].get(key) for key in STATIC}
        # When paramiko raises the same way for every host of a config (043.conf's
        # CanonicalizeHostname without CanonicalDomains: KeyError), it does for ours too.
        errors = {value for value in paramiko_after.values() if isinstance(value, str)}
        every = len(errors) == 1 and all(isinstance(v, str) for v in paramiko_after.values())
        if got != (next(iter(errors)) if every else STATIC):
            problems.append(f"paramiko looks {alias} up as {got}")
        if any(str(state) in command for command in paramiko_execs):
            problems.append(f"paramiko ran our hook: {paramiko_execs}")
    npm_after, npm_before = npm_reading_after.result(), npm_reading.result()
    if isinstance(npm_before, str) or isinstance(npm_after, str):
        if npm_after != npm_before:
            problems.append(f"ssh-config: {npm_after!r} vs {npm_before!r}")
    else:
        for key in ("hosts", "hosts_until_match", "legacy_hosts"):
            if npm_after[key] != [alias, *npm_before[key]]:
                problems.append(f"ssh-config {key}: {npm_after[key]} vs {npm_before[key]}")
        for host in npm_before["hosts"]:
            if host not in npm_after["options"]:
                continue  # reported above
            now = without(npm_after["options"][host], "host", "include")
            was = without(npm_before["options"][host], "host", "include")
            if npm_after["computed"][host] != npm_before["computed"][host] or now != was:
                problems.append(f"ssh-config computes {host} differently: {now} vs {was}")
            if npm_after["exec"][host] != npm_before["exec"][host]:
                problems.append(f"ssh-config execs for {host}: {npm_after['exec'][host]}")
        computed = npm_after["computed"].get(alias)
        want = {"HostName": STATIC["hostname"], "User": STATIC["user"], "Port": STATIC["port"]}
        if computed != want:
            problems.append(f"ssh-config computes {alias}: {computed}")
    assert not problems, f"{name}:\n" + "\n".join(problems)
