"""`login`, `logout`, `whoami` against the fake platform, and the API key kept secret throughout.

The key lives in the Rescale CLI's apiconfig (shared with that tool) and goes to the platform
in the Authorization header; it must not appear in any output, log, traceback or other file.
"""

from __future__ import annotations

import configparser
import json
import os
import stat
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fakeplatform import FakePlatform, Status
from tests.helpers import Cli, Result, require
from tests.sshd import free_port
from tests.terminal import run_in_terminal

WRONG_KEY = "wrong-key-9876543210fedcba"


@pytest.fixture(autouse=True)
def _no_rescale_cli_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """What Rescale's tools read that conftest does not clear: a RESCALE_CONFIG_FILE of the
    user's would have login write into their real file."""
    for variable in ("RESCALE_CONFIG_FILE", "RESCALE_API_BASE_URL"):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def logged_out(platform: FakePlatform, monkeypatch: pytest.MonkeyPatch) -> FakePlatform:
    """The fake platform, with no API key in the environment (login provides it)."""
    monkeypatch.delenv("RESCALE_API_KEY")
    return platform


def apiconfig(home: Path) -> Path:
    return home / ".config" / "rescale" / "apiconfig"


def profiles(path: Path) -> dict[str, dict[str, str]]:
    """The file as the Rescale CLI reads it (configparser)."""
    parser = configparser.RawConfigParser()
    parser.read_string(path.read_text())
    return {name: dict(parser.items(name)) for name in parser.sections()}


def hidden(result: Result, *secrets: str) -> Result:
    for secret in secrets:
        assert secret not in result.stdout + result.stderr, result
    assert "Traceback" not in result.stderr or "--debug" in result.args, result
    return result


def test_login_from_stdin_stores_the_key(cli: Cli, logged_out: FakePlatform,
                                         isolated_home: Path) -> None:
    key = logged_out.api_key
    result = hidden(cli("login", input=f"{key}\n"), key)
    path = apiconfig(isolated_home)
    assert result.stdout.splitlines()[0] == (
        f"Logged in to {logged_out.base_url} as me (me@example.com)."
    )
    assert f"[default] of {path}" in result.stdout
    # [default], the profile every Rescale tool reads, with apibaseurl first as Rescale shows it.
    assert path.read_text() == f"[default]\napibaseurl = {logged_out.base_url}\napikey = {key}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    checked = [r for r in logged_out.requests if r.path == "/api/v2/users/me/"]
    assert [r.authorization for r in checked] == [f"Token {key}"]

    # The stored key is used by every other command (no RESCALE_API_KEY, no RESCALE_API_URL).
    who = hidden(cli("whoami", env={"RESCALE_API_URL": ""}), key)
    assert who.stdout.splitlines() == [
        f"me (me@example.com) on {logged_out.base_url}",
        f"  API key from profile [default] of {path}",
    ]
    data = json.loads(cli("whoami", "--json").stdout)
    assert data == {"username": "me", "email": "me@example.com",
                    "platform": logged_out.base_url,
                    "key_source": f"profile [default] of {path}", "note": None}


def test_login_keeps_other_profiles_and_lines(cli: Cli, logged_out: FakePlatform,
                                              isolated_home: Path) -> None:
    path = apiconfig(isolated_home)
    path.parent.mkdir(parents=True, mode=0o755)
    before = (
        "# Rescale CLI profiles\r\n"
        "[staging]\r\n"
        "apibaseurl = https://staging.example.com\r\n"
        "apikey = staging-key-1234567890\r\n"
        "\r\n"
        "[prod]\r\n"
        "apikey = old-prod-key-1234567890\r\n"
        "; a comment the user wrote\r\n"
        "apibaseurl = https://platform.rescale.com\r\n"
        "proxy = http://proxy.example.com:3128\r\n"
        "\r\n"
        "[eu]\r\n"
        "apibaseurl = https://eu.rescale.com\r\n"
    )
    path.write_text(before, newline="")
    path.chmod(0o644)
    key = logged_out.api_key
    hidden(cli("login", "--profile", "prod", input=f"{key}\n"), key)
    after = path.read_bytes().decode()
    # The section's two lines are replaced where they are; nothing else moves.
    assert after == before.replace("apikey = old-prod-key-1234567890\r\n",
                                   f"apikey = {key}\r\n").replace(
        "apibaseurl = https://platform.rescale.com\r\n",
        f"apibaseurl = {logged_out.base_url}\r\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert profiles(path)["staging"]["apikey"] == "staging-key-1234567890"
    assert profiles(path)["prod"]["proxy"] == "http://proxy.example.com:3128"

    # Without --profile: [default], new at the end (the first section is not the default).
    hidden(cli("login", input=f"{key}\n"), key)
    assert profiles(path)["staging"]["apikey"] == "staging-key-1234567890"
    assert profiles(path)["default"] == {"apikey": key, "apibaseurl": logged_out.base_url}
    # A new profile goes at the end.
    hidden(cli("login", env={"RESCALE_PROFILE": "lab"}, input=f"{key}\n"), key)
    assert list(profiles(path)) == ["staging", "prod", "eu", "default", "lab"]
    assert profiles(path)["lab"] == {"apikey": key, "apibaseurl": logged_out.base_url}


def test_rejected_key_stores_nothing(cli: Cli, logged_out: FakePlatform,
                                     isolated_home: Path) -> None:
    result = hidden(cli("login", input=f"{WRONG_KEY}\n", expect=4), WRONG_KEY)
    assert result.stderr.splitlines()[0] == (
        f"rescale-ssh: error: {logged_out.base_url} rejected this API key; nothing was stored"
    )
    assert result.stderr.splitlines()[1].startswith("hint: ")
    assert not apiconfig(isolated_home).exists()


def test_login_needs_a_key_on_stdin(cli: Cli, logged_out: FakePlatform,
                                    isolated_home: Path) -> None:
    assert "no API key" in cli("login", input="", expect=2).stderr
    spaced = hidden(cli("login", input="abc def\n", expect=2), "abc def")
    assert "spaces or control characters" in spaced.stderr
    assert logged_out.requests == []
    assert not apiconfig(isolated_home).exists()


def test_login_platform_unreachable(cli: Cli, logged_out: FakePlatform,
                                    isolated_home: Path) -> None:
    logged_out.inject("/users/me/", *[Status(503)] * 10)
    key = logged_out.api_key
    result = hidden(cli("login", input=f"{key}\n", expect=6), key)
    assert len(result.stderr.splitlines()) == 2
    assert not apiconfig(isolated_home).exists()


def test_login_warns_when_the_environment_key_wins(cli: Cli, platform: FakePlatform,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESCALE_API_KEY", WRONG_KEY)
    result = hidden(cli("login", input=f"{platform.api_key}\n"), platform.api_key, WRONG_KEY)
    assert "warning: RESCALE_API_KEY is set" in result.stderr


def test_logout_removes_only_the_key(cli: Cli, logged_out: FakePlatform,
                                     isolated_home: Path) -> None:
    key = logged_out.api_key
    path = apiconfig(isolated_home)
    path.parent.mkdir(parents=True)
    path.write_text("[other]\napikey = other-key-1234567890\n")
    cli("login", "--profile", "prod", input=f"{key}\n")
    result = hidden(cli("logout", "--profile", "prod"), key)
    assert result.stdout == f"Removed the API key from [prod] of {path}.\n"
    assert profiles(path) == {"other": {"apikey": "other-key-1234567890"},
                              "prod": {"apibaseurl": logged_out.base_url}}
    assert key not in path.read_text()
    again = cli("logout", "--profile", "prod")
    assert "nothing to remove" in again.stdout
    # No [default]: the first profile is read, as rescale-ssh 0.1.0 read it; logout too.
    cli("logout")
    assert "apikey" not in profiles(path)["other"]
    failed = cli("whoami", "--profile", "prod", env={"RESCALE_API_URL": ""}, expect=4)
    assert failed.stderr.startswith("rescale-ssh: error: no Rescale API key")
    cli("logout", "--profile", "nosuch", expect=2)


def test_logout_without_a_file(cli: Cli, isolated_home: Path) -> None:
    assert "nothing to remove" in cli("logout").stdout
    assert not apiconfig(isolated_home).exists()


def test_whoami_with_the_environment_key(cli: Cli, platform: FakePlatform) -> None:
    result = hidden(cli("whoami"), platform.api_key)
    assert result.stdout.splitlines() == [
        f"me (me@example.com) on {platform.base_url}", "  API key from RESCALE_API_KEY",
    ]
    platform.username = "alice"
    platform.email = "alice@example.com\x1b[2J"  # a terminal escape from the platform
    assert cli("whoami").stdout.startswith("alice (alice@example.com[2J) on ")


def test_interactive_login_hides_the_key(logged_out: FakePlatform, isolated_home: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESCALE_API_URL")
    key = logged_out.api_key
    session = run_in_terminal(["login"], [("Platform", logged_out.base_url),
                                          ("API key", key)])
    assert session.returncode == 0, session.output
    # The platform answer is echoed like any typed text; the key is not.
    assert logged_out.base_url in session.output
    assert key not in session.output
    assert f"Logged in to {logged_out.base_url} as me" in session.output
    assert profiles(apiconfig(isolated_home))["default"]["apikey"] == key


def test_the_api_key_never_leaks(cli: Cli, logged_out: FakePlatform, isolated_home: Path,
                                 tmp_path: Path) -> None:
    """No command's output, with or without --debug, on success or failure, holds the key;
    no file but apiconfig holds it; it travels only in the Authorization header."""
    key = logged_out.api_key
    platform = logged_out
    # A closed port on loopback: the doctor's probe fails at once, not after a timeout.
    platform.add_job("Fotxeb", public_key=None, cidr_rule="198.51.100.7/32", host="127.0.0.1",
                     port=free_port())
    platform.add_job("Waits", status="Queued", cluster_status="Not Started")
    # A platform that echoes the key back in an error must not make us print it.
    platform.inject("/Echo/", *[Status(400, {"detail": f"bad token {key}"})] * 20)
    outputs: list[Result] = []
    for debug in ((), ("--debug",)):
        runs = [
            cli(*debug, "login", input=f"{key}\n"),
            cli(*debug, "login", input=f"{WRONG_KEY}\n", expect=4),
            cli(*debug, "whoami"),
            cli(*debug, "whoami", "--json"),
            cli(*debug, "add", "Fotxeb"),
            cli(*debug, "add", "Waits", expect=7),
            cli(*debug, "add", "Nope", expect=5),
            cli(*debug, "add", "Echo", expect=6),
            cli(*debug, "key", "generate", "--no-passphrase", "--force"),
            cli(*debug, "doctor"),
            cli(*debug, "doctor", "Fotxeb", expect=1),
            cli(*debug, "doctor", "Fotxeb", "--json", expect=1),
            cli(*debug, "doctor", "Echo", expect=1),
            cli(*debug, "list", "--json"),
            cli(*debug, "logout"),
            cli(*debug, "whoami", expect=4),
            cli(*debug, "doctor", "Fotxeb", expect=1),
        ]
        outputs += runs
    assert any("Traceback" in r.stderr for r in outputs), "--debug showed no traceback"
    assert any("GET " in r.stderr for r in outputs), "--debug showed no request log"
    for result in outputs:
        assert key not in result.stdout + result.stderr, result
    # Files: only the Rescale CLI's profile may hold it (and after logout not even that).
    cli("login", input=f"{key}\n")
    holders = [
        path for path in isolated_home.rglob("*")
        if path.is_file() and not path.is_symlink() and key.encode() in path.read_bytes()
    ]
    assert holders == [apiconfig(isolated_home)]
    for request in platform.requests:
        assert key not in request.path + str(request.query)
        others = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
        assert key not in str(others)


class ArgumentWatcher:
    """Reads every process's argument list (/proc/*/cmdline, readable by any user) over and
    over while commands run: a secret passed as an argument would be seen there."""

    def __init__(self) -> None:
        self.seen: set[bytes] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        proc = Path("/proc")
        while not self._stop.is_set():
            for entry in proc.iterdir():
                if entry.name.isdigit():
                    try:
                        self.seen.add((entry / "cmdline").read_bytes())
                    except OSError:
                        continue  # it ended meanwhile

    def __enter__(self) -> ArgumentWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def saw(self, *words: bytes) -> bool:
        return any(all(word in args for word in words) for args in self.seen)


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_no_secret_in_process_arguments_or_the_hooks_files(
    cli: Cli, logged_out: FakePlatform, isolated_home: Path, tmp_path: Path,
    figures: Callable[[str, int], None],
) -> None:
    """While `login`, the hook's cold path (under ssh, with RESCALE_SSH_DEBUG=1), `--debug add`
    and `key generate`/`export` with a passphrase run, no process's argument list holds the
    API key or the passphrase; nor do ssh's output, the hook's records and blocks, or any
    other file the tool wrote."""
    key = logged_out.api_key
    passphrase = "correct horse battery staple 42"
    secret_file = tmp_path / "passphrase"
    secret_file.write_text(passphrase + "\n")
    logged_out.latency = 0.2  # every request takes a while: the processes live long enough
    closed = free_port()
    logged_out.add_job("Sec1", host="127.0.0.1", port=closed)
    shown: list[str] = []
    with ArgumentWatcher() as watcher:
        shown += [cli("login", input=f"{key}\n").stdout]
        cli("install", "--yes", env={"RESCALE_API_URL": logged_out.base_url})
        for alias in ("rescale-Sec1", "rescale-Nope1"):
            proc = subprocess.run(
                [require("ssh"), "-G", "-F", str(isolated_home / ".ssh" / "config"), alias],
                capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                env={**os.environ, "RESCALE_SSH_DEBUG": "1"})
            shown += [proc.stdout, proc.stderr]
        explained = subprocess.run(
            [require("ssh"), "-F", str(isolated_home / ".ssh" / "config"), "-o", "BatchMode=yes",
             "rescale-Nope1", "true"], capture_output=True, text=True, timeout=60,
            stdin=subprocess.DEVNULL, env={**os.environ, "RESCALE_SSH_DEBUG": "1"})
        assert "not found" in explained.stderr
        shown += [explained.stderr]
        result = cli("--debug", "add", "Sec1")
        shown += [result.stdout, result.stderr]
        generated = cli("--debug", "key", "generate", "--passphrase-file", str(secret_file))
        exported = cli("--debug", "key", "export", "--ppk", str(tmp_path / "key.ppk"),
                       "--passphrase-file", str(secret_file))
        shown += [generated.stdout, generated.stderr, exported.stdout, exported.stderr]
    # The watcher did see the commands it was watching for.
    assert watcher.saw(b"login")
    assert watcher.saw(b"hook", b"rescale-Sec1")
    assert watcher.saw(b"proxy", b"Nope1")
    assert watcher.saw(b"key\0generate")
    for args in watcher.seen:
        assert key.encode() not in args, args
        assert passphrase.encode() not in args, args
    for text in shown:
        assert key not in text and passphrase not in text, text
    allowed = {isolated_home / ".config" / "rescale" / "apiconfig"}
    for path in isolated_home.rglob("*"):
        if path.is_file() and not path.is_symlink() and path not in allowed:
            data = path.read_bytes()
            assert key.encode() not in data, path
            assert passphrase.encode() not in data, path
    state = isolated_home / ".local" / "state" / "rescale-ssh"
    assert list((state / "jobs").iterdir()) and (state / "fresh.conf").exists()
    figures("process argument lists read while secrets were in use", len(watcher.seen))
