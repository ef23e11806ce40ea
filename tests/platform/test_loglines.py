"""Parsing the 'Instance ready for ssh access' line (rescale-api.md)."""

from __future__ import annotations

import pytest

from rescale_ssh.platform import loglines
from rescale_ssh.platform.loglines import SSHLine

CANONICAL = (
    "Instance ready for ssh access. Command: ssh -i </path/to/key> uprod_Fotxeb@203.0.113.7; "
    "working directory: /enc/uprod_Fotxeb/work"
)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (CANONICAL, SSHLine("uprod_Fotxeb", "203.0.113.7", None, "/enc/uprod_Fotxeb/work")),
        (
            "Instance ready for ssh access.   Command:   ssh   -i  </path/to/key>   -p 2222 "
            "u@198.51.100.2 ;  working directory:   /enc/u/work.  ",
            SSHLine("u", "198.51.100.2", "2222", "/enc/u/work"),
        ),
        (
            "Instance ready for ssh access. Command: ssh -p2200 -i <key> u@host.example.org.",
            SSHLine("u", "host.example.org", "2200", None),
        ),
        (
            "2024-01-02 10:00:00 Instance ready for ssh access. Command: ssh -o Port=2022 "
            "-l someone 198.51.100.9; working directory: /enc/someone/work",
            SSHLine("someone", "198.51.100.9", "2022", "/enc/someone/work"),
        ),
        ("command: SSH u@1.2.3.4", SSHLine("u", "1.2.3.4", None, None)),
    ],
)
def test_variants(line: str, expected: SSHLine) -> None:
    assert loglines.parse(line) == expected


@pytest.mark.parametrize("line", ["", "Job started", "Command: ssh", "Command: ssh -i <key>"])
def test_not_an_ssh_line(line: str) -> None:
    assert loglines.parse(line) is None


def test_found_in_a_whole_pasted_log_last_one_wins() -> None:
    log = "\n".join(
        [
            "Job Fotxeb submitted",
            "Cluster starting",
            CANONICAL.replace("203.0.113.7", "192.0.2.1"),
            "Running command script",
            CANONICAL,
            "Executing",
        ]
    )
    found = loglines.find(log)
    assert found is not None
    assert found.host == "203.0.113.7"


def test_hostile_parts_are_returned_raw_for_validation() -> None:
    found = loglines.parse("Command: ssh u@1.2.3.4%0aProxyCommand; working directory: /a$(x)")
    assert found is not None
    assert found.host == "1.2.3.4%0aProxyCommand"  # the validator refuses it


@pytest.mark.parametrize(
    ("line", "unexpected"),
    [
        ("Command: ssh u@1.2.3.4 -oProxyCommand=x", "-oProxyCommand=x"),
        ("Command: ssh -o ProxyCommand=x u@1.2.3.4", "-o ProxyCommand=x"),
        ("Command: ssh -J jump u@1.2.3.4", "-J jump"),
        ("Command: ssh -F /tmp/cfg u@1.2.3.4", "-F /tmp/cfg"),
        ("Command: ssh u@1.2.3.4 touch x", "touch"),
        ("Command: ssh u@1.2.3.4; working directory: /enc/u/work touch x", "touch x"),
        ("Command: ssh u@1.2.3.4\nProxyCommand x", "ProxyCommand x"),
        ("Command: ssh -p 22\nMatch exec x u@1.2.3.4", "Match exec x u@1.2.3.4"),
        ("Command: ssh u@1.2.3.4\u2028ProxyCommand x", "'\\u2028' in 'u@1.2.3.4\\u2028Proxy"),
        ("Command: ssh u@1.2.3.4; working directory: /w\x0bx", "\x0bx"),
    ],
)
def test_anything_a_real_line_does_not_have_is_reported(line: str, unexpected: str) -> None:
    found = loglines.parse(line)
    assert found is not None and found.unexpected is not None
    assert found.unexpected.startswith(unexpected)


@pytest.mark.parametrize(
    "line",
    [
        CANONICAL + "\r\n",
        CANONICAL + ".  ",
        "Command: ssh -4 -v -i <k> -p 2200 -l u 1.2.3.4",
        "Command: ssh u@1.2.3.4 -p 2200",
    ],
)
def test_what_real_lines_have_is_accepted(line: str) -> None:
    found = loglines.parse(line)
    assert found is not None and found.unexpected is None


def test_a_pasted_log_ends_lines_at_newlines_only() -> None:
    found = loglines.find(f"one\r\n{CANONICAL}\r\nthree\u2028four")
    assert found is not None and found.unexpected is None
    hostile = loglines.find("Command: ssh u@1.2.3.4\u2028ProxyCommand x")
    assert hostile is not None and hostile.unexpected is not None
