"""The Rescale CLI's apiconfig, read and written exactly as Rescale's tools do (issue 13, item 6).

Profile ``[default]`` unless --profile/RESCALE_PROFILE chooses one; the file is
``~/.config/rescale/apiconfig`` (never under XDG_CONFIG_HOME) unless RESCALE_CONFIG_FILE names
another; ``apikey``/``api_key`` and ``apibaseurl``/``platform_url``; a base URL with or without
``https://``; RESCALE_API_BASE_URL next to RESCALE_API_URL. A file rescale-ssh 0.1.0 wrote
(``[prod]`` only) keeps working and is announced. Every run is the real program against the
fake platform; the hook runs under the real ssh.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from rescale_ssh.errors import UsageError
from rescale_ssh.settings import Settings, normalize_platform
from tests.fakeplatform import FakePlatform
from tests.helpers import Cli, Result, ssh_config_of
from tests.sshd import free_port
from tests.terminal import run_in_terminal

WRONG_KEY = "wrong-key-9876543210fedcba"
NOTE = ("(no [default] there; `rescale-ssh login` writes [default], the profile the Rescale CLI "
        "reads)")


@pytest.fixture(autouse=True)
def _no_rescale_cli_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The variables Rescale's tools read that conftest does not clear."""
    for variable in ("RESCALE_CONFIG_FILE", "RESCALE_API_BASE_URL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("RESCALE_SSH_TIMEOUT", "3")  # a closed port gives up at once


@pytest.fixture
def profile_only(platform: FakePlatform, monkeypatch: pytest.MonkeyPatch) -> FakePlatform:
    """The fake platform, reachable only through what the apiconfig says."""
    monkeypatch.delenv("RESCALE_API_KEY")
    monkeypatch.delenv("RESCALE_API_URL")
    return platform


@pytest.fixture
def closed() -> str:
    """A platform URL nobody answers at: reading it shows which setting was used."""
    return f"http://127.0.0.1:{free_port()}"


def default_path(home: Path) -> Path:
    return home / ".config" / "rescale" / "apiconfig"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_bytes(text.encode())
    path.chmod(0o600)
    return path


def clean(result: Result, *secrets: str) -> Result:
    assert "Traceback" not in result.stderr, result
    for secret in secrets:
        assert secret not in result.stdout + result.stderr, result
    return result


def whoami(cli: Cli, platform: FakePlatform, *args: str, env: dict[str, str] | None = None
           ) -> list[str]:
    return clean(cli("whoami", *args, env=env), platform.api_key, WRONG_KEY).stdout.splitlines()


def login(cli: Cli, platform: FakePlatform, *args: str, env: dict[str, str] | None = None
          ) -> Result:
    return clean(cli("login", *args, input=f"{platform.api_key}\n", env=env), platform.api_key)


# -- which profile -------------------------------------------------------------------------------


def test_default_is_read_before_a_first_section(cli: Cli, profile_only: FakePlatform,
                                                isolated_home: Path) -> None:
    platform, key = profile_only, profile_only.api_key
    path = write(default_path(isolated_home),
                 f"[other]\napibaseurl = {platform.base_url}\napikey = {WRONG_KEY}\n\n"
                 f"[default]\napibaseurl = {platform.base_url}\napikey = {key}\n")
    assert whoami(cli, platform) == [f"me (me@example.com) on {platform.base_url}",
                                     f"  API key from profile [default] of {path}"]
    platform.add_job("Fotxeb")
    clean(cli("add", "Fotxeb"), key, WRONG_KEY)
    assert {r.authorization for r in platform.requests} == {f"Token {key}"}


def test_profile_flag_and_environment_choose_another(cli: Cli, profile_only: FakePlatform,
                                                     isolated_home: Path, closed: str) -> None:
    platform, key = profile_only, profile_only.api_key
    path = write(default_path(isolated_home),
                 f"[lab]\napibaseurl = {platform.base_url}\napikey = {key}\n\n"
                 f"[default]\napibaseurl = {closed}\napikey = {WRONG_KEY}\n")
    lab = f"  API key from profile [lab] of {path}"
    assert whoami(cli, platform, "--profile", "lab")[1:] == [lab]
    assert whoami(cli, platform, env={"RESCALE_PROFILE": "lab"})[1:] == [lab]
    # The flag wins over the environment.
    assert whoami(cli, platform, "--profile", "lab", env={"RESCALE_PROFILE": "nosuch"})[1:] == [lab]
    missing = clean(cli("whoami", "--profile", "nosuch", expect=2), WRONG_KEY).stderr
    assert missing.splitlines() == [f"rescale-ssh: error: profile 'nosuch' is not in {path}",
                                    "hint: profiles there: lab, default"]
    # Nothing chosen: [default] (here on a platform that does not answer), not the first.
    unchosen = clean(cli("whoami", expect=6), WRONG_KEY)
    assert closed.replace("http://", "") in unchosen.stderr.splitlines()[0]
    assert all(r.authorization == f"Token {key}" for r in platform.requests)


def test_a_file_of_rescale_ssh_0_1_0_keeps_working_and_is_announced(
    cli: Cli, profile_only: FakePlatform, isolated_home: Path
) -> None:
    """0.1.0's login wrote [prod] (apikey first) into an empty file; no [default] there, so that
    section is read, and login, whoami and doctor say why; login then writes [default]."""
    platform, key = profile_only, profile_only.api_key
    old = f"[prod]\napikey = {key}\napibaseurl = {platform.base_url}\n"
    path = write(default_path(isolated_home), old)
    platform.add_job("Fotxeb")
    clean(cli("add", "Fotxeb"), key)
    assert whoami(cli, platform) == [f"me (me@example.com) on {platform.base_url}",
                                     f"  API key from profile [prod] of {path}", f"  {NOTE}"]
    doctor = clean(cli("doctor", expect=None), key).stdout.splitlines()
    line = doctor.index(f"✓ API key: valid for me (me@example.com) on {platform.base_url}, "
                        f"from profile [prod] of {path}")
    assert doctor[line + 1] == f"    tip: {NOTE[1:-1]}"

    # login without --platform or RESCALE_API_URL: [default], on [prod]'s platform.
    result = login(cli, platform)
    assert result.stdout.splitlines()[1:] == [
        f"  The key is in [default] of {path} (shared with the Rescale CLI).",
        "  [prod], read until now because the file had no [default], stays as it was; "
        "[default] is read from now on, as by the Rescale CLI.",
    ]
    assert path.read_text() == (
        old + f"\n[default]\napibaseurl = {platform.base_url}\napikey = {key}\n")
    assert whoami(cli, platform)[1:] == [f"  API key from profile [default] of {path}"]
    # logout takes the key out of the profile read, [default]; [prod] is no longer read.
    assert clean(cli("logout")).stdout == f"Removed the API key from [default] of {path}.\n"
    assert path.read_text() == old + f"\n[default]\napibaseurl = {platform.base_url}\n"
    gone = cli("whoami", expect=4).stderr.splitlines()
    assert gone == ["rescale-ssh: error: no Rescale API key",
                    f"hint: [default] of {path} holds no apikey: run `rescale-ssh login`, set "
                    "RESCALE_API_KEY, or use `add JOB --from-log` with the line from the job's "
                    "logs"]


def test_the_platform_prompt_offers_the_stored_platform(profile_only: FakePlatform,
                                                        isolated_home: Path) -> None:
    """On a terminal, a 0.1.0 file's login offers [prod]'s platform: Enter keeps it."""
    platform, key = profile_only, profile_only.api_key
    old = f"[prod]\napikey = {WRONG_KEY}\napibaseurl = {platform.base_url}\n"
    path = write(default_path(isolated_home), old)
    session = run_in_terminal(["login"], [("Platform", ""), ("API key", key)])
    assert session.returncode == 0, session.output
    assert f"or a URL) [{platform.base_url}]: " in session.output
    assert path.read_text() == (
        old + f"\n[default]\napibaseurl = {platform.base_url}\napikey = {key}\n")


def test_without_default_the_first_of_several_sections_is_read_and_announced(
    cli: Cli, profile_only: FakePlatform, isolated_home: Path
) -> None:
    """As rescale-ssh 0.1.0 read it (its login wrote into the first section): such files keep
    working; what is read is said."""
    platform, key = profile_only, profile_only.api_key
    path = write(default_path(isolated_home),
                 f"[staging]\napibaseurl = {platform.base_url}\napikey = {key}\n\n"
                 f"[prod]\napikey = {WRONG_KEY}\n")
    assert whoami(cli, platform)[1:] == [f"  API key from profile [staging] of {path}",
                                         f"  {NOTE}"]
    assert clean(cli("logout")).stdout == f"Removed the API key from [staging] of {path}.\n"
    assert path.read_text() == (f"[staging]\napibaseurl = {platform.base_url}\n\n"
                                f"[prod]\napikey = {WRONG_KEY}\n")


# -- which file ----------------------------------------------------------------------------------


def test_rescale_config_file_names_the_file(cli: Cli, profile_only: FakePlatform,
                                            isolated_home: Path, tmp_path: Path,
                                            closed: str) -> None:
    platform, key = profile_only, profile_only.api_key
    usual = write(default_path(isolated_home),
                  f"[default]\napibaseurl = {closed}\napikey = {WRONG_KEY}\n")
    usual_bytes = usual.read_bytes()
    project = tmp_path / "project"
    project.mkdir(mode=0o755)
    project.chmod(0o755)
    named = write(project / "apiconfig", f"[default]\napibaseurl = {platform.base_url}\n")
    env = {"RESCALE_CONFIG_FILE": str(named)}
    result = login(cli, platform, env=env)
    assert f"The key is in [default] of {named} " in result.stdout
    assert named.read_text() == f"[default]\napibaseurl = {platform.base_url}\napikey = {key}\n"
    assert stat.S_IMODE(named.stat().st_mode) == 0o600
    assert stat.S_IMODE(project.stat().st_mode) == 0o755, "not the folder of the Rescale CLI"
    assert usual.read_bytes() == usual_bytes
    assert whoami(cli, platform, env=env)[1:] == [f"  API key from profile [default] of {named}"]
    # ~ is the home folder; a file not there yet is made 0600 in a new 0700 folder.
    fresh = isolated_home / "alt" / "rescale.ini"
    login(cli, platform, "--platform", platform.base_url,
          env={"RESCALE_CONFIG_FILE": "~/alt/rescale.ini"})
    assert fresh.read_text() == f"[default]\napibaseurl = {platform.base_url}\napikey = {key}\n"
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    assert stat.S_IMODE(fresh.parent.stat().st_mode) == 0o700
    assert usual.read_bytes() == usual_bytes
    # The key is in no other file.
    holders = [p for p in tmp_path.rglob("*") if p.is_file() and key.encode() in p.read_bytes()]
    assert sorted(holders) == sorted([named, fresh])


def test_xdg_config_home_is_not_where_the_rescale_cli_looks(
    cli: Cli, profile_only: FakePlatform, isolated_home: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, closed: str,
) -> None:
    platform, key = profile_only, profile_only.api_key
    xdg = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    decoy = write(xdg / "rescale" / "apiconfig",
                  f"[default]\napibaseurl = {closed}\napikey = {WRONG_KEY}\n")
    decoy_bytes = decoy.read_bytes()
    login(cli, platform, "--platform", platform.base_url)
    path = default_path(isolated_home)
    assert path.read_text() == f"[default]\napibaseurl = {platform.base_url}\napikey = {key}\n"
    assert whoami(cli, platform)[1:] == [f"  API key from profile [default] of {path}"]
    assert decoy.read_bytes() == decoy_bytes


# -- which keys and values -----------------------------------------------------------------------


def test_api_key_and_platform_url_are_read_and_kept(cli: Cli, profile_only: FakePlatform,
                                                    isolated_home: Path, closed: str) -> None:
    """The newest Rescale client's spellings; when both are there, the Rescale CLI's win.
    login replaces a line where it is, in the spelling it has (no stale copy is left)."""
    platform, key = profile_only, profile_only.api_key
    path = write(default_path(isolated_home),
                 f"[default]\nplatform_url = {platform.base_url}\napi_key = {key}\n")
    assert whoami(cli, platform)[0] == f"me (me@example.com) on {platform.base_url}"
    write(path, f"[default]\napibaseurl = {platform.base_url}\nplatform_url = {closed}\n"
                f"apikey = {key}\napi_key = {WRONG_KEY}\n")
    assert whoami(cli, platform)[0] == f"me (me@example.com) on {platform.base_url}"

    write(path, "[default]\r\nplatform_url=https://eu.rescale.com\r\napi_key:old-key-12345\r\n"
                "    continued-old-value\r\nproxy = http://proxy.example.com:3128\r\n")
    login(cli, platform, "--platform", platform.base_url)
    assert path.read_bytes() == (
        f"[default]\r\nplatform_url={platform.base_url}\r\napi_key:{key}\r\n"
        "proxy = http://proxy.example.com:3128\r\n").encode()
    clean(cli("logout"))
    assert path.read_bytes() == (f"[default]\r\nplatform_url={platform.base_url}\r\n"
                                 "proxy = http://proxy.example.com:3128\r\n").encode()


def test_a_base_url_without_its_scheme_is_https(cli: Cli, profile_only: FakePlatform,
                                                isolated_home: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = default_path(isolated_home)
    for written, meant in (("eu.rescale.com", "https://eu.rescale.com"),
                           ("platform.rescale.jp/", "https://platform.rescale.jp"),
                           ("kr.rescale.com/api/v3/", "https://kr.rescale.com"),
                           ("https://itar.rescale.com", "https://itar.rescale.com")):
        for name in ("apibaseurl", "platform_url"):
            write(path, f"[default]\n{name} = {written}\napikey = k\n")
            assert Settings().platform() == meant, (name, written)
    assert Settings(platform_flag="eu.rescale.com").platform() == "https://eu.rescale.com"
    monkeypatch.setenv("RESCALE_API_BASE_URL", "127.0.0.1:8443")
    assert Settings().platform() == "https://127.0.0.1:8443"
    for hostile in ("javascript:alert(1)", "-oProxyCommand=x", "a b", "user@host.example"):
        with pytest.raises(UsageError):
            normalize_platform(hostile, source="test")
    # The real program, end to end: the https URL is the one it tried.
    monkeypatch.delenv("RESCALE_API_BASE_URL")
    port = free_port()
    write(path, f"[default]\napibaseurl = 127.0.0.1:{port}\napikey = k-1234567890\n")
    failed = cli("whoami", expect=6)
    assert f"https://127.0.0.1:{port}" in failed.stderr.splitlines()[0]


# -- which platform ------------------------------------------------------------------------------


def test_rescale_api_base_url_and_what_wins(cli: Cli, platform: FakePlatform,
                                            isolated_home: Path, monkeypatch: pytest.MonkeyPatch,
                                            closed: str) -> None:
    """--platform, then RESCALE_API_URL, then RESCALE_API_BASE_URL, then the profile's own."""
    monkeypatch.delenv("RESCALE_API_URL")
    write(default_path(isolated_home), f"[default]\napibaseurl = {closed}\n")
    on = f"me (me@example.com) on {platform.base_url}"
    assert whoami(cli, platform, env={"RESCALE_API_BASE_URL": platform.base_url})[0] == on
    assert whoami(cli, platform, env={"RESCALE_API_BASE_URL": platform.base_url + "/api/v3/"}
                  )[0] == on
    assert whoami(cli, platform, env={"RESCALE_API_URL": platform.base_url + "/api/v3/",
                                      "RESCALE_API_BASE_URL": closed})[0] == on
    assert whoami(cli, platform, "--platform", platform.base_url,
                  env={"RESCALE_API_URL": closed, "RESCALE_API_BASE_URL": closed})[0] == on
    refused = cli("whoami", env={"RESCALE_API_BASE_URL": "ftp://x"}, expect=2).stderr
    assert refused.startswith("rescale-ssh: error: invalid platform from RESCALE_API_BASE_URL")
    # login stores the platform it was given so.
    monkeypatch.delenv("RESCALE_API_KEY")
    login(cli, platform, env={"RESCALE_API_BASE_URL": platform.base_url})
    assert default_path(isolated_home).read_text() == (
        f"[default]\napibaseurl = {platform.base_url}\napikey = {platform.api_key}\n")


# -- what login writes ---------------------------------------------------------------------------


def test_login_on_an_empty_file_writes_default_with_apibaseurl_first(
    cli: Cli, profile_only: FakePlatform, isolated_home: Path
) -> None:
    platform, key = profile_only, profile_only.api_key
    path = default_path(isolated_home)
    path.parent.mkdir(parents=True, mode=0o755)
    path.parent.chmod(0o755)
    path.write_bytes(b"")
    path.chmod(0o644)
    login(cli, platform, "--platform", platform.base_url)
    assert path.read_bytes() == (
        f"[default]\napibaseurl = {platform.base_url}\napikey = {key}\n").encode()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_login_keeps_every_other_byte(cli: Cli, profile_only: FakePlatform,
                                      isolated_home: Path) -> None:
    platform, key = profile_only, profile_only.api_key
    path = default_path(isolated_home)
    before = ("# Rescale profiles, kept by hand\r\n"
              "[other]\r\napibaseurl = https://eu.rescale.com\r\napikey = other-key-123456\r\n"
              "\r\n; the one every tool reads\r\n[default]\r\n# my key:\r\n"
              "apikey=old-key-1234567890\r\n  \r\nproxy = http://proxy.example.com:3128\r\n"
              "\r\n[last]\r\nx = 1")  # no final newline
    write(path, before)
    login(cli, platform, "--platform", platform.base_url)
    assert path.read_bytes().decode() == before.replace(
        "# my key:\r\napikey=old-key-1234567890\r\n",
        f"# my key:\r\napibaseurl = {platform.base_url}\r\napikey={key}\r\n")

    # No [default] yet: it goes at the end; every byte before it stays.
    before = "# mine\n[other]\napikey = other-key-123456\n; last line, no newline"
    write(path, before)
    login(cli, platform, "--platform", platform.base_url)
    assert path.read_text() == (
        before + f"\n\n[default]\napibaseurl = {platform.base_url}\napikey = {key}\n")


# -- the hook, in ssh's environment ----------------------------------------------------------------


def test_the_hook_resolves_with_the_profile_only(cli: Cli, profile_only: FakePlatform,
                                                 isolated_home: Path, ssh_config: Path) -> None:
    """No RESCALE_API_URL, no RESCALE_API_KEY: `ssh rescale-<job>` reads [default] (not the
    first section), or the profile chosen at install."""
    platform, key = profile_only, profile_only.api_key
    path = write(default_path(isolated_home),
                 f"[other]\napibaseurl = {platform.base_url}\napikey = {WRONG_KEY}\n\n"
                 f"[default]\napibaseurl = {platform.base_url}\napikey = {key}\n\n"
                 f"[lab]\nplatform_url = {platform.base_url}\napi_key = {key}\n")
    platform.add_job("Fotxeb", host="203.0.113.7", port=2222)
    platform.add_job("Ptczhb", host="203.0.113.8")
    cli("install", "--yes")
    got = ssh_config_of(str(ssh_config), "rescale-Fotxeb")
    assert (got["hostname"], got["port"]) == (["203.0.113.7"], ["2222"])
    assert {r.authorization for r in platform.requests} == {f"Token {key}"}

    # Chosen at install (recorded in hook.conf), and read by the hook without RESCALE_PROFILE.
    write(path, path.read_text().replace(f"apikey = {key}", f"apikey = {WRONG_KEY}"))
    cli("install", "--yes", "--profile", "lab")
    assert ssh_config_of(str(ssh_config), "rescale-Ptczhb")["hostname"] == ["203.0.113.8"]
    assert {r.authorization for r in platform.requests} == {f"Token {key}"}


def test_the_hook_resolves_with_a_file_of_rescale_ssh_0_1_0(
    cli: Cli, profile_only: FakePlatform, isolated_home: Path, ssh_config: Path
) -> None:
    platform = profile_only
    write(default_path(isolated_home),
          f"[prod]\napikey = {platform.api_key}\napibaseurl = {platform.base_url}\n")
    platform.add_job("Fotxeb", host="203.0.113.7")
    cli("install", "--yes")
    assert ssh_config_of(str(ssh_config), "rescale-Fotxeb")["hostname"] == ["203.0.113.7"]


# -- review of issue 13 ----------------------------------------------------------------------------


def test_a_file_under_xdg_config_home_of_earlier_versions_is_still_read(
    cli: Cli, profile_only: FakePlatform, isolated_home: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every version before the fixed path wrote the key to $XDG_CONFIG_HOME/rescale/apiconfig
    when the variable was set: with nothing at the fixed path that file was dropped silently
    ("no Rescale API key"). It is read, announced, and login then writes the fixed path."""
    platform, key = profile_only, profile_only.api_key
    xdg = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    old = write(xdg / "rescale" / "apiconfig",
                f"[prod]\napikey = {key}\napibaseurl = {platform.base_url}\n")
    old_bytes = old.read_bytes()
    lines = whoami(cli, platform)
    assert lines[1] == f"  API key from profile [prod] of {old}"
    assert lines[2].startswith(f"  (read from {old}, where earlier rescale-ssh versions kept it")
    import json
    note = json.loads(clean(cli("whoami", "--json"), key).stdout)["note"]
    assert "`rescale-ssh login` writes ~/.config/rescale/apiconfig" in note
    assert "no [default] there" in note
    result = login(cli, platform)
    path = default_path(isolated_home)
    assert f"The key is in [default] of {path} " in result.stdout
    assert f"{old}, where earlier versions kept the key" in result.stdout
    assert path.read_text() == f"[default]\napibaseurl = {platform.base_url}\napikey = {key}\n"
    assert old.read_bytes() == old_bytes
    assert whoami(cli, platform)[1:] == [f"  API key from profile [default] of {path}"]


def test_the_hook_reads_the_file_rescale_config_file_named_at_install(
    cli: Cli, profile_only: FakePlatform, isolated_home: Path, tmp_path: Path,
    ssh_config: Path,
) -> None:
    """hook.conf kept the profile but not RESCALE_CONFIG_FILE: ssh started from an IDE without
    the variable read ~/.config/rescale/apiconfig and failed."""
    from rescale_ssh import paths
    from rescale_ssh.hook import hookconf

    platform, key = profile_only, profile_only.api_key
    named = write(tmp_path / "project" / "rescale.ini",
                  f"[lab]\napibaseurl = {platform.base_url}\napikey = {key}\n")
    platform.add_job("Fotxeb", host="203.0.113.7")
    cli("install", "--yes", "--profile", "lab", env={"RESCALE_CONFIG_FILE": str(named)})
    conf = hookconf.load(str(paths.state_dir()))
    assert (conf.apiconfig, conf.profile) == (str(named), "lab")
    assert ssh_config_of(str(ssh_config), "rescale-Fotxeb")["hostname"] == ["203.0.113.7"]
    assert {r.authorization for r in platform.requests} == {f"Token {key}"}
    # Without the variable, hook.conf is written as earlier versions wrote it.
    cli("install", "--yes")
    text = (paths.state_dir() / "hook.conf").read_text()
    assert "apiconfig=" not in text


def test_a_rejected_key_names_the_profile_it_came_from(
    cli: Cli, profile_only: FakePlatform, isolated_home: Path
) -> None:
    """Issue 15: every 401 names the real source of the key (profile and file, or the
    variable), and a hint that can help from there."""
    platform = profile_only
    path = write(default_path(isolated_home),
                 f"[default]\napibaseurl = {platform.base_url}\napikey = {WRONG_KEY}\n")
    platform.add_job("Fotxeb")
    lines = clean(cli("add", "Fotxeb", expect=4), WRONG_KEY).stderr.splitlines()
    assert lines == [
        f"rescale-ssh: error: the platform rejected the API key from profile [default] of {path}",
        f"hint: run `rescale-ssh login` (it replaces the key in profile [default] of {path}), "
        "or set RESCALE_API_KEY"]
