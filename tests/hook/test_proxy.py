"""``rescale-ssh proxy``: the socket it hands to ssh (issue 16: fewer round trips)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rescale_ssh.sshconfig import toolfiles
from tests.fakeplatform import FakePlatform
from tests.helpers import Cli, require, ssh_config_of
from tests.sshd import SSHServer

pytestmark = pytest.mark.skipif(sys.platform == "win32",
                                reason="no descriptor passing on Windows (the proxy relays)")


def run_proxy(*args: str) -> tuple[subprocess.CompletedProcess[bytes], socket.socket]:
    """The proxy run as ssh runs it with ProxyUseFdpass (stdout: a Unix socket); the
    connected socket it passed back."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        proc = subprocess.run([sys.executable, "-m", "rescale_ssh", "proxy", *args],
                              stdout=theirs.fileno(), stdin=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=30, check=False)
        theirs.close()
        ours.settimeout(10)
        _, fds, _, _ = socket.recv_fds(ours, 1, 1)
    assert proc.returncode == 0, proc.stderr
    assert len(fds) == 1
    return proc, socket.socket(fileno=fds[0])


def test_the_socket_handed_to_ssh_has_nagle_off() -> None:
    """ssh turns Nagle's algorithm off only after the key exchange: until then its small
    packets wait for the server's delayed ACK (~1.2 round trips a connection on a WAN link)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        _, sock = run_proxy("127.0.0.1", str(port))
        with sock:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            assert sock.getpeername() == ("127.0.0.1", port)
            accepted, _ = server.accept()
            with accepted:  # the very connection, usable as it is
                sock.sendall(b"hello")
                assert accepted.recv(5) == b"hello"


# -- the static blocks (`add`) through the same proxy --------------------------------------------


def state_of(home: Path) -> Path:
    return home / ".local" / "state" / "rescale-ssh"


def ssh(config: Path, alias: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require("ssh"), "-F", str(config), "-o", "BatchMode=yes",
                           "-o", "ControlPath=none", alias, *command],
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


def added(cli: Cli, platform: FakePlatform, sshd: SSHServer, job: str) -> None:
    platform.add_job(job, user=sshd.user, host=sshd.host, port=sshd.port,
                     workdir=str(sshd.new_workdir(job)))
    cli("add", job, env={"RESCALE_SSH_IDENTITY": str(sshd.client_key)})


def test_a_static_block_connects_through_the_proxy(
    cli: Cli, ssh_config: Path, platform: FakePlatform, sshd: SSHServer
) -> None:
    """The socket then has Nagle off from the start (issue 16: ~1.2 round trips less)."""
    added(cli, platform, sshd, "Stat1")
    options = ssh_config_of(str(ssh_config), "rescale-Stat1")
    assert options["proxycommand"][0].endswith(" proxy %h %p")
    assert options["proxyusefdpass"] == ["yes"]
    result = ssh(ssh_config, "rescale-Stat1", "echo", "through")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "through"
    ssh_config.write_text(ssh_config.read_text() + "Host mine\n    HostName 192.0.2.10\n")
    assert "proxycommand" not in ssh_config_of(str(ssh_config), "mine")  # others: untouched


def test_a_static_block_whose_program_is_gone_connects_directly(
    cli: Cli, ssh_config: Path, platform: FakePlatform, sshd: SSHServer, isolated_home: Path
) -> None:
    """Uninstalled or moved without `rescale-ssh uninstall`: ssh connects as it did before the
    proxy was there, instead of failing to start it."""
    added(cli, platform, sshd, "Gone2")
    conf = state_of(isolated_home) / "ssh.conf"
    python, launcher = toolfiles.program()
    text = conf.read_text()
    assert launcher in text
    for missing in ({launcher: "/nonexistent/rescale_ssh/launch.py"},
                    {python: "/nonexistent/bin/python"}):
        changed = text
        for old, new in missing.items():
            changed = changed.replace(old, new)
        conf.write_text(changed)
        assert "proxycommand" not in ssh_config_of(str(ssh_config), "rescale-Gone2")
        result = ssh(ssh_config, "rescale-Gone2", "echo", "direct")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "direct"


@pytest.mark.parametrize("theirs", [b"Host *\n    ProxyJump bastion.example\n",
                                    b"Host *\n\tProxyCommand=nc -X connect -x proxy:3128 %h %p\n"])
def test_a_config_that_routes_its_own_connections_keeps_its_route(
    cli: Cli, ssh_config: Path, platform: FakePlatform, sshd: SSHServer, isolated_home: Path,
    theirs: bytes
) -> None:
    """A user's bastion or HTTP proxy for every host comes after the section: a proxy of ours
    would win over it and try to reach the cluster directly."""
    ssh_config.parent.mkdir(mode=0o700, exist_ok=True)
    ssh_config.write_bytes(theirs)
    added(cli, platform, sshd, "Bast1")
    assert "exec" not in (state_of(isolated_home) / "ssh.conf").read_text()
    options = ssh_config_of(str(ssh_config), "rescale-Bast1")
    assert ("bastion.example" in options.get("proxyjump", [""])[0]
            or "3128" in options.get("proxycommand", [""])[0]), options
