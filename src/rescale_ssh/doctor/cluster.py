"""``doctor``'s checks of one job, what only the platform knows: its status, the public key and
access restriction its cluster was launched with, the head node's SSH port, its block."""
from __future__ import annotations

import ipaddress
import re
import socket
from typing import TYPE_CHECKING, Any

from rescale_ssh import validate
from rescale_ssh.errors import (
    NotFoundError,
    NotReadyError,
    RescaleSSHError,
)
from rescale_ssh.keys import keypair
from rescale_ssh.platform import launchkey, lifecycle, resolver
from rescale_ssh.sshconfig import section

if TYPE_CHECKING:
    from rescale_ssh.platform.client import Client
    from rescale_ssh.target import Target
from rescale_ssh.doctor.report import FAIL, INFO, PASS, SKIP, WARN, WHERE_KEY, Report


def check_job(report: Report, job: str, api: tuple[str, str], local: keypair.KeyFile | None,
         identity: str, current: section.Section | None, probe_timeout: float) -> None:
    from rescale_ssh.platform.client import Client
    from rescale_ssh.settings import client_limits

    platform, api_key = api
    with Client(platform, api_key, **client_limits(30.0)) as client:
        try:
            status = resolver.statuses(client, job)
        except NotFoundError:
            report.add("job", FAIL, f"job {job} was not found on {platform}",
                       "check the job ID (it is case-sensitive) and the platform (--platform)")
            return
        except RescaleSSHError as error:
            report.add("job", FAIL, error.message, error.hint or "try again later")
            return
        running = lifecycle.may_accept_ssh(status.job, status.cluster)
        if running and lifecycle.has_ended(status.job):
            report.add("job", PASS, f"job {job} is {status.job}, and its cluster is still "
                       f"{status.cluster}: SSH works until the cluster is stopped")
        elif running:
            report.add("job", PASS, f"job {job} is {status.job}; its cluster is "
                       f"{status.cluster or 'in an unknown state'}")
        else:
            report.add("job", FAIL, status.describe(job),
                       "submit the job again; SSH works only while its cluster runs"
                       if lifecycle.has_ended(status.job)
                       else f"`rescale-ssh wait {job}` waits until the cluster accepts SSH")
        detail = _detail(client, job)
        _launch_key(report, job, detail, local, identity)
        narrow = _access(report, detail)
        found = _resolution(report, client, job, running)
        if found is not None:
            _routes(report, found, detail, narrow, job, probe_timeout)
            _block(report, job, found.target, current)
        _termination(report, status.job, status.cluster)


def _detail(client: Client, job: str) -> dict[str, Any] | None:
    """The v2 job detail (publicKey, cidrRule, sshPort: rescale-api.md; v2 counts against the
    far larger rate limit); None when the platform has none."""
    try:
        body = client.get(f"/api/v2/jobs/{job}/", what=f"job {job}")
    except RescaleSSHError:
        return None
    return body if isinstance(body, dict) else None


def _launch_key(report: Report, job: str, detail: dict[str, Any] | None,
                local: keypair.KeyFile | None, identity: str) -> None:
    if detail is None or "publicKey" not in detail:
        report.add("cluster key", INFO, "the platform did not say which SSH key the cluster "
                   "was launched with")
        return
    value = detail.get("publicKey")
    resubmit = (f"paste your public key (`rescale-ssh key show`) in {WHERE_KEY} (or give the "
                "job its own key when you submit it: #RESCALE_PUBLIC_KEY), and submit the job "
                "again: a running cluster keeps the key it was launched with")
    if not isinstance(value, str) or not value.strip():
        report.add("cluster key", FAIL, f"job {job}'s cluster was launched with no SSH key: "
                   "no key can log in to it", resubmit)
        return
    launched = launchkey.parse(value)  # compared as status, add and sync compare them
    if not launched:
        report.add("cluster key", WARN, "the cluster's public key is not in a format "
                   "rescale-ssh can read, so it cannot be compared with yours", resubmit)
        return
    prints = ", ".join(k.fingerprint for k in launched)
    if local is None:
        report.add("cluster key", FAIL, f"this cluster was launched with key {prints}, and "
                   f"there is no key at {identity}",
                   "`rescale-ssh key import PATH` brings in the private key of that public "
                   "key (or pass --identity PATH)")
    elif launchkey.key_of(local.public) in {launchkey.key_of(k) for k in launched}:
        report.add("cluster key", PASS, f"the cluster was launched with your key "
                   f"{local.public.fingerprint} ({identity})")
    else:
        report.add("cluster key", FAIL, f"this cluster was launched with key {prints} which is "
                   f"not {identity} ({local.public.fingerprint}); paste your key in Job "
                   "Settings and resubmit", resubmit + "; or use --identity with the key it "
                   "was launched with")


def _access(report: Report, detail: dict[str, Any] | None) -> str | None:
    """Show the job's CIDR rule; returns it when it is narrow (not every address)."""
    rule = detail.get("cidrRule") if detail else None
    if not isinstance(rule, str) or not rule.strip():
        report.add("access", INFO, "the platform did not say which addresses may connect")
        return None
    parts = [p for p in re.split(r"[,\s]+", rule.strip()) if p]
    try:
        networks = [ipaddress.ip_network(p, strict=False) for p in parts]
    except ValueError:
        report.add("access", WARN, f"access restriction {rule[:80]!r} is not a CIDR rule "
                   "rescale-ssh understands", None)
        return None
    if any(n.prefixlen == 0 for n in networks):
        report.add("access", PASS, f"Everywhere ({rule}): any address may connect")
        return None
    notes = [f"a /{n.max_prefixlen} is exactly one address, {n.network_address}"
             for n in networks if n.prefixlen == n.max_prefixlen]
    note = f" ({'; '.join(notes)})" if notes else ""
    report.add("access", WARN, f"only {rule} may connect{note}; from any other address (another "
               "network, a VPN) the cluster refuses the connection",
               "if you connect from elsewhere, change Access Restriction (CIDR) in account "
               "Settings → Job Settings (or give the job its own when you submit it: "
               "#RESCALE_INBOUND_SSH_CIDR) and submit the job again")
    return rule


def _resolution(report: Report, client: Client, job: str, running: bool
                ) -> resolver.Resolution | None:
    """The job's head node and the route to every other node, as the hook would find them."""
    try:
        return resolver.plan(client, job)
    except NotReadyError:
        if running:
            report.add("ssh port", FAIL, "the cluster has no head node with a public address "
                       "yet", f"`rescale-ssh wait {job}` waits until it has one")
        else:
            report.add("ssh port", SKIP, "the cluster is not running: nothing to probe")
    except RescaleSSHError as error:
        report.add("ssh port", FAIL, error.message, error.hint or "try again later")
    return None


def _routes(report: Report, found: resolver.Resolution, detail: dict[str, Any] | None,
            narrow: str | None, job: str, timeout: float) -> None:
    """Probe the head, and every node reached directly; say how the others are reached."""
    from rescale_ssh.target import worker_alias

    t = found.target
    report.add("ssh port", *_probe(f"{t.host} port {t.port}", t.host, t.port, narrow, job,
                                   timeout))
    listed = detail.get("sshPort") if detail else None
    if isinstance(listed, int) and listed != t.port:
        report.add("ssh port", INFO, f"the job says port {listed}, its head node is reached "
                   f"at port {t.port} (a port forwarded to it: NAT): rescale-ssh uses the "
                   "node's")
    for index, (host, port, jump) in enumerate(t.workers, start=1):
        alias = worker_alias(job, index)
        if jump:
            report.add("node", INFO, f"{alias}: {host} port {port}, through the head node "
                       "(ProxyJump): a private address, not probed from here")
        else:
            report.add("node", *_probe(f"{alias}: {host} port {port}", host, port, narrow, job,
                                       timeout))
    for why in found.skipped:
        report.add("node", INFO, f"no block for {why}")


def _probe(where: str, host: str, port: int, narrow: str | None, job: str, timeout: float
           ) -> tuple[str, str, str | None]:
    """(status, summary, fix) of a TCP connection to ``host`` ``port`` and its greeting."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(min(timeout, 2.0))
            try:
                banner = sock.recv(255).split(b"\r\n")[0].split(b"\n")[0]
            except OSError:
                banner = b""
    except OSError as exc:
        why = "timed out" if isinstance(exc, TimeoutError) else (
            "connection refused" if isinstance(exc, ConnectionRefusedError)
            else (exc.strerror or type(exc).__name__).lower())
        fix = (f"the cluster accepts connections only from {narrow}: if your address is not in "
               "it, change Access Restriction in Job Settings and submit the job again"
               if narrow else
               f"the cluster may still be starting (`rescale-ssh wait {job}`); otherwise a "
               f"firewall on your side blocks outgoing port {port}")
        return (FAIL, f"{where}: {why} (after {timeout:.0f} s at most)"
                if why == "timed out" else f"{where}: {why}", fix)
    text = validate.shown(banner.decode("ascii", "replace"), 80)
    if text.startswith("SSH-"):
        return PASS, f"{where} answers: {text}", None
    return (WARN, f"{where} accepts connections but sent no SSH greeting",
            f"the cluster may still be starting: `rescale-ssh wait {job}`")


def _block(report: Report, job: str, head: Target, current: section.Section | None) -> None:
    from rescale_ssh.target import alias_for

    entry = current.entries.get(job) if current is not None else None
    alias = alias_for(job)
    if entry is None:
        if current is not None and current.hook is not None:
            report.add("host", INFO, f"{alias} is reached through the hook")
        else:
            report.add("host", WARN, f"{alias} is not in your ssh config yet",
                       f"`rescale-ssh add {job}` (or `rescale-ssh install` for every job)")
        return
    if (entry.target.host.lower(), entry.target.port) != (head.host.lower(), head.port):
        report.add("host", FAIL, f"{alias} points at {entry.target.host} port "
                   f"{entry.target.port}, but the cluster is at {head.host} port {head.port}",
                   f"`rescale-ssh add {job}` updates it")
    elif entry.target.workers != head.workers:
        report.add("host", FAIL, f"{alias}'s worker blocks are not the cluster's nodes now",
                   f"`rescale-ssh add {job}` updates them")
    else:
        report.add("host", PASS, f"{alias} points at the head node")


def _termination(report: Report, job_status: str | None, cluster: str | None) -> None:
    toggle = ("'Terminate Clusters Automatically' in account Settings → Job Settings decides "
              "it when the job is submitted; turn it off before submitting to keep the "
              "cluster after the job (sessions still end when the job's command finishes)")
    ended = lifecycle.has_ended(job_status)
    if ended and lifecycle.cluster_phase(cluster) == lifecycle.UP:
        report.add("termination", INFO, "the job has ended and its cluster is still running: "
                   "it was launched without automatic termination (stop it in the web UI "
                   "when you are done; it costs money)")
    elif ended and lifecycle.cluster_down(cluster):
        report.add("termination", INFO, "the cluster stopped when the job ended")
    else:
        report.add("termination", INFO, "whether the cluster stops when the job ends cannot "
                   "be known from the API: " + toggle)
