"""Issue 14, item 8: a job ID or alias that differs only in case from a known job says "did you
mean rescale-Fotxeb?", in the CLI and in the hook's failure, which ssh shows. Job IDs are
case-sensitive; users type aliases in lower case."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.fakeplatform import FakePlatform
from tests.helpers import Cli, require

LINE = ("Instance ready for ssh access. Command: ssh -i </path/to/key> uprod_Fotxeb@203.0.113.7; "
        "working directory: /enc/uprod_Fotxeb/work")


def ssh(config: Path, alias: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require("ssh"), "-F", str(config), "-o", "BatchMode=yes", alias,
                           "true"], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_the_cli_names_the_job_that_differs_only_in_case(cli: Cli,
                                                         platform: FakePlatform) -> None:
    cli("add", "Fotxeb", "--from-log", LINE)
    for args in (("add", "fotxeb"), ("status", "fotxeb"), ("path", "FOTXEB")):
        result = cli(*args, expect=5)
        assert "hint: did you mean rescale-Fotxeb? Job IDs are case-sensitive" in \
            result.stderr, result
        assert result.stderr.count("case-sensitive") == 1, result  # not twice, nested
    # A job known by no other case keeps the usual hint.
    assert "did you mean" not in cli("add", "Nosuch", expect=5).stderr


def test_the_hook_names_it_where_ssh_shows_it(cli: Cli, platform: FakePlatform,
                                             ssh_config: Path) -> None:
    """After `ssh rescale-Ptczhb` went through the hook, `ssh rescale-ptczhb` (no such job)
    said only that the job was not found."""
    platform.add_job("Ptczhb", host="127.0.0.1", port=9)
    cli("install", "--yes")
    ssh(ssh_config, "rescale-Ptczhb")
    result = ssh(ssh_config, "rescale-ptczhb")
    assert result.returncode == 255
    assert "did you mean rescale-Ptczhb? Job IDs are case-sensitive" in result.stderr, \
        result.stderr


def test_a_live_job_on_the_platform_is_named_too(cli: Cli, platform: FakePlatform) -> None:
    """Known neither as a block nor through the hook: the live list names it (one request,
    on this error only)."""
    platform.add_job("Qwerty")
    result = cli("add", "qwerty", expect=5)
    assert "hint: did you mean rescale-Qwerty? Job IDs are case-sensitive" in result.stderr
    assert result.stderr.count("did you mean") == 1
