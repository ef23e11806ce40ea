"""What the config writer renders: odd but valid local paths reach ssh as one literal
argument, and whatever the writer accepts ssh reads back exactly (property-based)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rescale_ssh import paths
from rescale_ssh.errors import InvalidValueError
from rescale_ssh.sshconfig.hostblock import HostEntry
from rescale_ssh.sshconfig.section import Section
from rescale_ssh.target import Target
from tests.fakeplatform import FakePlatform
from tests.helpers import Cli, require, ssh_config_of
from tests.hostile import Figures, ssh
from tests.sshd import free_port

# -- quoting: odd but valid local paths reach ssh as one literal argument ----------------------


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


# -- the writer, property-based -----------------------------------------------------------------

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
