"""`putty JOB`, `sync --putty`, and the PuTTY sessions `prune`, `sync` and `remove` drop.

The real plink (putty-tools) loads the session rescale-ssh wrote and logs in to the real sshd
(tests/sshd.py); PuTTY on Linux reads ``$HOME/.putty/sessions``, and HOME is the test's. The
.reg form is compared as exact text; the Windows registry through a stand-in for ``winreg``.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from rescale_ssh.desktop import putty, puttysessions
from rescale_ssh.errors import ConfigError, InvalidValueError
from rescale_ssh.target import Target
from tests.fakeplatform import FakePlatform
from tests.helpers import Cli, Result, fingerprint, keygen, require
from tests.sshd import SSHServer

JOB = "Pty1"
ALIAS = f"rescale-{JOB}"
TIMEOUT = 20.0
# A made-up ed25519 public key (bytes 0..31): its fingerprint comes from ssh-keygen -l.
SAMPLE_KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f"


def run(command: list[str], *, expect: int | None = 0, env: dict[str, str] | None = None
        ) -> Result:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT,
                          stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    result = Result(command, proc.returncode, proc.stdout, proc.stderr)
    if expect is not None:
        assert proc.returncode == expect, str(result)
    return result


def sessions(home: Path) -> Path:
    return home / ".putty" / "sessions"


def identity_from(server: SSHServer, home: Path) -> Path:
    """The server's client key as the default identity (~/.ssh/rescale_ed25519)."""
    folder = home / ".ssh"
    folder.mkdir(mode=0o700, exist_ok=True)
    key = folder / "rescale_ed25519"
    shutil.copyfile(server.client_key, key)
    shutil.copyfile(f"{server.client_key}.pub", f"{key}.pub")
    key.chmod(0o600)
    return key


def plink(*args: str, expect: int | None = 0) -> Result:
    return run([require("plink"), *args], expect=expect)


def ssh(config: Path, *args: str) -> Result:
    return run([require("ssh"), "-F", str(config), "-o", "BatchMode=yes", "-o",
                "ConnectTimeout=5", *args])


@pytest.mark.e2e
def test_plink_logs_in_with_the_session_once_the_host_key_is_pinned(
        cli: Cli, sshd: SSHServer, isolated_home: Path, ssh_config: Path) -> None:
    key = identity_from(sshd, isolated_home)
    line = sshd.log_line(JOB)
    first = cli("putty", JOB, "--from-log", line)
    session_file = sessions(isolated_home) / ALIAS
    assert first.stdout.splitlines()[0] == (
        f"Wrote PuTTY session {ALIAS} → {sshd.user}@{sshd.host} port {sshd.port} "
        f"({session_file})")
    assert f"key: {key}.ppk (made from {key}; not encrypted)" in first.stdout
    assert f"the host key of {ALIAS} is not known yet" in first.stderr
    assert stat.S_IMODE(session_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(session_file.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(session_file.parent.parent.stat().st_mode) == 0o700
    text = session_file.read_text()
    assert f"HostName={sshd.host}\nPortNumber={sshd.port}\nProtocol=ssh\n" in text
    assert f"UserName={sshd.user}\nPublicKeyFile={key}.ppk\n" in text
    assert "SSHManualHostKeys" not in text
    # Unknown host key: plink -batch cannot ask, and says so (the user confirms it once).
    refused = plink("-load", ALIAS, "-batch", "whoami", expect=None)
    assert refused.returncode != 0
    assert "host key" in refused.stderr.lower()

    # ssh learns the key under the alias (through a master connection, as the config will
    # have it), and `putty` pins it: plink -batch connects with no question.
    cli("add", JOB, "--from-log", line)
    mux = tempfile.mkdtemp(dir="/tmp")
    options = ["-o", "ControlMaster=auto", "-o", f"ControlPath={mux}/%n", "-o",
               "ControlPersist=60"]
    try:
        ssh(ssh_config, *options, ALIAS, "true")
        pinned = cli("putty", JOB)  # from its block now
    finally:
        run([require("ssh"), "-F", str(ssh_config), *options, "-O", "exit", ALIAS],
            expect=None)
        shutil.rmtree(mux, ignore_errors=True)
    host_key = fingerprint(Path(f"{sshd.host_key}.pub"))
    assert pinned.stdout.splitlines()[0].startswith(f"Updated PuTTY session {ALIAS} → ")
    assert f"host key: pinned ({host_key})" in pinned.stdout
    assert f"key: {key}.ppk (already there; not encrypted)" in pinned.stdout
    assert f"SSHManualHostKeys={host_key}\n" in session_file.read_text()
    assert plink("-load", ALIAS, "-batch", "whoami").stdout.strip() == sshd.user
    assert not (isolated_home / ".putty" / "sshhostkeys").exists()  # pinned: nothing cached
    assert cli("putty", JOB).stdout.startswith(f"Unchanged PuTTY session {ALIAS}")


@pytest.mark.e2e
def test_a_pinned_key_that_is_not_the_servers_is_refused_by_plink(
        cli: Cli, sshd: SSHServer, isolated_home: Path) -> None:
    identity_from(sshd, isolated_home)
    known = isolated_home / ".local/state/rescale-ssh/known_hosts"
    known.parent.mkdir(parents=True)
    known.write_text(f"{ALIAS.lower()} ssh-ed25519 {SAMPLE_KEY}\n")
    result = cli("putty", JOB, "--from-log", sshd.log_line(JOB))
    assert "host key: pinned (SHA256:" in result.stdout
    refused = plink("-load", ALIAS, "-batch", "whoami", expect=None)
    assert refused.returncode != 0
    assert "Host key not in manually configured list" in refused.stderr


def test_a_key_with_a_passphrase_gets_an_encrypted_ppk_and_the_passphrase_is_never_shown(
        cli: Cli, isolated_home: Path, tmp_path: Path) -> None:
    secret = "correct horse battery"
    key = keygen(isolated_home / ".ssh" / "rescale_ed25519", passphrase=secret)
    line = "Command: ssh uprod_Pty1@192.0.2.10"
    refused = cli("putty", JOB, "--from-log", line, expect=2)  # no terminal, no file
    assert "--passphrase-file" in refused.stderr
    assert not (isolated_home / ".putty").exists()
    secret_file = tmp_path / "secret"
    secret_file.write_text(secret + "\n")
    result = cli("putty", JOB, "--from-log", line, "--passphrase-file", str(secret_file))
    assert f"key: {key}.ppk (made from {key}; encrypted with the key's passphrase" in \
        result.stdout
    assert secret not in result.stdout + result.stderr
    assert "Encryption: aes256-cbc\n" in Path(f"{key}.ppk").read_text()
    # The .ppk is there: no passphrase needed again.
    assert "(already there;" in cli("putty", JOB, "--from-log", line).stdout


def test_a_ppk_of_another_key_is_not_replaced(cli: Cli, isolated_home: Path) -> None:
    key = keygen(isolated_home / ".ssh" / "rescale_ed25519")
    other = keygen(isolated_home / "other")
    cli("key", "export", "--ppk", f"{key}.ppk", "--identity", str(other))
    before = Path(f"{key}.ppk").read_bytes()
    result = cli("putty", JOB, "--from-log", "Command: ssh uprod_Pty1@192.0.2.10", expect=3)
    assert f"{key}.ppk holds another key than {key}" in result.stderr
    assert Path(f"{key}.ppk").read_bytes() == before
    assert not (isolated_home / ".putty").exists()


def test_reg_text_is_exact(cli: Cli, isolated_home: Path, tmp_path: Path) -> None:
    key = keygen(isolated_home / ".ssh" / "rescale_ed25519")
    known = isolated_home / ".local/state/rescale-ssh/known_hosts"
    known.parent.mkdir(parents=True)
    known.write_text(f"{ALIAS.lower()} ssh-ed25519 {SAMPLE_KEY}\n")
    sample_pub = tmp_path / "sample.pub"
    sample_pub.write_text(f"ssh-ed25519 {SAMPLE_KEY} sample\n")
    host_key = fingerprint(sample_pub)
    line = ("Instance ready for ssh access. Command: ssh -i </path/to/key> -p 2222 "
            "uprod_Pty1@203.0.113.7; working directory: /enc/uprod_Pty1/work")
    expected = (
        "Windows Registry Editor Version 5.00\r\n"
        "\r\n"
        f"[HKEY_CURRENT_USER\\Software\\SimonTatham\\PuTTY\\Sessions\\{ALIAS}]\r\n"
        '"Present"=dword:00000001\r\n'
        '"HostName"="203.0.113.7"\r\n'
        '"PortNumber"=dword:000008ae\r\n'
        '"Protocol"="ssh"\r\n'
        '"UserName"="uprod_Pty1"\r\n'
        f'"PublicKeyFile"="{key}.ppk"\r\n'
        f'"SSHManualHostKeys"="{host_key}"\r\n'
        "\r\n"
    )
    printed = cli("putty", JOB, "--from-log", line, "--reg", "-")
    # (read in text mode: CRLF arrives as LF; the file below is compared byte for byte)
    assert printed.stdout == expected.replace("\r\n", "\n")
    assert f"key: {key}.ppk (made from {key}; not encrypted)" in printed.stderr
    out = tmp_path / "rescale.reg"
    written = cli("putty", JOB, "--from-log", line, "--reg", str(out))
    assert out.read_bytes() == b"\xff\xfe" + expected.encode("utf-16-le")
    assert f"Wrote {out} (PuTTY session {ALIAS} → uprod_Pty1@203.0.113.7 port 2222)" in \
        written.stdout
    assert not (isolated_home / ".putty").exists()  # --reg writes no session file
    again = cli("putty", JOB, "--from-log", line, "--reg", str(out), expect=3)
    assert "--replace" in again.stderr
    cli("putty", JOB, "--from-log", line, "--reg", str(out), "--replace")


def test_no_key_is_said_before_the_platform_is_asked(
        cli: Cli, platform: FakePlatform, isolated_home: Path) -> None:
    platform.add_job(JOB)
    result = cli("putty", JOB, expect=3)
    assert "rescale_ed25519" in result.stderr and "key generate" in result.stderr
    assert platform.count() == 0
    assert not (isolated_home / ".putty").exists()


def test_reg_escapes_a_windows_path() -> None:
    target = Target.checked(job="Fotxeb", user="uprod_Fotxeb", host="20.242.129.39",
                            port=32100, workdir=None, source="test")
    item = putty.session(target, "C:\\Users\\Jo Bloggs\\.ssh\\rescale_ed25519.ppk", ())
    assert putty.render_reg([item]) == (
        "Windows Registry Editor Version 5.00\r\n\r\n"
        "[HKEY_CURRENT_USER\\Software\\SimonTatham\\PuTTY\\Sessions\\rescale-Fotxeb]\r\n"
        '"Present"=dword:00000001\r\n'
        '"HostName"="20.242.129.39"\r\n'
        '"PortNumber"=dword:00007d64\r\n'
        '"Protocol"="ssh"\r\n'
        '"UserName"="uprod_Fotxeb"\r\n'
        '"PublicKeyFile"="C:\\\\Users\\\\Jo Bloggs\\\\.ssh\\\\rescale_ed25519.ppk"\r\n'
        "\r\n")


def test_session_names_are_escaped_as_putty_escapes_them() -> None:
    assert putty.file_name("rescale-Fotxeb") == "rescale-Fotxeb"
    assert putty.file_name("a b/c%é") == "a%20b%2Fc%25%C3%A9"
    assert putty.registry_name("rescale-Fotxeb") == "rescale-Fotxeb"
    assert putty.registry_name(".a b\\c*?%d.e") == "%2Ea%20b%5Cc%2A%3F%25d.e"


def test_sessions_folder_is_found_as_putty_finds_it(tmp_path: Path) -> None:
    home = tmp_path / "h"
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(tmp_path / "x")}
    assert putty.sessions_dir(env) == home / ".putty" / "sessions"
    (tmp_path / "x" / "putty").mkdir(parents=True)
    assert putty.sessions_dir(env) == tmp_path / "x" / "putty" / "sessions"
    assert putty.sessions_dir({"HOME": str(home)}) == home / ".putty" / "sessions"
    (home / ".config" / "putty").mkdir(parents=True)
    assert putty.sessions_dir({"HOME": str(home)}) == home / ".config/putty/sessions"
    assert putty.sessions_dir({**env, "PUTTYDIR": "/p"}) == Path("/p/sessions")
    assert putty.sessions_dir({**env, "PUTTYDIR": "/p", "PUTTYSESSIONS": "/s"}) == Path("/s")


@pytest.mark.e2e
def test_plink_finds_the_session_in_the_xdg_folder_when_putty_uses_that(
        cli: Cli, sshd: SSHServer, isolated_home: Path) -> None:
    """~/.config/putty exists (a newer PuTTY made it): sessions go there, where plink looks."""
    identity_from(sshd, isolated_home)
    (isolated_home / ".config" / "putty").mkdir(parents=True)
    known = isolated_home / ".local/state/rescale-ssh/known_hosts"
    known.parent.mkdir(parents=True)
    known.write_text(f"{ALIAS.lower()} {sshd.host_public_key}\n")
    cli("putty", JOB, "--from-log", sshd.log_line(JOB))
    assert (isolated_home / ".config/putty/sessions" / ALIAS).exists()
    assert not (isolated_home / ".putty").exists()
    assert plink("-load", ALIAS, "-batch", "whoami").stdout.strip() == sshd.user


def test_a_session_that_is_not_ours_is_never_replaced(cli: Cli, isolated_home: Path) -> None:
    keygen(isolated_home / ".ssh" / "rescale_ed25519")
    folder = sessions(isolated_home)
    folder.mkdir(parents=True)
    theirs = folder / ALIAS
    theirs.write_text("HostName=my.own.host\nUserName=me\n")
    line = "Command: ssh uprod_Pty1@192.0.2.10"
    refused = cli("putty", JOB, "--from-log", line, expect=3)
    assert "was not written by rescale-ssh" in refused.stderr
    assert "--replace" in refused.stderr
    assert theirs.read_text() == "HostName=my.own.host\nUserName=me\n"
    replaced = cli("putty", JOB, "--from-log", line, "--replace")
    assert "replaced the session of that name" in replaced.stdout
    assert "HostName=192.0.2.10\n" in theirs.read_text()
    # Ours now; changed in PuTTY (saved again), it is not ours any more.
    cli("putty", JOB, "--from-log", "Command: ssh uprod_Pty1@192.0.2.11")
    theirs.write_text(theirs.read_text() + "FontHeight=12\n")
    cli("putty", JOB, "--from-log", line, expect=3)


def test_dry_run_writes_nothing(cli: Cli, isolated_home: Path) -> None:
    key = keygen(isolated_home / ".ssh" / "rescale_ed25519")
    result = cli("putty", JOB, "--from-log", "Command: ssh uprod_Pty1@192.0.2.10", "--dry-run")
    assert "HostName=192.0.2.10\n" in result.stdout
    assert f"PublicKeyFile={key}.ppk\n" in result.stdout
    assert "Dry run: nothing was written" in result.stderr
    assert not (isolated_home / ".putty").exists()
    assert not Path(f"{key}.ppk").exists()
    assert not (isolated_home / ".local/state/rescale-ssh/putty").exists()


@pytest.mark.parametrize(("line", "refused"), [
    ("Command: ssh uprod_Pty1@192.0.2.10%0aProxyCommand", "invalid host"),
    ("Command: ssh -p 99999 uprod_Pty1@192.0.2.10", "invalid port"),
    ("Command: ssh 'uprod Pty1'@192.0.2.10", "invalid ssh command"),
    ("Command: ssh .hidden@192.0.2.10", "invalid user name"),
    ("Command: ssh -l '-oProxyCommand=x' 192.0.2.10", "invalid user name"),
])
def test_a_hostile_log_line_is_refused_and_nothing_written(
        cli: Cli, isolated_home: Path, line: str, refused: str) -> None:
    keygen(isolated_home / ".ssh" / "rescale_ed25519")
    result = cli("putty", JOB, "--from-log", line, expect=8)
    assert result.stderr.startswith(f"rescale-ssh: error: {refused} from --from-log: ")
    assert not (isolated_home / ".putty").exists()
    assert not (isolated_home / ".ssh" / "rescale_ed25519.ppk").exists()


def test_text_after_the_ssh_line_never_reaches_the_session(
        cli: Cli, isolated_home: Path) -> None:
    keygen(isolated_home / ".ssh" / "rescale_ed25519")
    cli("putty", JOB, "--from-log", "Command: ssh uprod_Pty1@192.0.2.10\nHostName=evil\n"
        "ProxyCommand=evil")
    text = (sessions(isolated_home) / ALIAS).read_text()
    assert "evil" not in text
    assert [line.split("=")[0] for line in text.splitlines()[1:]] == [
        "Present", "HostName", "PortNumber", "Protocol", "UserName", "PublicKeyFile"]


def test_hostile_values_never_reach_a_session() -> None:
    raw = Target("Fotxeb", "uprod_Fotxeb", "192.0.2.1\nProxyCommand=evil", 22, "/enc/x")
    with pytest.raises(InvalidValueError):
        putty.session(raw, "/home/u/.ssh/k.ppk")
    good = Target.checked(job="Fotxeb", user="u", host="192.0.2.1", port=22, workdir=None,
                          source="test")
    for path in ("/home/u/k.ppk\nHostName=evil", "relative.ppk", '/home/"u"/k.ppk'):
        with pytest.raises(InvalidValueError):
            putty.session(good, path)
    for fingerprint_text in ("SHA256:a,b", "MD5:00", "SHA256:" + "A" * 42 + "\n"):
        with pytest.raises(InvalidValueError):
            putty.session(good, "/home/u/k.ppk", [fingerprint_text])
    with pytest.raises(InvalidValueError):
        putty.session_name("a/../b")


def test_identity_with_a_line_break_is_refused(cli: Cli, isolated_home: Path) -> None:
    result = cli("putty", JOB, "--from-log", "Command: ssh u@192.0.2.1",
                 env={"RESCALE_SSH_IDENTITY": f"{isolated_home}/k\nHostName=evil"}, expect=2)
    assert "identity file" in result.stderr
    assert not (isolated_home / ".putty").exists()


def test_prune_removes_only_our_sessions_of_stopped_jobs(
        cli: Cli, platform: FakePlatform, isolated_home: Path) -> None:
    keygen(isolated_home / ".ssh" / "rescale_ed25519")
    for job, host in (("Old1", "192.0.2.1"), ("Edit1", "192.0.2.2"), ("Live1", "192.0.2.3"),
                      ("Hand1", "192.0.2.4")):
        cli("add", job, "--from-log", f"Command: ssh uprod_{job}@{host}")
    for job in ("Old1", "Edit1", "Live1"):
        cli("putty", job)
    folder = sessions(isolated_home)
    edited = folder / "rescale-Edit1"
    edited.write_text(edited.read_text() + "FontHeight=12\n")  # saved again in PuTTY
    hand = folder / "rescale-Hand1"
    hand.write_text("HostName=192.0.2.4\n")  # the user's own, same name
    mine = folder / "my-server"
    mine.write_text("HostName=example.org\n")
    for job in ("Old1", "Edit1", "Hand1"):
        platform.add_job(job, status="Completed", cluster_status="Stopped")
    platform.add_job("Live1", host="192.0.2.3")

    planned = cli("prune", "--dry-run")
    assert "Would remove PuTTY session rescale-Old1" in planned.stdout
    assert (folder / "rescale-Old1").exists()
    result = cli("prune", "--yes")
    assert "Removed PuTTY session rescale-Old1" in result.stdout
    assert "kept PuTTY session rescale-Edit1" in result.stderr
    assert "Hand1" not in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == [
        "my-server", "rescale-Edit1", "rescale-Hand1", "rescale-Live1"]
    assert hand.read_text() == "HostName=192.0.2.4\n"
    assert mine.read_text() == "HostName=example.org\n"
    # Nothing more to drop: a second prune says nothing of sessions.
    assert "PuTTY" not in cli("prune", "--yes").stdout


def test_remove_removes_the_session_and_asks_first(cli: Cli, isolated_home: Path) -> None:
    keygen(isolated_home / ".ssh" / "rescale_ed25519")
    cli("putty", JOB, "--from-log", "Command: ssh uprod_Pty1@192.0.2.10")  # no block
    session_file = sessions(isolated_home) / ALIAS
    refused = cli("remove", JOB, expect=2)  # only the session: still asks first
    assert f"the PuTTY session {ALIAS}" in refused.stderr
    assert session_file.exists()
    assert "Removed PuTTY session" in cli("remove", JOB, "--yes").stdout
    assert not session_file.exists()


def test_sync_putty_writes_sessions_for_the_jobs_it_keeps(
        cli: Cli, platform: FakePlatform, isolated_home: Path) -> None:
    keygen(isolated_home / ".ssh" / "rescale_ed25519")
    platform.add_job("Run1", host="203.0.113.7", port=2200)
    platform.add_job("Run2", host="203.0.113.8")
    result = cli("sync", "--putty", "--dry-run")
    assert "would write PuTTY session rescale-Run1" not in result.stdout  # no block yet
    assert not (isolated_home / ".putty").exists()
    result = cli("sync", "--putty")
    folder = sessions(isolated_home)
    assert f"Wrote PuTTY session rescale-Run1 ({folder / 'rescale-Run1'})" in result.stdout
    assert "PortNumber=2200\n" in (folder / "rescale-Run1").read_text()
    assert "HostName=203.0.113.8\n" in (folder / "rescale-Run2").read_text()
    assert "PuTTY" not in cli("sync", "--putty").stdout  # unchanged: nothing said
    platform.set_status("Run2", "Completed", "Stopped")
    dropped = cli("sync", "--yes")
    assert "Removed PuTTY session rescale-Run2" in dropped.stdout
    assert sorted(p.name for p in folder.iterdir()) == ["rescale-Run1"]


# -- the Windows registry, through a stand-in for winreg ------------------------------------


class FakeWinreg:
    """What winreg offers that puttysessions uses, over a dict of key path -> values."""

    HKEY_CURRENT_USER = "HKCU"
    KEY_READ, KEY_WRITE = 1, 2
    REG_SZ, REG_DWORD = 1, 4

    def __init__(self) -> None:
        self.keys: dict[str, dict[str, tuple[Any, int]]] = {}

    class _Handle:
        def __init__(self, values: dict[str, tuple[Any, int]]) -> None:
            self.values = values

        def __enter__(self) -> FakeWinreg._Handle:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    def OpenKey(self, root: str, sub: str, reserved: int, access: int) -> _Handle:
        if f"{root}\\{sub}" not in self.keys:
            raise FileNotFoundError(2, "The system cannot find the file specified")
        return self._Handle(self.keys[f"{root}\\{sub}"])

    def CreateKeyEx(self, root: str, sub: str, reserved: int, access: int
                    ) -> _Handle:
        return self._Handle(self.keys.setdefault(f"{root}\\{sub}", {}))

    def EnumValue(self, handle: _Handle, index: int) -> tuple[str, Any, int]:
        items = list(handle.values.items())
        if index >= len(items):
            raise OSError(259, "No more data is available")
        name, (value, kind) = items[index]
        return name, value, kind

    def SetValueEx(self, handle: _Handle, name: str, reserved: int, kind: int,
                   value: Any) -> None:
        assert isinstance(value, int) if kind == self.REG_DWORD else isinstance(value, str)
        handle.values[name] = (value, kind)

    def DeleteKey(self, root: str, sub: str) -> None:
        if self.keys.pop(f"{root}\\{sub}", None) is None:
            raise FileNotFoundError(2, "The system cannot find the file specified")


def test_registry_sessions_are_written_and_dropped_only_when_ours() -> None:
    reg = FakeWinreg()
    backend = puttysessions.Registry(reg)
    target = Target.checked(job="Win1", user="uprod_Win1", host="20.242.129.39", port=32100,
                            workdir=None, source="test")
    item = putty.session(target, "C:\\Users\\jo\\.ssh\\rescale_ed25519.ppk",
                         ["SHA256:" + "A" * 43])
    key = "HKCU\\Software\\SimonTatham\\PuTTY\\Sessions\\rescale-Win1"
    saved = puttysessions.save(backend, item)
    assert saved.state == puttysessions.ADDED
    assert saved.where == "HKEY_CURRENT_USER\\Software\\SimonTatham\\PuTTY\\Sessions\\rescale-Win1"
    assert reg.keys[key] == {
        "Present": (1, 4), "HostName": ("20.242.129.39", 1), "PortNumber": (32100, 4),
        "Protocol": ("ssh", 1), "UserName": ("uprod_Win1", 1),
        "PublicKeyFile": ("C:\\Users\\jo\\.ssh\\rescale_ed25519.ppk", 1),
        "SSHManualHostKeys": ("SHA256:" + "A" * 43, 1)}
    assert puttysessions.save(backend, item).state == puttysessions.UNCHANGED
    # Saved again from PuTTY's window (it writes every setting): not ours any more.
    reg.keys[key]["FontHeight"] = (12, 4)
    moved = putty.session(Target.checked(job="Win1", user="uprod_Win1", host="20.242.129.40",
                                         port=22, workdir=None, source="test"),
                          item.key_file)
    with pytest.raises(ConfigError, match="not written by rescale-ssh"):
        puttysessions.save(backend, moved)
    assert [d.outcome for d in puttysessions.drop(backend, ["Win1"])] == [puttysessions.CHANGED]
    assert key in reg.keys  # kept
    # --replace takes it over (its foreign values gone); then drop removes it.
    assert puttysessions.save(backend, moved, replace=True).replaced
    assert "FontHeight" not in reg.keys[key]
    assert [d.outcome for d in puttysessions.drop(backend, ["Win1"])] == [puttysessions.REMOVED]
    assert key not in reg.keys
    assert puttysessions.drop(backend, ["Win1"]) == []  # no record any more: not listed


def test_uninstall_removes_our_sessions_and_keeps_changed_ones(
        cli: Cli, isolated_home: Path) -> None:
    keygen(isolated_home / ".ssh" / "rescale_ed25519")
    for job, host in (("Un1", "192.0.2.1"), ("Un2", "192.0.2.2")):
        cli("putty", job, "--from-log", f"Command: ssh uprod_{job}@{host}")
    folder = sessions(isolated_home)
    changed = folder / "rescale-Un2"
    changed.write_text(changed.read_text() + "FontHeight=12\n")
    planned = cli("uninstall", "--dry-run")
    assert f"would remove {folder / 'rescale-Un1'}" in planned.stdout
    assert "rescale-Un2" not in planned.stdout
    assert (folder / "rescale-Un1").exists()
    cli("uninstall", "--yes")
    assert sorted(p.name for p in folder.iterdir()) == ["rescale-Un2"]
    assert not (isolated_home / ".local/state/rescale-ssh").exists()


def test_host_keys_are_found_plain_hashed_and_with_a_port(tmp_path: Path) -> None:
    from rescale_ssh.sshconfig import knownhosts

    other_pub = tmp_path / "k.pub"
    other_pub.write_text(f"ssh-ed25519 {SAMPLE_KEY}\n")
    blob = bytes.fromhex(
        "0000000b7373682d65643235353139") + bytes.fromhex("00000020") + bytes(range(32))
    known = tmp_path / "known_hosts"
    known.write_text(f"rescale-hashed ssh-ed25519 {SAMPLE_KEY}\n")
    run([require("ssh-keygen"), "-H", "-f", str(known)], expect=None)
    hashed = known.read_text()
    assert hashed.startswith("|1|"), hashed
    known.write_text(hashed + f"[rescale-port]:2222 ssh-ed25519 {SAMPLE_KEY}\n"
                     f"@cert-authority rescale-ca ssh-ed25519 {SAMPLE_KEY}\n"
                     f"# rescale-comment ssh-ed25519 {SAMPLE_KEY}\n"
                     "rescale-broken ssh-ed25519 not-base64!\n")
    assert knownhosts.host_keys(known, "rescale-Hashed") == [blob]  # ssh lowercases the alias
    assert knownhosts.host_keys(known, "rescale-port") == [blob]
    for alias in ("rescale-ca", "rescale-comment", "rescale-broken", "rescale-other"):
        assert knownhosts.host_keys(known, alias) == []
    assert putty.fingerprint(blob) == fingerprint(other_pub)
