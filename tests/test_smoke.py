from tests.helpers import Cli

LINE = (
    "Instance ready for ssh access. Command: ssh -i </path/to/key> uprod_Fotxeb@203.0.113.7; "
    "working directory: /enc/uprod_Fotxeb/work"
)


def test_add_from_log_dry_run_writes_nothing(cli: Cli, ssh_config) -> None:
    result = cli("add", "Fotxeb", "--from-log", LINE, "--dry-run")
    assert "+Host rescale-Fotxeb" in result.stdout
    assert not ssh_config.exists()
