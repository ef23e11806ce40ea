"""Validation rules (design.md): what may reach a config file, and what may not."""

from __future__ import annotations

import pytest

from rescale_ssh import validate
from rescale_ssh.errors import ExitCode, InvalidValueError

HOSTILE_TEXT = [
    "", " ", "a b", "a\nb", "a\rb", "a\x00b", "a\tb", '"a"', "'a'", "%h", "${HOME}",
    "-oProxyCommand=x",
    "a;b", "a`b`", "$(x)", "a\\b", "ａｂｃ", "аbc",  # fullwidth, Cyrillic а
    "x" * 300, "a\u2028b", "a\u200bb",
]


@pytest.mark.parametrize("value", ["Fotxeb", "Ptczhb", "sZSip", "abc123", "A" * 64])
def test_job_ids_accepted(value: str) -> None:
    assert validate.job_id(value) == value


@pytest.mark.parametrize("value", [*HOSTILE_TEXT, "Fot-xeb", "Fot_xeb", "rescale-Fotxeb"])
def test_job_ids_refused(value: str) -> None:
    with pytest.raises(InvalidValueError, match="job ID"):
        validate.job_id(value)


@pytest.mark.parametrize("value", ["uprod_Fotxeb", "root", "a.b-c", "_x", "U1"])
def test_users_accepted(value: str) -> None:
    assert validate.user(value) == value


@pytest.mark.parametrize("value", [*HOSTILE_TEXT, "-root", ".x", "a@b", None, 5])
def test_users_refused(value: object) -> None:
    with pytest.raises(InvalidValueError, match="user name"):
        validate.user(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8::1", "2001:db8::1"),
        ("2001:DB8:0::1", "2001:db8::1"),
        ("ec2-1-2-3-4.compute.amazonaws.com", "ec2-1-2-3-4.compute.amazonaws.com"),
        ("node1.example.org.", "node1.example.org"),
        ("localhost", "localhost"),
    ],
)
def test_hosts_accepted(value: str, expected: str) -> None:
    assert validate.host(value) == expected


@pytest.mark.parametrize(
    "value",
    [*HOSTILE_TEXT, "1.2.3.4 -oProxyCommand=x", "1.2.3.999", "-host", "a..b", "a-.b", "[::1]",
     "host:22", "user@host", "::1%eth0", None, 1234],
)
def test_hosts_refused(value: object) -> None:
    with pytest.raises(InvalidValueError, match="host"):
        validate.host(value)


@pytest.mark.parametrize(("value", "expected"), [(22, 22), ("2222", 2222), (65535, 65535)])
def test_ports_accepted(value: object, expected: int) -> None:
    assert validate.port(value) == expected


@pytest.mark.parametrize(
    "value", [0, 65536, -1, "22x", "", " 22", "２２", True, 22.0, None, "0x16"]
)
def test_ports_refused(value: object) -> None:
    with pytest.raises(InvalidValueError, match="port"):
        validate.port(value)


@pytest.mark.parametrize("value", ["/enc/uprod_Fotxeb/work", "/enc/u/work/shared", "/", "/a-b/c.d"])
def test_remote_paths_accepted(value: str) -> None:
    assert validate.remote_path(value) == value


@pytest.mark.parametrize("value", [*HOSTILE_TEXT, "relative/path", "/a//b", "/a b", "/a$b", "/a%b"])
def test_remote_paths_refused(value: str) -> None:
    with pytest.raises(InvalidValueError, match="working directory"):
        validate.remote_path(value)


@pytest.mark.parametrize("value", ["/home/u/.ssh/id", "/a b/c", "/x/100%", "C:\\Users\\me\\key"])
def test_local_paths_accepted(value: str) -> None:
    assert validate.local_path(value, field="identity file") == value


@pytest.mark.parametrize(
    "value", ["rel/key", "/a\nb", "/a\rb", "/a\x00b", '/a"b', "/a#b", "/a${HOME}", "/a\u2028b", "",
              "/a\\b", "/a\u200bb", "/" + "a" * 5000]
)
def test_local_paths_refused(value: str) -> None:
    with pytest.raises(InvalidValueError, match="identity file"):
        validate.local_path(value, field="identity file")


def test_message_names_field_and_source_and_user_input_is_usage_error() -> None:
    with pytest.raises(InvalidValueError) as caught:
        validate.job_id("bad id", source="the command line")
    assert str(caught.value) == (
        "invalid job ID from the command line: 'bad id' (letters and digits only)"
    )
    assert caught.value.exit_code == ExitCode.USAGE
    with pytest.raises(InvalidValueError) as caught:
        validate.host("x y", source="the platform")
    assert caught.value.exit_code == ExitCode.INVALID_DATA


@pytest.mark.parametrize("value", ["config", "~/.ssh/config", "/a b/c", "./x", "x%y"])
def test_setting_paths_accepted(value: str) -> None:
    assert validate.setting_path(value, field="ssh config file") == value


@pytest.mark.parametrize("value", ["", "-oProxyCommand=x", "-", "a\nb", "a\x00b", "a\u2028b",
                                   "a" * 5000])
def test_setting_paths_refused(value: str) -> None:
    with pytest.raises(InvalidValueError, match="ssh config file"):
        validate.setting_path(value, field="ssh config file")


@pytest.mark.parametrize("value", ["prod", "my-profile", "eu_2", "me@example.com", "a.b+c:d"])
def test_profiles_accepted(value: str) -> None:
    assert validate.profile(value) == value


@pytest.mark.parametrize("value", [*HOSTILE_TEXT, "-x", "a]b", "x" * 65])
def test_profiles_refused(value: str) -> None:
    with pytest.raises(InvalidValueError, match="profile"):
        validate.profile(value)
