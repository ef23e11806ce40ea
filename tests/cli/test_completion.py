"""TAB completion in real shells (bash, zsh, fish), and where they and man find our files.

Each shell runs the generated script in completions/ (or the files an install shipped) and
calls back into the installed `rescale-ssh`, as on a user's machine; HOME is the test's.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import IN_CI, Cli, require

ROOT = Path(__file__).resolve().parents[2]
COMPLETIONS = ROOT / "completions"
BIN = Path(sys.executable).parent
BASH_COMPLETION = Path("/usr/share/bash-completion/bash_completion")


def path_with(*folders: Path, venv: bool = True) -> str:
    """PATH with ``folders`` first; without ``venv``, without the test venv's bin folder (whose
    share/man has the page when the package is installed there, as in CI), any other
    ~/.local/bin, and any other folder with the page in its ../share/man."""
    rest = os.environ.get("PATH", os.defpath).split(os.pathsep)
    if not venv:  # nor any folder whose ../share/man has the page already: another venv
        # with rescale-ssh, the real user's ~/.local/bin after their own `install`
        ours = os.path.dirname(sys.executable)
        rest = [p for p in rest if os.path.realpath(p) != os.path.realpath(ours)
                and not p.rstrip("/").endswith("/.local/bin")
                and not os.path.exists(os.path.join(p, "..", "share", "man", "man1",
                                                    "rescale-ssh.1"))]
    return os.pathsep.join([*map(str, folders), *rest])


def bash_completion() -> Path:
    """bash-completion's loader (the package of that name); like require()."""
    if not BASH_COMPLETION.exists():
        message = "bash-completion is not installed"
        if IN_CI:
            pytest.fail(message + " (CI=true: .ci/run must install it)")
        pytest.skip(message)
    return BASH_COMPLETION


# -- bash ----------------------------------------------------------------------------------------


def bash_complete(line: str, *, setup: str, path: str) -> list[str]:
    """COMPREPLY for LINE<TAB>, the completion function called as bash calls it."""
    words = line.split(" ")
    script = (
        f"{setup}\n"
        f"COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; "
        f"COMP_LINE='{line}'; COMP_POINT={len(line)}\n"
        "func=$(complete -p rescale-ssh | sed -E 's/.* -F ([^ ]+) .*/\\1/')\n"
        f'"$func" rescale-ssh "{words[-1]}" "{words[-2]}"\n'
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    proc = subprocess.run([require("bash"), "--norc", "--noprofile", "-c", script],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": path})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_bash_completes_commands_in_a_real_bash(cli: Cli) -> None:
    assert (BIN / "rescale-ssh").exists(), "the console script must be installed"
    setup = f"source {COMPLETIONS / 'rescale-ssh.bash'}"
    assert "key" in bash_complete("rescale-ssh ke", setup=setup, path=path_with(BIN))


def test_bash_completes_global_options_after_the_command(cli: Cli) -> None:
    setup = f"source {COMPLETIONS / 'rescale-ssh.bash'}"
    assert bash_complete("rescale-ssh add Fotxeb --ssh", setup=setup,
                         path=path_with(BIN)) == ["--ssh-config"]
    offered = bash_complete("rescale-ssh key generate --", setup=setup, path=path_with(BIN))
    assert {"--type", "--ssh-config", "--platform", "--profile", "--identity",
            "--debug"} <= set(offered)
    assert "--version" not in offered  # only the program's own option


def complete_bash(*words: str, env: dict[str, str] | None = None) -> list[str]:
    """The program's answer to bash's TAB (what the script asks for), without a shell."""
    proc = subprocess.run(
        [sys.executable, "-m", "rescale_ssh"], capture_output=True, text=True, timeout=60,
        env={**os.environ, **(env or {}), "_RESCALE_SSH_COMPLETE": "complete_bash",
             "COMP_WORDS": " ".join(words), "COMP_CWORD": str(len(words) - 1)})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_global_options_after_the_command_take_effect_in_completion(
        cli: Cli, tmp_path: Path) -> None:
    other = tmp_path / "other.conf"
    cli("--ssh-config", str(other), "add", "Fotxeb", "--from-log",
        "Command: ssh uprod_Fotxeb@192.0.2.1")
    assert complete_bash("rescale-ssh", "remove", "Fo") == []  # not in the default config
    assert complete_bash("rescale-ssh", "remove", "--ssh-config", str(other), "Fo") == ["Fotxeb"]
    # Its value, after the command: the program's option, completed by the shell (file names).
    assert complete_bash("rescale-ssh", "add", "Fotxeb", "--ssh-config", "") == []
    assert complete_bash("rescale-ssh", "add", "--debug", "--deb") == []  # given already
    assert complete_bash("rescale-ssh", "hook", "--ssh") == []  # ssh's words, not ours


# -- zsh -----------------------------------------------------------------------------------------


def zsh_complete(line: str, fpath: Path, tmp_path: Path, path: str) -> list[str]:
    """Type LINE, TAB, then run the completed line as `printf '[%s]\\n' LINE` in a real
    interactive zsh (compinit; the folder on fpath as the README says): the words printed."""
    zsh = require("zsh")
    zdotdir = tmp_path / "zdotdir"
    zdotdir.mkdir(exist_ok=True)
    (zdotdir / ".zshrc").write_text(
        f"fpath=({fpath} $fpath)\n"
        f"autoload -Uz compinit && compinit -u -d {zdotdir}/.zcompdump\n"
        "bindkey -e\nPS1='READY> '\n")
    env = {**os.environ, "ZDOTDIR": str(zdotdir), "TERM": "xterm", "PATH": path}
    pid, fd = pty.fork()
    if pid == 0:  # the child: only exec
        try:
            os.execve(zsh, [zsh, "-i"], env)  # noqa: S606
        finally:
            os._exit(127)
    shown = b""

    def wait_for(prompts: int) -> None:
        nonlocal shown
        deadline = time.monotonic() + 60
        while shown.count(b"READY> ") < prompts:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError(f"zsh did not answer; it showed:\n{shown!r}")
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                raise AssertionError(f"zsh ended; it showed:\n{shown!r}")
            shown += chunk

    try:
        wait_for(1)
        os.write(fd, line.encode() + b"\t")
        time.sleep(0.2)  # (zsh reads typed-ahead keys after the completion anyway)
        os.write(fd, b"\x01printf '[%s]\\n' \r")  # Ctrl-A: to the start of the line
        wait_for(2)
        os.write(fd, b"exit\r")
    finally:
        os.close(fd)
        os.waitpid(pid, 0)
    printed = shown.split(b"READY> ")[1].decode(errors="replace")
    return re.findall(r"^\[([^\]\r\n]*)\]\r?$", printed, re.MULTILINE)


def test_zsh_completes_on_the_first_tab_from_fpath(cli: Cli, tmp_path: Path) -> None:
    assert zsh_complete("rescale-ssh ke", COMPLETIONS, tmp_path,
                        path_with(BIN)) == ["rescale-ssh", "key"]


def test_zsh_completes_global_options_after_the_command(cli: Cli, tmp_path: Path) -> None:
    assert zsh_complete("rescale-ssh add Fotxeb --ssh", COMPLETIONS, tmp_path,
                        path_with(BIN)) == ["rescale-ssh", "add", "Fotxeb", "--ssh-config"]


# -- fish ----------------------------------------------------------------------------------------


def fish_complete(line: str, path: str) -> list[str]:
    """`complete --do-complete LINE` in a real fish: the candidates (without their help)."""
    proc = subprocess.run([require("fish"), "-c", f"complete --do-complete '{line}'"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": path})
    assert proc.returncode == 0, proc.stderr
    return [candidate.split("\t")[0] for candidate in proc.stdout.splitlines()]


def fish_vendor_dir(home: Path) -> Path:
    """Where fish looks per user ($__fish_user_data_dir/vendor_completions.d)."""
    folder = home / ".local" / "share" / "fish" / "vendor_completions.d"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_fish_completes_commands_and_global_options(cli: Cli, isolated_home: Path) -> None:
    target = fish_vendor_dir(isolated_home) / "rescale-ssh.fish"
    target.symlink_to(COMPLETIONS / "rescale-ssh.fish")
    assert fish_complete("rescale-ssh ke", path_with(BIN)) == ["key"]
    assert fish_complete("rescale-ssh add Fotxeb --ssh", path_with(BIN)) == ["--ssh-config"]


# -- where the shells and man find the files of an installation ----------------------------------


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip install` of the wheel into a fresh venv elsewhere: bin/rescale-ssh and share/ as
    pip lays them out. Its dependencies come from this test environment (a .pth), so nothing
    is downloaded."""
    pytest.importorskip("build")
    where = tmp_path_factory.mktemp("venv")
    dist = where / "dist"
    proc = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation",
                           "--outdir", str(dist), str(ROOT)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    env = where / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True,
                   timeout=120)
    wheel = next(dist.glob("rescale_ssh-*.whl"))
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"),
                           "install", "-q", "--no-deps", "--no-index", str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    site = next(env.glob("lib/python*/site-packages"))
    ours = [p for p in sys.path if p.endswith("site-packages")]
    (site / "test-deps.pth").write_text("\n".join(ours) + "\n")
    return env


def pipx_like(home: Path, venv: Path) -> Path:
    """The command linked into ~/.local/bin from a venv elsewhere, as pipx installs it."""
    bin_dir = home / ".local" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / "rescale-ssh").symlink_to(venv / "bin" / "rescale-ssh")
    return bin_dir


def man_finds(path: str) -> bool:
    proc = subprocess.run([require("man"), "-w", "rescale-ssh"], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PATH": path,
                                                      "MANPATH": ""})
    return proc.returncode == 0


@pytest.mark.slow
def test_a_venv_in_use_finds_the_man_page_by_itself(venv: Path) -> None:
    # man-db derives <bin>/../share/man from PATH: an activated venv needs nothing more.
    assert man_finds(path_with(venv / "bin"))


@pytest.mark.slow
def test_install_links_completion_and_man_page_where_shells_look(
        venv: Path, isolated_home: Path, tmp_path: Path) -> None:
    bin_dir = pipx_like(isolated_home, venv)
    path = path_with(bin_dir, venv=False)
    loader = bash_completion()
    config = isolated_home / ".ssh" / "config"

    def run(*args: str) -> str:
        proc = subprocess.run(["rescale-ssh", "--ssh-config", str(config), *args],
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PATH": path})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    bash_setup = f"source {loader}\n_completion_loader rescale-ssh"
    # Before `install`: man and bash-completion look in ~/.local/share, fish there and in
    # the system's folders: none of them finds the venv's files through the link.
    assert not man_finds(path)
    assert fish_complete("rescale-ssh ke", path) != ["key"]
    assert "key" not in bash_complete("rescale-ssh ke", setup=bash_setup, path=path)

    # pipx >= 1.4 links the man page itself: install leaves that link alone, and a file of
    # the user's where fish looks too.
    share = isolated_home / ".local" / "share"
    man_link = share / "man" / "man1" / "rescale-ssh.1"
    man_link.parent.mkdir(parents=True)
    man_link.symlink_to(venv / "share" / "man" / "man1" / "rescale-ssh.1")
    fish_own = fish_vendor_dir(isolated_home) / "other.fish"
    fish_own.write_text("# the user's\n")

    out = run("install", "--yes")
    assert "Linked shell completion and the man page: " in out
    links = {
        share / "bash-completion" / "completions" / "rescale-ssh":
            "share/bash-completion/completions/rescale-ssh",
        share / "zsh" / "site-functions" / "_rescale-ssh": "share/zsh/site-functions/_rescale-ssh",
        share / "fish" / "vendor_completions.d" / "rescale-ssh.fish":
            "share/fish/vendor_completions.d/rescale-ssh.fish",
        share / "powershell" / "rescale-ssh.ps1": "share/powershell/rescale-ssh.ps1",
    }
    for link, shipped in links.items():
        assert link.is_symlink() and link.resolve() == (venv / shipped).resolve(), link
        assert str(link) in out
    assert str(man_link) not in out

    assert man_finds(path)
    assert "key" in bash_complete("rescale-ssh ke", setup=bash_setup, path=path)
    assert fish_complete("rescale-ssh ke", path) == ["key"]
    assert fish_complete("rescale-ssh add Fotxeb --ssh", path) == ["--ssh-config"]
    assert zsh_complete("rescale-ssh ke", share / "zsh" / "site-functions", tmp_path,
                        path) == ["rescale-ssh", "key"]
    assert "Linked" not in run("install", "--yes")  # nothing more to link

    listed = run("uninstall", "--dry-run")
    for link in links:
        assert f"would remove {link}\n" in listed
    run("uninstall", "--yes")
    for link in links:
        assert not os.path.lexists(link), link
    assert man_link.is_symlink(), "pipx's link is pipx's"
    assert fish_own.read_text() == "# the user's\n"
    assert not (isolated_home / ".local" / "state" / "rescale-ssh" / "shell-files").exists()


def test_install_never_links_over_a_file_of_the_user(cli: Cli, isolated_home: Path) -> None:
    own = isolated_home / ".local" / "share" / "bash-completion" / "completions" / "rescale-ssh"
    own.parent.mkdir(parents=True)
    own.write_text("# my own\n")
    cli("install", "--yes")
    cli("uninstall", "--yes")
    assert own.read_text() == "# my own\n" and not own.is_symlink()
