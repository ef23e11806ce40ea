"""`key generate/show/fingerprint/export/import` checked with the real ssh-keygen and puttygen.

Interactive prompts run in a real pseudo-terminal (tests/terminal.py): a typed passphrase that
appears in the terminal's output was echoed.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from tests.helpers import Cli, Result, require
from tests.terminal import run_in_terminal

PASSPHRASE = "correct horse battery"


def identity(home: Path) -> Path:
    return home / ".ssh" / "rescale_ed25519"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def run(command: list[str], *, expect: int | None = 0) -> Result:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    result = Result(command, proc.returncode, proc.stdout, proc.stderr)
    if expect is not None:
        assert proc.returncode == expect, str(result)
    return result


def material(line: str) -> str:
    """``<type> <base64>`` of an OpenSSH public key line."""
    return " ".join(line.split()[:2])


def derived_public(key: Path, passphrase: str = "") -> str:
    """What ssh-keygen derives from the private key (it fails on a wrong passphrase)."""
    return material(run([require("ssh-keygen"), "-y", "-P", passphrase, "-f", str(key)]).stdout)


def secret_file(tmp_path: Path, text: str = PASSPHRASE, name: str = "pass") -> Path:
    path = tmp_path / name
    path.write_text(text + "\n")
    return path


def test_generate_ed25519_without_passphrase(cli: Cli, isolated_home: Path) -> None:
    result = cli("key", "generate", "--no-passphrase")
    key = identity(isolated_home)
    assert result.stdout.startswith(f"Generated {key} (ED25519, without a passphrase)")
    assert mode(key) == 0o600
    assert mode(key.parent) == 0o700
    assert mode(Path(f"{key}.pub")) == 0o644
    public = Path(f"{key}.pub").read_text()
    assert public.endswith("\n") and public.count("\n") == 1
    kind, _, comment = public.strip().split(" ", 2)
    assert kind == "ssh-ed25519"
    assert re.fullmatch(rf"rescale-ssh@\S+ {dt.date.today().isoformat()}", comment), comment
    assert derived_public(key) == material(public)
    # No passphrase: ssh-keygen reads it with an empty one (above) and any other is ignored.
    assert key.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")


def test_generate_rsa_with_a_passphrase_file(cli: Cli, isolated_home: Path,
                                             tmp_path: Path) -> None:
    secret = secret_file(tmp_path)
    cli("key", "generate", "--type", "rsa", "--bits", "3072", "--passphrase-file", str(secret),
        "--comment", "work laptop")
    key = identity(isolated_home)
    public = Path(f"{key}.pub").read_text()
    assert public.startswith("ssh-rsa ") and public.strip().endswith(" work laptop")
    # The passphrase is needed: an empty or wrong one is refused by ssh-keygen itself.
    run([require("ssh-keygen"), "-y", "-P", "", "-f", str(key)], expect=255)
    run([require("ssh-keygen"), "-y", "-P", "wrong passphrase", "-f", str(key)], expect=255)
    assert derived_public(key, PASSPHRASE) == material(public)
    listed = cli("key", "fingerprint").stdout
    assert listed == run([require("ssh-keygen"), "-l", "-f", str(key)]).stdout
    assert listed.startswith("3072 SHA256:") and listed.endswith(" work laptop (RSA)\n")
    assert PASSPHRASE not in listed


@pytest.mark.parametrize("protected", [False, True], ids=["clear", "passphrase"])
@pytest.mark.parametrize("with_pub", [True, False], ids=["pub", "no-pub"])
def test_fingerprint_is_what_ssh_keygen_prints(cli: Cli, isolated_home: Path, tmp_path: Path,
                                               protected: bool, with_pub: bool) -> None:
    # Keys made by ssh-keygen itself, with a comment inside the private key.
    key = identity(isolated_home)
    key.parent.mkdir(mode=0o700)
    run([require("ssh-keygen"), "-q", "-t", "ed25519", "-N", PASSPHRASE if protected else "",
         "-C", "made by ssh-keygen", "-f", str(key)])
    if not with_pub:
        Path(f"{key}.pub").unlink()
    expected = run([require("ssh-keygen"), "-l", "-f", str(key)]).stdout
    assert cli("key", "fingerprint").stdout == expected


def test_rsa_bits_are_checked(cli: Cli, isolated_home: Path) -> None:
    small = cli("key", "generate", "--type", "rsa", "--bits", "2048", "--no-passphrase",
                expect=2)
    assert "3072" in small.stderr
    cli("key", "generate", "--bits", "4096", "--no-passphrase", expect=2)  # ed25519
    cli("key", "generate", "--type", "dsa", "--no-passphrase", expect=2)
    assert not identity(isolated_home).exists()


def test_never_overwrites_without_force(cli: Cli, isolated_home: Path) -> None:
    cli("key", "generate", "--no-passphrase")
    key = identity(isolated_home)
    before = (key.read_bytes(), Path(f"{key}.pub").read_bytes())
    refused = cli("key", "generate", "--no-passphrase", expect=3)
    assert refused.stderr.splitlines()[0] == (
        f"rescale-ssh: error: {key} already exists; not overwriting it"
    )
    assert "--force" in refused.stderr.splitlines()[1]
    assert (key.read_bytes(), Path(f"{key}.pub").read_bytes()) == before
    # A lone .pub (its private key deleted) is not overwritten either.
    key.unlink()
    cli("key", "generate", "--no-passphrase", expect=3)
    assert not key.exists()
    replaced = cli("key", "generate", "--no-passphrase", "--force")
    assert replaced.stdout.startswith(f"Replaced {key}")
    assert Path(f"{key}.pub").read_bytes() != before[1]
    assert mode(key) == 0o600


def test_identity_flag_and_environment(cli: Cli, tmp_path: Path) -> None:
    flag = tmp_path / "keys" / "by-flag"
    env = tmp_path / "keys" / "by-env"
    cli("key", "generate", "--no-passphrase", "--identity", str(flag))
    cli("key", "generate", "--no-passphrase", env={"RESCALE_SSH_IDENTITY": str(env)})
    assert flag.exists() and env.exists()
    assert mode(flag.parent) == 0o700


def test_no_passphrase_source_without_a_terminal_exits_2(cli: Cli, isolated_home: Path,
                                                          tmp_path: Path) -> None:
    result = cli("key", "generate", expect=2)
    assert "--passphrase-file" in result.stderr and "--no-passphrase" in result.stderr
    assert not identity(isolated_home).exists()
    empty = secret_file(tmp_path, "")
    cli("key", "generate", "--passphrase-file", str(empty), expect=2)
    short = secret_file(tmp_path, "abc", "short")
    cli("key", "generate", "--passphrase-file", str(short), expect=2)
    cli("key", "generate", "--no-passphrase", "--passphrase-file", str(short), expect=2)
    assert not identity(isolated_home).exists()


def test_interactive_passphrase_is_asked_twice_and_hidden(isolated_home: Path) -> None:
    mismatch = run_in_terminal(
        ["key", "generate"],
        [("Passphrase", PASSPHRASE), ("Repeat", PASSPHRASE + "x"),
         ("Passphrase", PASSPHRASE), ("Repeat", PASSPHRASE)],
    )
    assert mismatch.returncode == 0, mismatch.output
    assert "do not match" in mismatch.output
    assert PASSPHRASE not in mismatch.output, "the passphrase was echoed"
    key = identity(isolated_home)
    assert derived_public(key, PASSPHRASE) == material(Path(f"{key}.pub").read_text())
    run([require("ssh-keygen"), "-y", "-P", "", "-f", str(key)], expect=255)


def test_show_prints_the_key_and_where_to_paste_it(cli: Cli, isolated_home: Path,
                                                  tmp_path: Path) -> None:
    cli("key", "generate", "--no-passphrase")
    public = Path(f"{identity(isolated_home)}.pub").read_text()
    # A clipboard tool on PATH that records what it was given.
    tools = tmp_path / "bin"
    tools.mkdir()
    clip = tmp_path / "clipboard"
    fake = tools / "wl-copy"
    fake.write_text(f"#!/bin/sh\ncat > '{clip}'\n")
    fake.chmod(0o755)
    env = {"PATH": f"{tools}{os.pathsep}{os.environ['PATH']}", "WAYLAND_DISPLAY": "wayland-0"}
    shown = cli("key", "show", env=env)
    assert shown.stdout == public
    assert "account Settings → Job Settings → SSH Public Key, then Save" in shown.stderr
    assert "Only jobs submitted after saving get it" in shown.stderr
    assert "Copied to the clipboard (wl-copy)" in shown.stderr
    assert clip.read_text() == public.strip()

    clip.unlink()
    cli("key", "show", "--no-copy", env=env)
    assert not clip.exists()
    # No usable tool (wl-copy needs a Wayland display): the user is told to copy by hand.
    bare = cli("key", "show", env={"PATH": str(tools), "WAYLAND_DISPLAY": ""})
    assert "No clipboard tool found" in bare.stderr
    assert not clip.exists()


def test_show_without_the_pub_file(cli: Cli, isolated_home: Path, tmp_path: Path) -> None:
    # The public half of an OpenSSH key is readable without the passphrase; its comment is not.
    cli("key", "generate", "--passphrase-file", str(secret_file(tmp_path)))
    pub = Path(f"{identity(isolated_home)}.pub")
    expected = material(pub.read_text())
    pub.unlink()
    assert cli("key", "show", "--no-copy").stdout == expected + "\n"


def test_show_without_a_key_says_how_to_make_one(cli: Cli, isolated_home: Path) -> None:
    result = cli("key", "show", expect=3)
    assert result.stderr.splitlines() == [
        f"rescale-ssh: error: no key at {identity(isolated_home)}",
        "hint: `rescale-ssh key generate` makes one, or pass --identity PATH",
    ]


def puttygen_to_openssh(ppk: Path, out: Path, passphrase: Path | None) -> Result:
    """puttygen decrypts the .ppk (checking its MAC) and writes an OpenSSH private key."""
    command = [require("puttygen"), str(ppk), "-O", "private-openssh-new", "-o", str(out),
               "--new-passphrase", os.devnull]
    if passphrase is not None:
        command += ["--old-passphrase", str(passphrase)]
    return run(command, expect=None)


@pytest.mark.parametrize("key_type", ["ed25519", "rsa"])
def test_export_ppk_without_passphrase_is_read_by_puttygen(
    cli: Cli, isolated_home: Path, tmp_path: Path, key_type: str
) -> None:
    cli("key", "generate", "--no-passphrase", "--type", key_type)
    public = Path(f"{identity(isolated_home)}.pub").read_text()
    out = tmp_path / "win" / "rescale.ppk"
    out.parent.mkdir()
    result = cli("key", "export", "--ppk", str(out))
    assert "not encrypted" in result.stdout
    text = out.read_text()
    assert text.startswith(f"PuTTY-User-Key-File-3: ssh-{key_type}\nEncryption: none\n")
    assert f"Comment: {public.split(' ', 2)[2].strip()}\n" in text
    assert mode(out) == 0o600
    listed = run([require("puttygen"), str(out), "-O", "public-openssh"]).stdout
    assert listed.strip() == public.strip()
    converted = tmp_path / "converted"
    assert puttygen_to_openssh(out, converted, None).returncode == 0
    assert derived_public(converted) == material(public)
    cli("key", "export", "--ppk", str(out), expect=3)  # exists: --force needed
    cli("key", "export", "--ppk", str(out), "--force")


@pytest.mark.parametrize("key_type", ["ed25519", "rsa"])
def test_export_ppk_with_passphrase_needs_it_in_puttygen(
    cli: Cli, isolated_home: Path, tmp_path: Path, key_type: str
) -> None:
    secret = secret_file(tmp_path)
    cli("key", "generate", "--type", key_type, "--passphrase-file", str(secret))
    public = Path(f"{identity(isolated_home)}.pub").read_text()
    out = tmp_path / "rescale.ppk"
    # The key's passphrase is needed to read it; without a terminal, only from a file.
    refused = cli("key", "export", "--ppk", str(out), expect=2)
    assert "--passphrase-file" in refused.stderr
    wrong = secret_file(tmp_path, "not the passphrase", "wrong")
    cli("key", "export", "--ppk", str(out), "--passphrase-file", str(wrong), expect=2)
    assert not out.exists()

    result = cli("key", "export", "--ppk", str(out), "--passphrase-file", str(secret))
    assert "encrypted with the key's passphrase" in result.stdout
    text = out.read_text()
    assert "Encryption: aes256-cbc\n" in text and "Key-Derivation: Argon2id\n" in text
    assert PASSPHRASE not in text
    converted = tmp_path / "converted"
    assert puttygen_to_openssh(out, converted, secret).returncode == 0
    assert derived_public(converted) == material(public)
    failed = puttygen_to_openssh(out, tmp_path / "nope", wrong)
    assert failed.returncode != 0, failed
    assert not (tmp_path / "nope").exists()


def test_interactive_export_asks_the_passphrase_hidden(cli: Cli, isolated_home: Path,
                                                      tmp_path: Path) -> None:
    cli("key", "generate", "--passphrase-file", str(secret_file(tmp_path)))
    out = tmp_path / "k.ppk"
    session = run_in_terminal(["key", "export", "--ppk", str(out)],
                              [("Passphrase of", PASSPHRASE)])
    assert session.returncode == 0, session.output
    assert PASSPHRASE not in session.output
    assert "Encryption: aes256-cbc" in out.read_text()


@pytest.mark.parametrize("protected", [False, True], ids=["clear", "passphrase"])
@pytest.mark.parametrize("key_type", ["ed25519", "rsa"])
def test_import_ppk_made_by_puttygen(cli: Cli, isolated_home: Path, tmp_path: Path,
                                     key_type: str, protected: bool) -> None:
    secret = secret_file(tmp_path)
    ppk = tmp_path / "from-windows.ppk"
    run([require("puttygen"), "-q", "-t", key_type, *(["-b", "3072"] if key_type == "rsa"
                                                      else []),
         "-C", "putty key", "-o", str(ppk), "--new-passphrase",
         str(secret) if protected else os.devnull])
    expected = run([require("puttygen"), str(ppk), "-O", "public-openssh"]).stdout.strip()
    args = ["key", "import", str(ppk)]
    if protected:
        wrong = secret_file(tmp_path, "not it", "wrong")
        cli(*args, "--passphrase-file", str(wrong), expect=2)
        cli(*args, expect=2)  # no terminal to ask on
        assert not identity(isolated_home).exists()
        args += ["--passphrase-file", str(secret)]
    result = cli(*args)
    key = identity(isolated_home)
    assert result.stdout.startswith(f"Imported {ppk} as {key}")
    assert Path(f"{key}.pub").read_text() == expected + "\n"  # the comment is kept
    assert mode(key) == 0o600
    assert derived_public(key, PASSPHRASE if protected else "") == material(expected)
    if protected:
        run([require("ssh-keygen"), "-y", "-P", "", "-f", str(key)], expect=255)
    cli(*args, expect=3)  # the identity exists now
    cli(*args, "--force")


def test_import_openssh_key_is_copied_as_is(cli: Cli, isolated_home: Path,
                                            tmp_path: Path) -> None:
    source = tmp_path / "id_ed25519"
    run([require("ssh-keygen"), "-q", "-t", "ed25519", "-N", PASSPHRASE, "-C", "old key",
         "-f", str(source)])
    # Protected, but copied without asking: it keeps its own passphrase.
    cli("key", "import", str(source))
    key = identity(isolated_home)
    assert key.read_bytes() == source.read_bytes()
    assert Path(f"{key}.pub").read_text() == Path(f"{source}.pub").read_text()
    assert mode(key) == 0o600


def test_export_then_import_round_trip(cli: Cli, isolated_home: Path, tmp_path: Path) -> None:
    secret = secret_file(tmp_path)
    cli("key", "generate", "--passphrase-file", str(secret))
    key = identity(isolated_home)
    public = Path(f"{key}.pub").read_text()
    out = tmp_path / "k.ppk"
    cli("key", "export", "--ppk", str(out), "--passphrase-file", str(secret))
    again = tmp_path / "again"
    cli("key", "import", str(out), "--passphrase-file", str(secret), "--identity", str(again))
    assert Path(f"{again}.pub").read_text() == public
    assert derived_public(again, PASSPHRASE) == material(public)


def test_damaged_ppk_is_refused(cli: Cli, isolated_home: Path, tmp_path: Path) -> None:
    cli("key", "generate", "--no-passphrase")
    out = tmp_path / "k.ppk"
    cli("key", "export", "--ppk", str(out))
    text = out.read_text()
    out.write_text(text.replace("Comment: rescale-ssh@", "Comment: someone-else@"))
    result = cli("key", "import", str(out), "--identity", str(tmp_path / "x"), expect=3)
    assert "checksum" in result.stderr
    assert not (tmp_path / "x").exists()
    out.write_text("PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n")
    cli("key", "import", str(out), "--identity", str(tmp_path / "x"), expect=3)
    out.write_text("just some text\n")
    cli("key", "import", str(out), "--identity", str(tmp_path / "x"), expect=3)


def test_help_of_every_key_and_account_command_has_an_example(cli: Cli) -> None:
    for command in (("key", "generate"), ("key", "show"), ("key", "fingerprint"),
                    ("key", "export"), ("key", "import"), ("login",), ("logout",),
                    ("whoami",), ("doctor",)):
        out = cli(*command, "--help").stdout
        assert "Example: rescale-ssh " in out, command


def test_import_pem_and_export_ecdsa(cli: Cli, isolated_home: Path, tmp_path: Path) -> None:
    # An old-style PEM RSA key with a passphrase, as older tools wrote them.
    pem = tmp_path / "legacy_rsa"
    run([require("ssh-keygen"), "-q", "-t", "rsa", "-b", "3072", "-m", "PEM", "-N", PASSPHRASE,
         "-C", "legacy", "-f", str(pem)])
    assert pem.read_text().startswith("-----BEGIN RSA PRIVATE KEY-----")
    secret = secret_file(tmp_path)
    cli("key", "import", str(pem), "--passphrase-file", str(secret))
    key = identity(isolated_home)
    assert key.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert Path(f"{key}.pub").read_text() == Path(f"{pem}.pub").read_text()
    assert derived_public(key, PASSPHRASE) == material(Path(f"{pem}.pub").read_text())

    # ECDSA keys go to PuTTY too.
    ecdsa = tmp_path / "id_ecdsa"
    run([require("ssh-keygen"), "-q", "-t", "ecdsa", "-b", "384", "-N", "", "-C", "ec",
         "-f", str(ecdsa)])
    out = tmp_path / "ec.ppk"
    cli("key", "export", "--ppk", str(out), "--identity", str(ecdsa))
    assert out.read_text().startswith("PuTTY-User-Key-File-3: ecdsa-sha2-nistp384\n")
    converted = tmp_path / "converted"
    assert puttygen_to_openssh(out, converted, None).returncode == 0
    assert derived_public(converted) == material(Path(f"{ecdsa}.pub").read_text())
    assert cli("key", "fingerprint", "--identity", str(ecdsa)).stdout == run(
        [require("ssh-keygen"), "-l", "-f", str(ecdsa)]).stdout
