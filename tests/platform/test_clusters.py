"""Issue 13: the real platform's clusters (rescale-api.md, verbatim samples): which node is the
head when roles say nothing, how every node is reached (NAT'd, private, no ssh), the ready line
as the platform writes it, the status words in one table, workstations that come back with a
new address. Against the fake platform, and end to end with real sshds where each route says.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rescale_ssh.errors import NotReadyError
from rescale_ssh.platform import lifecycle, loglines, resolver
from rescale_ssh.platform.client import Client
from tests.fakeplatform import CLUSTER_STATUSES, JOB_STATUSES, VERBATIM_INSTANCE, FakePlatform
from tests.helpers import Cli, require, ssh_config_of
from tests.sshd import SSHDFactory, SSHServer


@pytest.fixture
def client(platform: FakePlatform) -> Iterator[Client]:
    with Client(platform.base_url, platform.api_key, connect_timeout=1, read_timeout=1,
                retries=2, deadline=5, backoff=0.01) as made:
        yield made


def custom(index: int, **fields: Any) -> dict[str, Any]:
    """A node shaped like the verbatim entry (every role CUSTOM)."""
    node = {**VERBATIM_INSTANCE, "id": f"node{index}", "privateIp": f"10.0.0.{10 + index}",
            "dateStarted": f"2023-09-04T11:03:{46 + index:02d}.398510Z"}
    node.update(fields)
    return {key: value for key, value in node.items() if value is not None}


# -- 1. which node is the head ------------------------------------------------------------------


def test_the_verbatim_instance_resolves_in_two_requests(platform: FakePlatform,
                                                        client: Client) -> None:
    """rescale-api.md's verbatim entry: one CUSTOM node behind NAT, port 32100. The staff
    notebook connected with `ssh uprod_jvSjFc@20.242.129.39 -p 32100`."""
    platform.add_job("iztfQb", instances=[dict(VERBATIM_INSTANCE)], user="uprod_jvSjFc",
                     host="20.242.129.39", port=32100)
    target = resolver.resolve(client, "iztfQb")
    assert (target.user, target.host, target.port, target.workers) == (
        "uprod_jvSjFc", "20.242.129.39", 32100, ())
    assert platform.count() == 2


@pytest.mark.parametrize("head_last", [False, True])
def test_all_custom_roles_the_ready_line_names_the_head(
    platform: FakePlatform, client: Client, head_last: bool
) -> None:
    """With two or more CUSTOM nodes no head was found: resolve fell back to the log line
    (workers lost, port 22 instead of the node's), `jobs` showed the job as starting forever."""
    job = platform.add_job("Cust1", kind="custom", workers=2, host="198.51.100.40", port=2200)
    job.head_last = head_last
    target = resolver.resolve(client, "Cust1")
    assert (target.host, target.port) == ("198.51.100.40", 2200)
    assert target.workers == (("203.0.113.101", 22, False), ("203.0.113.102", 22, False))
    assert target.workdir == "/enc/uprod_Cust1/work"
    assert platform.count() == 2  # instances + logs: the head is on the one page
    rows = json.loads(Cli()("jobs", "--json").stdout)
    assert [(row["id"], row["ssh"], row["host"]) for row in rows] == [
        ("Cust1", "ready", "198.51.100.40")]


def test_the_head_on_any_page_and_a_ready_line_per_node(platform: FakePlatform,
                                                        client: Client) -> None:
    """Multi-node clusters may log one ready line per node: the line that names the head wins
    over the newest (a worker's), for the head and for the working directory."""
    platform.max_page_size = 1
    job = platform.add_job("Many1", kind="custom", workers=2, host="198.51.100.41",
                           line_per_node=True, workdir="/enc/uprod_Many1/work/shared")
    job.head_last = True
    logs = [entry["message"] for entry in job.logs()]
    assert loglines.find("\n".join(logs)) is not None
    newest = loglines.find("\n".join(logs))
    assert newest is not None and newest.host == "203.0.113.102"  # the newest names a worker
    target = resolver.resolve(client, "Many1")
    assert target.host == "198.51.100.41" and target.workdir == "/enc/uprod_Many1/work/shared"
    assert platform.count("/api/v2/jobs/Many1/instances/") == 3  # every page, the head last


def test_without_any_ready_line_the_tie_break_is_documented(platform: FakePlatform,
                                                            client: Client) -> None:
    """No role, no line (the logs say nothing yet): not a worker's role, started first, then
    the first listed."""
    nodes = [custom(0, publicIp="198.51.100.50", dateStarted="2023-09-04T11:05:00Z"),
             custom(1, publicIp="198.51.100.51", dateStarted="2023-09-04T11:04:00Z"),
             custom(2, publicIp="198.51.100.52", role="MPI_SLAVE",
                    dateStarted="2023-09-04T11:00:00Z")]
    platform.add_job("Tie1", instances=nodes, log_lines=["Starting server(s)"])
    assert resolver.resolve(client, "Tie1").host == "198.51.100.51"
    assert resolver.head_node([*nodes[:2], custom(3, publicIp="198.51.100.53",
                                                  dateStarted=None)]) is not None


# -- 2. routes to every node ---------------------------------------------------------------------


def test_a_natted_cluster_reaches_each_node_at_its_forwarded_port(
    platform: FakePlatform, client: Client
) -> None:
    """Behind NAT, sshPort is the public forwarded port: workers were given their private IP
    with that port through the head (10.0.0.11:32101), which is refused."""
    platform.add_job("Nat1", kind="nat", workers=2, host="20.242.129.39", port=32100,
                     nat_ports=[32100, 32101, 32102])
    target = resolver.resolve(client, "Nat1")
    assert (target.host, target.port) == ("20.242.129.39", 32100)
    assert target.workers == (("20.242.129.39", 32101, False), ("20.242.129.39", 32102, False))


def test_private_nodes_go_through_the_head_on_sshds_own_port() -> None:
    head = custom(0, publicIp="20.242.129.39", sshPort=32100)
    natted = custom(1, publicIp=None, publicHostname=None, sshPort=32101, isBehindNat=True)
    plain = custom(2, publicIp=None, publicHostname=None, sshPort=2222, isBehindNat=False)
    no_ssh = custom(3, supportedServices=["vnc"])
    nowhere = custom(4, publicIp=None, publicHostname=None, privateIp=None,
                     privateHostname=None)
    workers, skipped = resolver.routes([head, natted, plain, no_ssh, nowhere], head)
    assert workers == (("10.0.0.11", 22, True), ("10.0.0.12", 2222, True))
    assert skipped == ["node node3 offers no ssh (supportedServices: ['vnc'])",
                       "node node4 has no address of its own"]


def test_status_says_why_a_node_has_no_block(cli: Cli, platform: FakePlatform) -> None:
    nodes = [custom(0, role="MPI_MASTER", publicIp="198.51.100.60", sshPort=22),
             custom(1, publicIp=None, publicHostname=None, supportedServices=["vnc"])]
    platform.add_job("Vnc1", instances=nodes)
    data = json.loads(cli("status", "Vnc1", "--json").stdout)
    assert data["workers"] == []
    assert "no block for node node1 offers no ssh (supportedServices: ['vnc'])" in data["notes"]


# -- 3. the ready line as the platform writes it -------------------------------------------------


@pytest.mark.parametrize(("style", "option"), [("jp", "before"), ("jp", "after"),
                                               ("us", "after")])
def test_the_ready_line_as_the_platform_writes_it(platform: FakePlatform, client: Client,
                                                  style: str, option: str) -> None:
    """`... ujpprod_HiUKdb@34.207.74.40; working directory: /enc/ujpprod_HiUKdb/work.`: a
    trailing period, a Japanese user prefix, and -p before or after the destination."""
    job = platform.add_job("HiUKdb", user="ujpprod_HiUKdb", host="34.207.74.40", port=2222,
                           line_style=style, port_option=option)
    line = loglines.parse(job.ready_line())
    assert line is not None and line.unexpected is None
    assert (line.user, line.host, line.port, line.workdir) == (
        "ujpprod_HiUKdb", "34.207.74.40", "2222", "/enc/ujpprod_HiUKdb/work")
    platform.set_status("HiUKdb", "Executing", "Started")
    job.instances = []  # an older platform that lists no nodes: the line is all there is
    target = resolver.resolve(client, "HiUKdb")
    assert (target.user, target.port, target.workdir) == (
        "ujpprod_HiUKdb", 2222, "/enc/ujpprod_HiUKdb/work")


# -- 4. the status vocabulary in one place -------------------------------------------------------


EXPECTED_JOB = {"Pending": "waiting", "Waiting for Queue": "waiting", "Queued": "waiting",
                "Started": "running", "Validated": "running", "Executing": "running",
                "Completed": "final", "Stopping": "stopping", "Waiting for Cluster": "waiting",
                "Force Stop": "final", "Stopped": "final", "Force Stopped": "final"}
EXPECTED_CLUSTER = {"Not Started": "not up", "Pending": "not up", "Queued": "not up",
                    "Starting": "starting", "Started": "up", "Stop Requested": "down",
                    "Stopping": "down", "Stopped": "down", "Unknown": "unknown",
                    "Error": "unknown"}


def test_every_status_word_is_in_the_table() -> None:
    assert set(EXPECTED_JOB) == set(JOB_STATUSES) and set(EXPECTED_CLUSTER) == set(
        CLUSTER_STATUSES)
    for word, phase in EXPECTED_JOB.items():
        for spelling in (word, word.upper().replace(" ", "_"), word.lower(), f" {word} "):
            assert lifecycle.job_phase(spelling) == phase, spelling
    for word, phase in EXPECTED_CLUSTER.items():
        assert lifecycle.cluster_phase(word.upper().replace(" ", "_")) == phase, word
    assert lifecycle.job_phase("Hibernating") == lifecycle.UNKNOWN
    assert not lifecycle.is_final("Hibernating")
    assert not lifecycle.may_accept_ssh("Hibernating", "Started")


@pytest.mark.parametrize("word", ["Force Stopped", "FORCE_STOP", "Stopped", "Completed"])
def test_an_ended_job_is_ended_everywhere(cli: Cli, platform: FakePlatform, word: str) -> None:
    """The lists disagreed: `Force Stop(ped)` and `Stopped` were final for one and not for
    another (resolver, doctor, jobs, prune)."""
    platform.add_job("End1", status=word, cluster_status="Stopped")
    rows = {row["id"]: row for row in json.loads(cli("jobs", "--json").stdout)}
    assert rows.get("End1", {"ssh": "stopped"})["ssh"] == "stopped"
    status = json.loads(cli("status", "End1", "--json").stdout)
    assert status["ssh"] == "stopped"
    assert cli("add", "End1", expect=7).stderr.startswith("rescale-ssh: error: job End1 is ")


def test_an_unknown_status_is_shown_raw_neither_ready_nor_ended(
    cli: Cli, platform: FakePlatform
) -> None:
    platform.add_job("Odd1", status="Hibernating", cluster_status="Started",
                     instances=[])
    data = json.loads(cli("status", "Odd1", "--json").stdout)
    assert data["status"] == "Hibernating"
    assert any("'Hibernating' is not one rescale-ssh knows" in note for note in data["notes"])
    result = cli("add", "Odd1", expect=7)
    assert "Hibernating (a status rescale-ssh does not know)" in result.stderr


def test_statuses_are_sorted_by_date_whatever_the_order(platform: FakePlatform,
                                                        client: Client) -> None:
    """Newest first as the platform lists them, or oldest first: sorted by statusDate, with
    the cluster's dates written without a zone."""
    platform.statuses_order = "oldest"
    platform.add_job("Order1", status="Executing", cluster_status="Started")
    status = resolver.statuses(client, "Order1")
    assert (status.job, status.cluster) == ("Executing", "Started")
    assert lifecycle.when({"statusDate": "2016-04-21T17:15:59.012000Z"}) == lifecycle.when(
        {"statusDate": "2016-04-21T17:15:59.012"})
    assert lifecycle.when({"statusDate": "garbage"}) is None


# -- 8. workstations ---------------------------------------------------------------------------


def workstation(platform: FakePlatform, sshd: SSHServer, job: str) -> None:
    node = custom(0, publicIp=sshd.host, sshPort=sshd.port, username=sshd.user,
                  instanceGroup="workstation")
    platform.add_job(job, user=sshd.user, host=sshd.host, port=sshd.port, instances=[node],
                     workdir=str(sshd.new_workdir(job)))


def resume(platform: FakePlatform, job: str, server: SSHServer) -> None:
    """Suspended and resumed: the one node is back with a new address (another server)."""
    platform.jobs[job].instances = [custom(0, publicIp=server.host, sshPort=server.port,
                                           username=server.user, instanceGroup="workstation")]
    platform.jobs[job].host, platform.jobs[job].port = server.host, server.port


@pytest.mark.e2e
def test_a_resumed_workstation_is_refreshed_by_sync(
    cli: Cli, platform: FakePlatform, sshd: SSHServer, sshd2: SSHServer, ssh_config: Path
) -> None:
    workstation(platform, sshd, "Desk1")
    env = {"RESCALE_SSH_IDENTITY": str(sshd.client_key)}
    cli("add", "Desk1", env=env)
    assert ssh_config_of(str(ssh_config), "rescale-Desk1")["port"] == [str(sshd.port)]
    resume(platform, "Desk1", sshd2)
    cli("sync", "--yes", env=env)
    assert ssh_config_of(str(ssh_config), "rescale-Desk1")["port"] == [str(sshd2.port)]
    assert ssh(ssh_config, "rescale-Desk1", "echo", "back").stdout.strip() == "back"


@pytest.mark.e2e
def test_a_resumed_workstation_is_re_resolved_by_the_hook(
    cli: Cli, platform: FakePlatform, sshd: SSHServer, sshd_factory: SSHDFactory,
    ssh_config: Path
) -> None:
    """The hook's record still names the old address: the connection fails there, and the
    proxy resolves the job again and connects to the new one, in the same ssh run."""
    before, after = (sshd_factory(client_key=sshd.client_key) for _ in range(2))
    workstation(platform, before, "Desk2")
    cli("install", "--yes", env={"RESCALE_SSH_IDENTITY": str(sshd.client_key)})
    assert ssh(ssh_config, "rescale-Desk2", "echo", "one").stdout.strip() == "one"
    before.process.terminate()  # suspended: the old address answers no more
    before.process.wait(10)
    resume(platform, "Desk2", after)
    result = ssh(ssh_config, "rescale-Desk2", "echo", "two")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "two"
    assert platform.count("/api/v2/jobs/Desk2/instances/") == 2


def ssh(config: Path, alias: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require("ssh"), "-F", str(config), "-o", "BatchMode=yes", alias,
                           *command], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


# -- 9. end to end, where each route says --------------------------------------------------------


@pytest.mark.e2e
def test_every_node_of_a_natted_cluster_through_the_alias(
    cli: Cli, platform: FakePlatform, sshd: SSHServer, sshd_factory: SSHDFactory,
    ssh_config: Path
) -> None:
    """One public address, a forwarded port per node: three servers on three ports of
    127.0.0.1, and every alias reaches its own (the hook, then a static block)."""
    nodes = [sshd, sshd_factory(client_key=sshd.client_key),
             sshd_factory(client_key=sshd.client_key)]
    for index, server in enumerate(nodes):
        (server.workdir / "whoami.txt").write_text(f"node {index}\n")
    platform.add_job("NatE2e", kind="nat", workers=2, user=sshd.user, host=sshd.host,
                     port=sshd.port, nat_ports=[server.port for server in nodes])
    env = {"RESCALE_SSH_IDENTITY": str(sshd.client_key)}
    cli("install", "--yes", env=env)
    for attempt in ("hook", "static"):
        if attempt == "static":
            cli("add", "NatE2e", env=env)
        for index, alias in enumerate(["rescale-NatE2e", "rescale-NatE2e-1", "rescale-NatE2e-2"]):
            result = ssh(ssh_config, alias, "cat", str(nodes[index].workdir / "whoami.txt"))
            assert result.returncode == 0, (attempt, alias, result.stderr)
            assert result.stdout.strip() == f"node {index}", (attempt, alias)
            got = ssh_config_of(str(ssh_config), alias)
            assert got["port"] == [str(nodes[index].port)] and "proxyjump" not in got


@pytest.mark.e2e
def test_every_node_of_an_all_custom_cluster_through_the_alias(
    cli: Cli, platform: FakePlatform, sshd: SSHServer, sshd_factory: SSHDFactory,
    ssh_config: Path
) -> None:
    """All CUSTOM: the head told by its ready line (listed last), one worker at its own public
    address, one reachable only at its private address, through the head on sshd's port."""
    public = sshd_factory(client_key=sshd.client_key)
    private = sshd_factory(client_key=sshd.client_key)
    nodes = [custom(1, publicIp=public.host, sshPort=public.port, username=sshd.user),
             custom(2, publicIp=None, publicHostname=None, privateIp=private.host,
                    sshPort=private.port, isBehindNat=False, username=sshd.user),
             custom(0, publicIp=sshd.host, sshPort=sshd.port, username=sshd.user)]
    platform.add_job("CusE2e", user=sshd.user, host=sshd.host, port=sshd.port, instances=nodes,
                     workdir=str(sshd.new_workdir("CusE2e")))
    servers = [sshd, public, private]
    for index, server in enumerate(servers):
        (server.workdir / "whoami.txt").write_text(f"node {index}\n")
    env = {"RESCALE_SSH_IDENTITY": str(sshd.client_key)}
    cli("install", "--yes", env=env)
    for index, alias in enumerate(["rescale-CusE2e", "rescale-CusE2e-1", "rescale-CusE2e-2"]):
        result = ssh(ssh_config, alias, "cat", str(servers[index].workdir / "whoami.txt"))
        assert result.returncode == 0, (alias, result.stderr)
        assert result.stdout.strip() == f"node {index}", alias
    assert ssh_config_of(str(ssh_config), "rescale-CusE2e-2")["proxyjump"] == ["rescale-CusE2e"]
    assert "proxyjump" not in ssh_config_of(str(ssh_config), "rescale-CusE2e-1")


def test_the_job_detail_of_v2_carries_key_cidr_and_port(platform: FakePlatform,
                                                        client: Client) -> None:
    platform.add_job("Det2", public_key="ssh-ed25519 AAAA rsa-key-20191205", kind="nat",
                     port=32100, cidr_rule="10.0.0.0/8")
    detail = client.get("/api/v2/jobs/Det2/", what="job")
    assert (detail["publicKey"], detail["cidrRule"], detail["sshPort"]) == (
        "ssh-ed25519 AAAA rsa-key-20191205", "10.0.0.0/8", 22)
    assert "isShared" not in detail and "instanceState" not in json.dumps(
        platform.jobs["Det2"].current_instances())


def test_a_never_ready_job_says_so(platform: FakePlatform, client: Client) -> None:
    platform.add_job("Wait1", status="Waiting for Cluster", cluster_status="Pending")
    with pytest.raises(NotReadyError, match="the cluster is not started yet"):
        resolver.resolve(client, "Wait1")


# -- 7. doctor, from the v2 job detail, every route ----------------------------------------------


@pytest.mark.e2e
def test_doctor_reads_the_v2_detail_and_probes_every_route(
    cli: Cli, platform: FakePlatform, sshd: SSHServer, sshd_factory: SSHDFactory
) -> None:
    """doctor read the v3 detail (the smaller rate limit) and probed the head only."""
    from tests.sshd import free_port

    live = sshd_factory(client_key=sshd.client_key)
    closed = free_port()
    platform.add_job("Doc1", kind="nat", workers=2, user=sshd.user, host=sshd.host,
                     port=sshd.port, nat_ports=[sshd.port, live.port, closed],
                     public_key=Path(f"{sshd.client_key}.pub").read_text())
    result = cli("doctor", "Doc1", "--identity", str(sshd.client_key), "--json", expect=1)
    checks = [(c["name"], c["status"], c["summary"]) for c in json.loads(result.stdout)["checks"]]
    nodes = [(status, summary) for name, status, summary in checks if name == "node"]
    assert nodes[0][0] == "pass" and nodes[0][1].startswith(
        f"rescale-Doc1-1: {sshd.host} port {live.port} answers: SSH-2.0-")
    assert nodes[1] == ("fail", f"rescale-Doc1-2: {sshd.host} port {closed}: connection refused")
    assert ("ssh port", "info", f"the job says port 22, its head node is reached at port "
            f"{sshd.port} (a port forwarded to it: NAT): rescale-ssh uses the node's") in checks
    assert platform.count("/api/v2/jobs/Doc1/") >= 1
    assert not [r for r in platform.requests if r.path == "/api/v3/jobs/Doc1/"]
    fixes = [c["fix"] for c in json.loads(result.stdout)["checks"] if c["name"] == "access"]
    del fixes  # Everywhere: no fix; the per-job CIDR directive is named when there is one
    narrow = cli("doctor", "Doc1", "--json", expect=1, env={"RESCALE_SSH_IDENTITY": "/nokey"})
    del narrow


# -- review of issue 13 --------------------------------------------------------------------------


def test_a_node_needs_a_public_end_of_its_own_to_be_reached_directly() -> None:
    """A NAT'd worker on the head's address with no sshPort of its own was reached directly
    on port 22 of the NAT address; one with the head's port pointed at the head."""
    head = custom(0, publicIp="20.242.129.39", sshPort=32100)
    no_port = custom(1, publicIp="20.242.129.39", sshPort=None)
    heads_port = custom(2, publicIp="20.242.129.39", sshPort=32100)
    own = custom(3, publicIp="198.51.100.9", sshPort=None, isBehindNat=False)
    workers, skipped = resolver.routes([head, no_port, heads_port, own], head)
    assert workers == (("10.0.0.11", 22, True), ("10.0.0.12", 22, True),
                       ("198.51.100.9", 22, False))
    assert skipped == []


def test_one_bad_node_value_costs_that_node_its_block_not_the_job(
    platform: FakePlatform, client: Client
) -> None:
    """A worker's bad value made the whole job unresolvable: no block for the head either."""
    nodes = [custom(0, role="MPI_MASTER", publicIp="198.51.100.70", sshPort=22),
             custom(1, publicIp=None, publicHostname=None, privateIp=None,
                    privateHostname="compute_1"),
             custom(2, publicIp=None, publicHostname=None, sshPort=70000, isBehindNat=False)]
    platform.add_job("Bad1", instances=nodes)
    found = resolver.plan(client, "Bad1")
    assert (found.target.host, found.target.workers) == ("198.51.100.70", ())
    assert [note.split(":")[0] for note in found.skipped] == ["node node1", "node node2"]
    assert "invalid host" in found.skipped[0] and "invalid port" in found.skipped[1]


def test_doctor_passes_an_ended_job_whose_cluster_is_still_up(
    cli: Cli, platform: FakePlatform
) -> None:
    """Automatic termination off: the job is Completed, its cluster Started. doctor failed it
    ("its cluster is not running") while its own termination check said the cluster ran."""
    platform.add_job("Kept1", status="Completed", cluster_status="Started")
    result = cli("doctor", "Kept1", "--json", expect=None)
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["job"]["status"] == "pass", checks["job"]
    assert checks["job"]["summary"] == ("job Kept1 is Completed, and its cluster is still "
                                        "Started: SSH works until the cluster is stopped")
    assert lifecycle.may_accept_ssh("Completed", "Started")
    assert not lifecycle.may_accept_ssh("Hibernating", "Started")


@pytest.mark.parametrize(("word", "cluster"), [("Force Stopped", "Stopped"),
                                               ("Completed", "Stopped"), ("Stopping", None)])
def test_wait_stops_at_once_for_a_job_that_has_ended(
    cli: Cli, platform: FakePlatform, word: str, cluster: str | None
) -> None:
    """wait polled an ended job for its whole timeout (about 192 requests in 30 minutes)."""
    platform.add_job("Gone1", status=word, cluster_status=cluster or "Not Started",
                     instances=[])
    if cluster is None:
        platform.jobs["Gone1"].cluster_statuses.clear()
    result = cli("wait", "Gone1", "--timeout", "60", expect=7)
    assert result.stderr.startswith("rescale-ssh: error: job Gone1 is "), result
    assert "hint: submit the job again" in result.stderr
    assert platform.count("/api/v2/jobs/Gone1/instances/") == 1


def test_a_replaced_cluster_forgets_the_host_keys_of_the_nodes_that_changed(
    tmp_path: Path
) -> None:
    """The hook forgot only rescale-JOB: with accept-new, rescale-JOB-1 of a new cluster then
    looked like a changed host key."""
    from rescale_ssh.hook import matcher
    from rescale_ssh.hook.hookconf import HookConf
    from rescale_ssh.target import Target

    old = Target("Rep1", "u", "198.51.100.1", 22, "/w",
                 (("10.0.0.11", 22, True), ("10.0.0.12", 22, True)))
    same_head = Target("Rep1", "u", "198.51.100.1", 22, "/w",
                       (("10.0.0.11", 22, True), ("10.0.0.99", 22, True), ("10.0.0.13", 22, True)))
    new = Target("Rep1", "u", "198.51.100.2", 22, "/w", (("10.0.0.11", 22, True),))
    assert matcher.changed_nodes(old, old) == []
    assert matcher.changed_nodes(old, same_head) == [2, 3]
    assert matcher.changed_nodes(old, new) == [0, 2]
    known = tmp_path / "known_hosts"
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    known.write_text("".join(f"{alias} {key}\n" for alias in
                             ("rescale-Rep1", "rescale-Rep1-1", "rescale-Rep1-2",
                              "rescale-Other", "rescale-Rep10")))
    conf = HookConf(state_dir=str(tmp_path), python="", launcher="/x", identity=None,
                    known_hosts=str(known))
    matcher.forget_host_keys(conf, "Rep1", matcher.changed_nodes(old, new))
    assert [line.split()[0] for line in known.read_text().splitlines()] == [
        "rescale-Rep1-1", "rescale-Other", "rescale-Rep10"]


def test_sync_of_an_all_custom_cluster_asks_for_its_logs_only_once(
    cli: Cli, platform: FakePlatform
) -> None:
    """Listing all-CUSTOM clusters cost two requests a job (instances and logs): the head
    found before (the job's block, the hook's cache) tells it while it is still listed."""
    platform.add_job("Cust3", kind="custom", workers=2, host="198.51.100.43")
    platform.add_job("Cust4", kind="custom", workers=1, host="198.51.100.44")
    cli("add", "Cust3")
    platform.requests.clear()
    cli("sync", "--yes")
    assert platform.count("/api/v3/jobs/Cust3/logs") == 0
    assert platform.count("/api/v3/jobs/Cust4/logs") == 1  # never found before
    assert platform.count("/api/v2/jobs/Cust3/instances/") == 1
    rows = {row["id"]: row for row in json.loads(cli("jobs", "--json").stdout)}
    assert (rows["Cust3"]["host"], rows["Cust4"]["host"]) == ("198.51.100.43", "198.51.100.44")
