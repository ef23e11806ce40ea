"""``path JOB``: where its working directory comes from (README, Copying files), request by
request: the job's block (none), else with the hook installed the hook's record (none within
its 30 minutes) or the platform; neither: exit 5, no request."""

from __future__ import annotations

from pathlib import Path

from tests.fakeplatform import FakePlatform
from tests.helpers import Cli

WORKDIR = "/enc/uprod_Ask1/work/shared"


def test_path_of_a_block_asks_nothing(cli: Cli, platform: FakePlatform) -> None:
    platform.add_job("Ask1", workdir=WORKDIR)
    cli("add", "Ask1")
    before = platform.count()
    assert cli("path", "Ask1", "results").stdout == f"rescale-Ask1:{WORKDIR}/results\n"
    assert platform.count() == before


def test_path_without_block_or_hook_fails_without_asking(cli: Cli, platform: FakePlatform
                                                         ) -> None:
    platform.add_job("Ask1", workdir=WORKDIR)
    result = cli("path", "Ask1", expect=5)
    assert result.stderr.startswith("rescale-ssh: error: no host for job Ask1 in "), result
    assert platform.count() == 0


def test_path_with_the_hook_asks_the_platform_once(cli: Cli, platform: FakePlatform,
                                                  ssh_config: Path) -> None:
    platform.add_job("Ask1", workdir=WORKDIR)
    cli("install", "--yes")
    before = platform.count()
    assert cli("path", "Ask1").stdout == f"rescale-Ask1:{WORKDIR}\n"
    asked = platform.count()
    assert asked > before, "no block, no record: the platform was asked"
    assert "Host rescale-Ask1\n" not in ssh_config.read_text(), "no block of its own written"
    assert cli("path", "Ask1").stdout == f"rescale-Ask1:{WORKDIR}\n"
    assert platform.count() == asked, "the hook's record answered the second time"
    # The record needs no API key either.
    assert cli("path", "Ask1", env={"RESCALE_API_KEY": ""}).stdout == f"rescale-Ask1:{WORKDIR}\n"
