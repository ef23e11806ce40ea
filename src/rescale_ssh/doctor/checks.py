"""``doctor``: why a connection does or does not work, as a list of checks with one fix each.

Local checks first (machine.py: ssh, the config, our section, the key, the agent, the API key),
then, for a job, what only the platform knows (cluster.py): its status, the public key and access
restriction its cluster was launched with, whether the head node's SSH port answers. Nothing
here prints; ``Report`` (report.py) is rendered by the command line as text or JSON.
"""

from __future__ import annotations

from rescale_ssh import validate
from rescale_ssh.doctor import cluster, machine
from rescale_ssh.doctor.report import PROBE_TIMEOUT, SKIP, Report
from rescale_ssh.settings import Settings


def run(settings: Settings, job: str | None = None, *, probe_timeout: float = PROBE_TIMEOUT,
        clean: bool = False) -> Report:
    if job is not None:
        job = validate.job_id(job, source="the command line")
    report = Report(job)
    ssh = machine.check_ssh(report)
    config = settings.ssh_config
    from rescale_ssh.sshconfig import toolfiles

    persist = toolfiles.sharing(settings)
    current = machine.check_config(report, ssh, config, persist=persist)
    if current is not None:
        machine.check_sharing(report, current, settings.multiplex, persist, ssh=ssh or "ssh",
                              clean=clean)
    local = machine.check_key(report, settings.identity)
    api = machine.check_api(report, settings)
    if job is not None:
        if api is None:
            report.add("job", SKIP, f"job {job} was not checked: it needs a working API key")
        else:
            cluster.check_job(report, job, api, local, settings.identity, current, probe_timeout)
    return report
