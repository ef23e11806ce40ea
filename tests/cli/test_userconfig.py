"""The settings file (issue 15 item 9): identity, platform, profile and ssh_config kept in
$XDG_CONFIG_HOME/rescale-ssh/config.toml, read after flags and the environment; `config`
show/set/unset/path; `key generate`/`import` naming the key they wrote and making it the default;
`install` and the hook using what the file says."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.fakeplatform import FakePlatform
from tests.helpers import Cli, ssh_config_of
from tests.sshd import SSHServer, free_port
from tests.terminal import run_in_terminal

LOG = "Command: ssh u_Fotxeb@192.0.2.7"


def settings_file(home: Path) -> Path:
    return home / ".config" / "rescale-ssh" / "config.toml"


def write_settings(home: Path, text: str, mode: int = 0o600) -> Path:
    path = settings_file(home)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_bytes(text.encode())
    path.chmod(mode)
    return path


def write_apiconfig(home: Path, text: str) -> Path:
    path = home / ".config" / "rescale" / "apiconfig"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(text)
    path.chmod(0o600)
    return path


def shown(cli: Cli, *args: str, env: dict[str, str] | None = None) -> dict[str, dict[str, str]]:
    out = json.loads(cli(*args, "config", "show", "--json", env=env).stdout)
    return {item["key"]: item for item in out["settings"]}


def added_identity(cli: Cli, *args: str, env: dict[str, str] | None = None) -> str:
    """The IdentityFile `add` writes, read back through `list` (a real consumer)."""
    cli(*args, "add", "Fotxeb", "--from-log", LOG, env=env)
    entries = json.loads(cli("list", "--json").stdout)
    return str(entries[0]["identity"])


@pytest.fixture
def closed() -> str:
    return f"http://127.0.0.1:{free_port()}"


# -- precedence: flag > environment > file > default ------------------------------------------


def test_identity_flag_then_env_then_file_then_default(cli: Cli, isolated_home: Path) -> None:
    home = isolated_home
    assert added_identity(cli) == str(home / ".ssh" / "rescale_ed25519")
    write_settings(home, 'identity = "~/.ssh/from_file"\n')
    assert added_identity(cli) == str(home / ".ssh" / "from_file")
    env = {"RESCALE_SSH_IDENTITY": str(home / "from_env")}
    assert added_identity(cli, env=env) == str(home / "from_env")
    assert added_identity(cli, "--identity", str(home / "from_flag"), env=env) == str(
        home / "from_flag")
    got = shown(cli, "--identity", str(home / "from_flag"), env=env)["identity"]
    assert (got["source"], got["origin"]) == ("flag", "--identity")
    got = shown(cli, env=env)["identity"]
    assert (got["source"], got["origin"]) == ("env", "RESCALE_SSH_IDENTITY")
    got = shown(cli)["identity"]
    assert (got["value"], got["source"]) == (str(home / ".ssh" / "from_file"), "file")
    assert got["origin"] == f"{settings_file(home)} line 1"


def test_platform_flag_then_env_then_file_then_profile(
        cli: Cli, isolated_home: Path, platform: FakePlatform, closed: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESCALE_API_URL")
    monkeypatch.setenv("RESCALE_SSH_TIMEOUT", "2")
    write_apiconfig(isolated_home, f"[default]\napibaseurl = {closed}\n")
    # The profile's apibaseurl comes after the settings file.
    cli("whoami", expect=6)
    write_settings(isolated_home, f"# my platform\nplatform = \"{platform.base_url}\"\n")
    assert platform.base_url in cli("whoami").stdout
    got = shown(cli)["platform"]
    assert (got["value"], got["source"]) == (platform.base_url, "file")
    assert got["origin"] == f"{settings_file(isolated_home)} line 2"
    cli("whoami", env={"RESCALE_API_URL": closed}, expect=6)  # the environment wins
    assert platform.base_url in cli("--platform", platform.base_url, "whoami",
                                    env={"RESCALE_API_URL": closed}).stdout
    assert shown(cli, env={"RESCALE_API_BASE_URL": closed})["platform"]["source"] == "env"
    settings_file(isolated_home).unlink()
    got = shown(cli)["platform"]
    assert (got["value"], got["source"]) == (closed, "profile")
    assert "profile [default]" in got["origin"]


def test_profile_flag_then_env_then_file_then_default(
        cli: Cli, isolated_home: Path, platform: FakePlatform,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESCALE_API_KEY")
    write_apiconfig(isolated_home, "[default]\napikey = wrong-key\n\n"
                    f"[work]\napikey = {platform.api_key}\n")
    cli("whoami", expect=4)  # [default]'s key is rejected
    write_settings(isolated_home, "profile = 'work'\n")
    assert "[work]" in cli("whoami").stdout
    assert shown(cli)["profile"]["value"] == "work"
    cli("whoami", env={"RESCALE_PROFILE": "default"}, expect=4)
    cli("--profile", "work", "whoami", env={"RESCALE_PROFILE": "default"})
    got = shown(cli, env={"RESCALE_PROFILE": "default"})["profile"]
    assert (got["value"], got["source"], got["origin"]) == ("default", "env", "RESCALE_PROFILE")
    write_settings(isolated_home, "profile = 'nowhere'\n")
    result = cli("whoami", expect=3)
    assert "profile 'nowhere'" in result.stderr and "line 1" in result.stderr
    assert "profiles there: default, work" in result.stderr


def test_ssh_config_from_the_file(cli: Cli, isolated_home: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESCALE_SSH_CONFIG")
    write_settings(isolated_home, 'ssh_config = "~/elsewhere/config"\n')
    cli("add", "Fotxeb", "--from-log", LOG)
    assert b"Host rescale-Fotxeb" in (isolated_home / "elsewhere" / "config").read_bytes()
    assert not (isolated_home / ".ssh" / "config").exists()


# -- config show ------------------------------------------------------------------------------


def test_show_text_names_each_source(cli: Cli, isolated_home: Path, platform: FakePlatform
                                     ) -> None:
    path = write_settings(isolated_home, 'identity = "~/.ssh/mine"\n')
    write_apiconfig(isolated_home, "[lab]\napikey = x\n")
    out = cli("--profile", "lab", "config", "show").stdout.splitlines()
    assert out[0] == f"Settings file: {path}"
    rows = {line.split()[0]: line for line in out[1:]}
    assert rows["identity"].split()[1] == str(isolated_home / ".ssh" / "mine")
    assert rows["identity"].endswith(f"(file: {path} line 1)")
    assert rows["platform"].endswith("(env: RESCALE_API_URL)")
    assert rows["profile"].split()[1] == "lab" and rows["profile"].endswith("(flag: --profile)")
    assert rows["ssh_config"].endswith("(env: RESCALE_SSH_CONFIG)")
    path.unlink()
    out = cli("config", "show").stdout
    assert "(none yet)" in out.splitlines()[0]
    assert "(default)" in out


def test_path_is_under_xdg_config_home(cli: Cli, isolated_home: Path, tmp_path: Path) -> None:
    assert cli("config", "path").stdout.strip() == str(settings_file(isolated_home))
    other = tmp_path / "xdg"
    assert cli("config", "path", env={"XDG_CONFIG_HOME": str(other)}).stdout.strip() == str(
        other / "rescale-ssh" / "config.toml")


# -- config set / unset -----------------------------------------------------------------------


def test_set_and_unset_keep_comments_and_other_lines(cli: Cli, isolated_home: Path) -> None:
    original = ("# my settings\n\n"
                "platform = 'eu'   # the EU platform\n"
                "# the key of my team\n"
                "identity = \"~/.ssh/team\"\n"
                "future_key = \"kept\"\n")
    path = write_settings(isolated_home, original)
    # An unknown key is an error for every command but one that removes it.
    cli("config", "set", "platform", "jp", expect=3)
    assert path.read_text() == original
    assert "Removed future_key" in cli("config", "unset", "future_key").stdout
    cli("config", "set", "platform", "jp")
    cli("config", "set", "profile", "work")
    assert path.read_text() == ("# my settings\n\n"
                                "platform = \"jp\"   # the EU platform\n"
                                "# the key of my team\n"
                                "identity = \"~/.ssh/team\"\n"
                                "profile = \"work\"\n")
    assert "no change" in cli("config", "set", "profile", "work").stdout
    cli("config", "unset", "identity")
    assert "nothing to remove" in cli("config", "unset", "identity").stdout
    assert path.read_text() == ("# my settings\n\n"
                                "platform = \"jp\"   # the EU platform\n"
                                "# the key of my team\n"
                                "profile = \"work\"\n")
    cli("config", "unset", "nonsense", expect=2)


def test_set_makes_a_private_file_and_checks_values(cli: Cli, isolated_home: Path,
                                                    tmp_path: Path) -> None:
    path = settings_file(isolated_home)
    relative = tmp_path / "work"
    relative.mkdir()
    proc = Cli()
    os.chdir(relative)  # a relative path is stored absolute, below home as ~/
    try:
        proc("config", "set", "identity", "key")
    finally:
        os.chdir(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert f'identity = "{relative / "key"}"' in path.read_text()
    cli("config", "set", "identity", str(isolated_home / ".ssh" / "k"))
    assert 'identity = "~/.ssh/k"' in path.read_text()
    before = path.read_bytes()
    for key, value in (("platform", "not a url"), ("profile", "-x"),
                       ("identity", "/a/\"quoted\""), ("identity", "-oProxyCommand=x"),
                       ("nope", "x")):
        result = cli("config", "set", "--", key, value, expect=2)
        assert result.stderr.startswith("rescale-ssh: error: ")
    assert path.read_bytes() == before


def test_set_writes_through_a_dotfiles_link(cli: Cli, isolated_home: Path) -> None:
    real = isolated_home / "dotfiles" / "rescale-ssh.toml"
    real.parent.mkdir(mode=0o700)
    real.write_text("# from my dotfiles\n")
    real.chmod(0o600)
    link = settings_file(isolated_home)
    link.parent.mkdir(parents=True, mode=0o700)
    link.symlink_to(real)
    cli("config", "set", "platform", "eu")
    assert link.is_symlink()
    assert real.read_text() == '# from my dotfiles\nplatform = "eu"\n'


# -- a bad file: one line, a hint, exit 3 -----------------------------------------------------


BAD_FILES = {
    "not key = value": ("identity ~/.ssh/x\n", "line 1"),
    "unquoted value": ("platform = eu\n", "line 1: the value of platform is not a quoted"),
    "table": ("[rescale]\nplatform = 'eu'\n", "line 1: a [table]"),
    "open string": ("# ok\nplatform = \"eu\n", "line 2: a string that does not end"),
    "bad escape": ('identity = "C:\\new\\x"\n', "line 1: an invalid escape"),
    "trailing junk": ("platform = 'eu' 'us'\n", "line 1: more after the value"),
    "twice": ("platform = 'eu'\nplatform = 'us'\n", "line 2: platform is set twice"),
    "multi-line": ('platform = """eu"""\n', "line 1: a multi-line string"),
    "not utf-8": ("# caf\udcc3\n", "line 1: bytes that are not UTF-8"),
    "unknown key": ("# x\nidentiy = '~/.ssh/x'\n", "unknown setting 'identiy'"),
    "relative identity": ("identity = 'keys/x'\n", "an absolute path, or one starting with ~"),
    "bad identity": ("identity = '/a#b'\n", "invalid identity file from"),
    "bad platform": ("platform = 'https://ex ample.com'\n", "invalid platform from"),
    "bad profile": ("profile = '-rf'\n", "invalid profile from"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_bad_file_is_one_line_and_a_hint_exit_3(name: str, cli: Cli, isolated_home: Path,
                                                  platform: FakePlatform,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command refuses it before it does anything."""
    text, expected = BAD_FILES[name]
    path = settings_file(isolated_home)
    path.parent.mkdir(parents=True, mode=0o700)
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    path.chmod(0o600)
    monkeypatch.delenv("RESCALE_SSH_CONFIG")
    # Every command, whatever setting it uses; also when a variable would win over the line.
    for args in (("jobs",), ("config", "show"), ("add", "Fotxeb", "--from-log", LOG),
                 ("key", "fingerprint")):
        result = cli(*args, expect=3)
        lines = result.stderr.splitlines()
        assert len(lines) == 2, result
        assert lines[0].startswith("rescale-ssh: error: ") and lines[1].startswith("hint: ")
        assert expected in lines[0] and str(path) in lines[0], result
        assert "Traceback" not in result.stderr
    if name == "unknown key":
        assert "identity, platform, profile, ssh_config" in lines[1]
    if name in ("relative identity", "bad identity", "bad platform", "bad profile"):
        assert "rescale-ssh config set" in lines[1]
    assert not (isolated_home / ".ssh" / "config").exists()


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_file_others_can_write_is_refused(what: str, cli: Cli, isolated_home: Path) -> None:
    path = write_settings(isolated_home, "platform = 'eu'\n")
    (path if what == "file" else path.parent).chmod(0o666 if what == "file" else 0o777)
    result = cli("config", "show", expect=3)
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and "writable by group or others" in lines[0], result
    assert "chmod go-w" in lines[1]


def test_the_reader_agrees_with_tomllib() -> None:
    tomllib = pytest.importorskip("tomllib")
    from rescale_ssh import userconfig

    samples = [
        'identity = "~/.ssh/x"\n',
        "platform='eu'  # trailing\n\n# only a comment\n",
        '  profile\t=\t"a\\"b\\\\c\\u00e9\\U0001F600\\t"\r\n',
        "identity = 'C:\\new\\x'\n",
        'platform = ""\nprofile = "#not a comment"',
        "ssh_config = '\"'\n",
    ]
    for text in samples:
        ours = {key: value for key, (value, _line) in userconfig.Document(
            "f", userconfig.parse(text, "f"), True).values().items()}
        assert ours == tomllib.loads(text), text
        for key, value in ours.items():  # what `config set` writes reads back the same
            assert tomllib.loads(f"{key} = {userconfig.quoted(value)}") == {key: value}


# -- key generate / import: the key written, made the default ---------------------------------


def test_generate_elsewhere_names_that_key(cli: Cli, isolated_home: Path) -> None:
    other = isolated_home / ".ssh" / "other"
    out = cli("--identity", str(other), "key", "generate", "--no-passphrase").stdout
    assert "`rescale-ssh key show --identity ~/.ssh/other`" in out
    assert "`rescale-ssh config set identity ~/.ssh/other`" in out
    assert "ssh-add" not in out
    assert not settings_file(isolated_home).exists()  # no terminal, no --default: not asked
    # The line it names shows the key it wrote.
    assert cli("key", "show", "--identity", str(other), "--no-copy").stdout == (
        other.with_suffix(".pub").read_text())


def test_generate_with_default_makes_it_stick(cli: Cli, isolated_home: Path) -> None:
    other = isolated_home / ".ssh" / "other"
    out = cli("--identity", str(other), "key", "generate", "--no-passphrase",
              "--default").stdout
    assert "Made it the default identity" in out
    assert "Next: `rescale-ssh key show`," in out
    assert settings_file(isolated_home).read_text().endswith('identity = "~/.ssh/other"\n')
    assert cli("key", "show", "--no-copy").stdout == other.with_suffix(".pub").read_text()
    # The default one needs no offer.
    out = cli("key", "generate", "--no-passphrase", "--force").stdout
    assert "Next: `rescale-ssh key show`," in out and "config set" not in out


def test_generate_with_a_passphrase_says_ssh_add(cli: Cli, isolated_home: Path,
                                                 tmp_path: Path) -> None:
    secret = tmp_path / "pass"
    secret.write_text("correct horse battery\n")
    out = cli("key", "generate", "--passphrase-file", str(secret)).stdout
    assert "`ssh-add ~/.ssh/rescale_ed25519`" in out
    spaced = isolated_home / "my keys" / "k"
    out = cli("--identity", str(spaced), "key", "generate", "--passphrase-file",
              str(secret), "--no-default").stdout
    assert f"`ssh-add '{spaced}'`" in out
    assert f"`rescale-ssh key show --identity '{spaced}'`" in out


def test_generate_asks_on_a_terminal(isolated_home: Path) -> None:
    other = isolated_home / ".ssh" / "asked"
    session = run_in_terminal(["--identity", str(other), "key", "generate", "--no-passphrase"],
                              [("your default identity", "y")])
    assert session.returncode == 0, session.output
    assert "Next: `rescale-ssh key show`," in session.output
    assert 'identity = "~/.ssh/asked"' in settings_file(isolated_home).read_text()
    session = run_in_terminal(["--identity", str(isolated_home / "no"), "key", "generate",
                               "--no-passphrase"], [("your default identity", "n")])
    assert session.returncode == 0, session.output
    assert "key show --identity ~/no`" in session.output
    assert 'identity = "~/.ssh/asked"' in settings_file(isolated_home).read_text()


def test_import_elsewhere_names_that_key(cli: Cli, isolated_home: Path) -> None:
    source = isolated_home / "downloaded"
    cli("--identity", str(source), "key", "generate", "--no-passphrase", "--no-default")
    target = isolated_home / ".ssh" / "imported"
    out = cli("--identity", str(target), "key", "import", str(source)).stdout
    assert "`rescale-ssh key show --identity ~/.ssh/imported`" in out
    out = cli("--identity", str(target), "key", "import", str(source), "--force",
              "--default").stdout
    assert "Next: `rescale-ssh key show`," in out
    assert cli("key", "show", "--no-copy").stdout == target.with_suffix(".pub").read_text()


# -- install and the hook ---------------------------------------------------------------------


def test_install_and_the_hook_use_the_file(cli: Cli, ssh_config: Path, isolated_home: Path,
                                           platform: FakePlatform, sshd: SSHServer,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """`install` takes identity and platform from the file, as from flags; `ssh -G` (the
    hook, in an environment without RESCALE_API_URL) then uses them; `config set` updates
    the installed hook."""
    monkeypatch.delenv("RESCALE_API_URL")
    write_settings(isolated_home, f'identity = "{sshd.client_key}"\n'
                   f'platform = "{platform.base_url}"\n')
    cli("install", "--yes")
    platform.add_job("Fotxeb", host="203.0.113.7", port=2222)
    got = ssh_config_of(str(ssh_config), "rescale-Fotxeb")
    assert got["hostname"] == ["203.0.113.7"]
    assert got["identityfile"] == [str(sshd.client_key)]
    other = isolated_home / ".ssh" / "other_ed25519"
    out = cli("config", "set", "identity", str(other)).stdout
    assert "Updated the installed hook's identity" in out
    assert ssh_config_of(str(ssh_config), "rescale-Fotxeb")["identityfile"] == [str(other)]
    platform.add_job("Second", host="203.0.113.8", port=2222)
    assert ssh_config_of(str(ssh_config), "rescale-Second")["identityfile"] == [str(other)]
    cli("config", "unset", "identity")
    assert ssh_config_of(str(ssh_config), "rescale-Second")["identityfile"] == [
        str(isolated_home / ".ssh" / "rescale_ed25519")]


def test_the_hook_never_reads_the_file(cli: Cli, ssh_config: Path, isolated_home: Path,
                                       platform: FakePlatform) -> None:
    """A broken settings file written after `install` never makes ssh fail."""
    cli("install", "--yes")
    write_settings(isolated_home, "this is not toml\n")
    platform.add_job("Fotxeb", host="203.0.113.7", port=2222)
    assert ssh_config_of(str(ssh_config), "rescale-Fotxeb")["hostname"] == ["203.0.113.7"]
    assert ssh_config_of(str(ssh_config), "example.org")["hostname"] == ["example.org"]


def test_set_identity_where_there_is_no_key_warns(cli: Cli, isolated_home: Path) -> None:
    """Issue 15's walk: `config set identity ~/nokey` was taken without a word."""
    result = cli("config", "set", "identity", "~/nokey")
    assert "rescale-ssh: warning: there is no key at ~/nokey yet" in result.stderr
    assert "key generate --identity ~/nokey" in result.stderr
    cli("key", "generate", "--no-passphrase", "--identity", str(isolated_home / "other"))
    quiet = cli("config", "set", "identity", str(isolated_home / "other"))
    assert "warning" not in quiet.stderr
