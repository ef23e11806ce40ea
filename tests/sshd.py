"""The real OpenSSH server of tests/loopback.py as pytest fixtures (a pytest plugin).

``sshd`` (session scope) starts one server for the whole run. ``sshd_factory`` starts further
servers for one test (each with its own host keys), e.g. a job's cluster that moved, or a new
cluster that reuses an old address. A server that cannot start fails the test, with its log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import loopback
from tests.helpers import require
from tests.loopback import SSHServer, free_port

__all__ = ["SSHDFactory", "SSHServer", "free_port", "start_sshd"]


def start_sshd(root: Path, *, client_key: Path | None = None,
               port: int | None = None) -> SSHServer:
    """loopback.start_sshd, with programs found the tests' way (skip, or fail under CI)."""
    try:
        return loopback.start_sshd(root, client_key=client_key, port=port, find=require)
    except loopback.SSHDError as error:
        pytest.fail(str(error))


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    """The suite's sshd on 127.0.0.1 (one per test session)."""
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    try:
        yield server
    finally:
        server.stop()


SSHDFactory = Callable[..., SSHServer]


@pytest.fixture
def sshd_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHDFactory]:
    """Starts more servers for one test, each with new host keys: ``sshd_factory(client_key=...,
    port=...)``. All are stopped when the test ends."""
    started: list[SSHServer] = []

    def factory(*, client_key: Path | None = None, port: int | None = None) -> SSHServer:
        server = start_sshd(tmp_path_factory.mktemp("sshd-extra"), client_key=client_key,
                            port=port)
        started.append(server)
        return server

    try:
        yield factory
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def sshd2(sshd: SSHServer, sshd_factory: SSHDFactory) -> SSHServer:
    """A second server for one test: another port and other host keys, the same client key
    (the job's cluster moved)."""
    return sshd_factory(client_key=sshd.client_key)
