"""The managed section: every byte outside it is sacred, ssh sees exactly what we mean."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from rescale_ssh.errors import ConfigError, InvalidValueError
from rescale_ssh.settings import Settings
from rescale_ssh.sshconfig import hostblock, hosts, section
from rescale_ssh.target import Target
from tests.helpers import Cli, ssh_config_of

USER_CONFIGS: dict[str, bytes] = {
    "lf": b"Host myserver\n    HostName 192.0.2.10\n    User alice\n",
    "crlf": b"Host myserver\r\n  HostName 192.0.2.10\r\n  User alice\r\n",
    "no-final-newline": b"Host myserver\n  HostName 192.0.2.10\n  User alice",
    "tabs-and-equals": b"Host\tmyserver\n\tHostName=192.0.2.10\n\tUser = alice\n\tPort=2200\n",
    "globals-and-star": (
        b"User globaluser\nPort 2222\nIdentityFile /nonexistent/global\n\n"
        b"Host myserver\n  HostName 192.0.2.10\n\nHost *\n  User staruser\n  Port 1\n"
        b"  ServerAliveInterval 5\n"
    ),
    "match-and-include": (
        b"Include /nonexistent/include/*.conf\n"
        b"Match host myserver exec \"false\"\n  User nobody\n"
        b"Match originalhost myserver\n  HostName 192.0.2.10\n  User alice\n"
    ),
    "non-utf8-comment": b"# caf\xe9 cr\xe8me \xff\xfe\nHost myserver\n  HostName 192.0.2.10\n",
    "empty": b"",
    "only-comments": b"# my config\n\n",
}
USER_HOSTS = ("myserver", "other.example.org", "rescale-Other")


def settings(path: Path) -> Settings:
    return Settings(ssh_config_flag=str(path), identity_flag="/keys/rescale id")


def target(job: str = "Fotxeb", host: str = "203.0.113.7", port: int = 22) -> Target:
    return Target(job=job, user=f"uprod_{job}", host=host, port=port,
                  workdir=f"/enc/uprod_{job}/work")


@pytest.mark.parametrize("name", sorted(USER_CONFIGS))
def test_bytes_outside_the_section_are_kept(name: str, ssh_config: Path) -> None:
    original = USER_CONFIGS[name]
    ssh_config.parent.mkdir(mode=0o700)
    ssh_config.write_bytes(original)
    hosts.add(settings(ssh_config), target("Fotxeb"))
    hosts.add(settings(ssh_config), target("Ptczhb", port=2222))
    data = ssh_config.read_bytes()
    located = section.locate(data, path=str(ssh_config))
    assert located.top is not None and located.top.start == 0
    assert data[located.top.stop :] == original
    hosts.remove(settings(ssh_config), "Fotxeb")
    data = ssh_config.read_bytes()
    top = section.locate(data, path="x").top
    assert top is not None and data[top.stop :] == original
    hosts.remove(settings(ssh_config), "Ptczhb")
    assert ssh_config.read_bytes() == original


@pytest.mark.parametrize("name", sorted(USER_CONFIGS))
def test_users_hosts_resolve_exactly_as_before(name: str, ssh_config: Path) -> None:
    ssh_config.parent.mkdir(mode=0o700)
    ssh_config.write_bytes(USER_CONFIGS[name])
    before = {h: ssh_config_of(str(ssh_config), h) for h in USER_HOSTS}
    hosts.add(settings(ssh_config), target("Fotxeb"))
    after = {h: ssh_config_of(str(ssh_config), h) for h in USER_HOSTS}
    assert after == before


@pytest.mark.parametrize("name", sorted(USER_CONFIGS))
def test_alias_gets_our_values_despite_user_globals(name: str, ssh_config: Path) -> None:
    ssh_config.parent.mkdir(mode=0o700)
    ssh_config.write_bytes(USER_CONFIGS[name])
    hosts.add(settings(ssh_config), target("Fotxeb", port=2200))
    got = ssh_config_of(str(ssh_config), "rescale-Fotxeb")
    assert got["hostname"] == ["203.0.113.7"]
    assert got["user"] == ["uprod_Fotxeb"]
    assert got["port"] == ["2200"]
    # IdentityFile accumulates: ours must come first so it is tried first.
    assert got["identityfile"][0] == "/keys/rescale id"
    assert got["identitiesonly"] == ["yes"]
    assert got["stricthostkeychecking"] == ["accept-new"]
    # ssh lowercases HostKeyAlias itself (ssh.c), so compare that way.
    assert got["hostkeyalias"] == ["rescale-fotxeb"]
    assert got["serveraliveinterval"] == [str(hostblock.KEEPALIVE_INTERVAL)]
    assert got["userknownhostsfile"] == [settings(ssh_config).known_hosts]


def test_missing_file_and_folder_are_created_private(ssh_config: Path) -> None:
    assert not ssh_config.parent.exists()
    hosts.add(settings(ssh_config), target())
    assert stat.S_IMODE(ssh_config.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(ssh_config.stat().st_mode) == 0o600
    hosts.remove(settings(ssh_config), "Fotxeb")
    assert ssh_config.read_bytes() == b""


def test_nothing_is_written_when_nothing_changed(ssh_config: Path) -> None:
    hosts.add(settings(ssh_config), target())
    first = ssh_config.stat()
    result = hosts.add(settings(ssh_config), target())
    second = ssh_config.stat()
    assert not result.change.changed
    assert (first.st_ino, first.st_mtime_ns) == (second.st_ino, second.st_mtime_ns)
    assert not hosts.remove(settings(ssh_config), "Nothere").change.changed
    assert ssh_config.stat().st_ino == first.st_ino


def test_dry_run_writes_nothing(ssh_config: Path) -> None:
    ssh_config.parent.mkdir(mode=0o700)
    ssh_config.write_bytes(b"Host a\n")
    result = hosts.add(settings(ssh_config), target(), dry_run=True)
    assert result.change.changed
    assert ssh_config.read_bytes() == b"Host a\n"


def test_symlinked_config_stays_a_symlink_with_mode_kept(ssh_config: Path, tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / "ssh_config"
    real.write_bytes(b"Host mine\n")
    real.chmod(0o640)
    ssh_config.parent.mkdir(mode=0o700)
    ssh_config.symlink_to(real)
    hosts.add(settings(ssh_config), target())
    assert ssh_config.is_symlink()
    assert os.readlink(ssh_config) == str(real)
    assert b"Host rescale-Fotxeb" in real.read_bytes()
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert not [p for p in dotfiles.iterdir() if p.name != "ssh_config"], "temp file left behind"


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_owner_is_kept(ssh_config: Path) -> None:
    ssh_config.parent.mkdir(mode=0o700)
    ssh_config.write_bytes(b"Host mine\n")
    os.chown(ssh_config, 65534, 65534)
    hosts.add(settings(ssh_config), target())
    info = ssh_config.stat()
    assert (info.st_uid, info.st_gid) == (65534, 65534)


def test_a_section_below_lines_of_the_users_goes_back_to_the_top(ssh_config: Path) -> None:
    """The user prepended a Host block: our section's Host lines ended it early (their lines
    below the section lost that block's scope), and ours no longer came first. The next write
    puts the section back at the top; the user's bytes are contiguous again, unchanged."""
    ssh_config.parent.mkdir(mode=0o700)
    hosts.add(settings(ssh_config), target("Fotxeb"))
    ours = ssh_config.read_bytes()
    ssh_config.write_bytes(b"Host first\n  User a\n" + ours + b"  Port 2200\nHost last\n")
    hosts.add(settings(ssh_config), target("Ptczhb"))
    data = ssh_config.read_bytes()
    top = section.locate(data, path="x").top
    assert top is not None and top.start == 0
    assert data[top.stop :] == b"Host first\n  User a\n  Port 2200\nHost last\n"
    assert data.count(b"Host rescale-") == 2
    assert ssh_config_of(str(ssh_config), "first")["port"] == ["2200"]


DAMAGED = {
    "begin-only": b"# >>> rescale-ssh managed section >>>\nHost rescale-X\n",
    "end-only": b"Host a\n# <<< rescale-ssh managed section <<<\n",
    "two-sections": (
        b"# >>> rescale-ssh managed a >>>\n# <<< rescale-ssh managed a <<<\n"
        b"# >>> rescale-ssh managed b >>>\n# <<< rescale-ssh managed b <<<\n"
    ),
    "reversed": b"# <<< rescale-ssh managed section <<<\n# >>> rescale-ssh managed section >>>\n",
}


@pytest.mark.parametrize("name", sorted(DAMAGED))
def test_damaged_section_is_refused(name: str, ssh_config: Path, cli: Cli) -> None:
    ssh_config.parent.mkdir(mode=0o700)
    ssh_config.write_bytes(DAMAGED[name])
    with pytest.raises(ConfigError, match="damaged"):
        hosts.add(settings(ssh_config), target())
    assert ssh_config.read_bytes() == DAMAGED[name]
    result = cli("add", "Fotxeb", "--from-log", "Command: ssh u@192.0.2.1", expect=3)
    assert result.stderr.startswith("rescale-ssh: error: the rescale-ssh section of ")
    assert "hint:" in result.stderr
    assert ssh_config.read_bytes() == DAMAGED[name]


def test_tampered_section_values_are_refused(ssh_config: Path) -> None:
    hosts.add(settings(ssh_config), target())
    data = ssh_config.read_bytes().replace(b"HostName 203.0.113.7",
                                          b"HostName 203.0.113.7 -oProxyCommand=touch")
    ssh_config.write_bytes(data)
    with pytest.raises(InvalidValueError, match="host"):
        hosts.add(settings(ssh_config), target("Other"))
    assert ssh_config.read_bytes() == data


def test_odd_local_paths_reach_ssh_exactly(ssh_config: Path, monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    odd_state = tmp_path / "state dir with spaces %h"
    monkeypatch.setenv("XDG_STATE_HOME", str(odd_state))
    key = str(tmp_path / "my keys" / "id 100%")
    hosts.add(Settings(ssh_config_flag=str(ssh_config), identity_flag=key), target())
    got = ssh_config_of(str(ssh_config), "rescale-Fotxeb")
    # ssh -G prints IdentityFile before token expansion ("%%" is expanded to "%" when used).
    assert got["identityfile"][0] == key.replace("%", "%%")
    assert got["userknownhostsfile"] == [str(odd_state / "rescale-ssh" / "known_hosts")]
    entry = hosts.find(Settings(ssh_config_flag=str(ssh_config)), "Fotxeb")
    assert entry.identity == key
