"""What every item shares: the folders, the job, the user's config, and the scripts that prepare
a sandbox with the package's own code (run as a subprocess, with the tree measured on its path:
never imported into the benchmark's process)."""

from __future__ import annotations

from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS_JSON = BENCH / "results.json"
JOB = "Fotxeb"
ALIAS = f"rescale-{JOB}"
UNRELATED = "some-other-host"
MB = 1_000_000

# A plausible user config: globals, a few hosts, a Match block, a trailing Host *.
USER_CONFIG = """\
# My own ssh settings.
ServerAliveInterval 60
AddKeysToAgent yes

Host bastion
    HostName 192.0.2.1
    User alice
    IdentityFile ~/.ssh/id_bastion

Host build-? build-??
    HostName %h.ci.example.com
    User ci
    ProxyJump bastion

Host myserver
\tHostName 192.0.2.10
\tUser alice
\tPort 2222

Match originalhost gpu-*
    ForwardAgent no
    User researcher

Host *
    ServerAliveCountMax 3
    HashKnownHosts yes
"""

# Renders the managed section with the package's own classes, in the sandbox's environment (so
# identity and known_hosts are exactly what `add` would write there).
RENDER_SECTION = """\
import sys
from rescale_ssh.sshconfig.hostblock import HostEntry
from rescale_ssh.sshconfig.section import Section
from rescale_ssh.settings import Settings
from rescale_ssh.target import Target

settings = Settings()
entries = {}
for i in range(int(sys.argv[1])):
    job = f"Bench{i:05d}"
    user = f"uprod_{job}"
    target = Target.checked(job=job, user=user, host=f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
                            port=22 if i % 3 else 2222, workdir=f"/enc/{user}/work",
                            source="bench")
    entries[job] = HostEntry(target=target, identity=settings.identity,
                             known_hosts=settings.known_hosts)
sys.stdout.buffer.write(Section(entries=entries).render())
"""

# Publishes blocks exactly as the hook does after resolving a job (blockfile.py). The imports
# are this tree's; a tree of another layout (``--baseline``, e.g. before issue 17's subpackages)
# fails them and finds the same modules by their file names instead.
PUBLISH_BLOCKS = """\
import sys, time
try:
    from rescale_ssh.hook import hookconf, jobcache, matcher
    from rescale_ssh.target import Target
except ImportError:
    import importlib, pathlib, rescale_ssh
    top = pathlib.Path(rescale_ssh.__file__).parent

    def by_name(name):
        found = min(top.rglob(name + ".py"), key=lambda path: len(path.parts))
        parts = found.relative_to(top).with_suffix("").parts
        return importlib.import_module(".".join(("rescale_ssh", *parts)))

    # (the hook's module was hook.py before it became hook/matcher.py)
    matcher, hookconf, jobcache = (by_name(name) for name in ("hook", "hookconf", "jobcache"))
    Target = by_name("target").Target

conf = hookconf.load(sys.argv[1])
for i in range(int(sys.argv[2])):
    job = f"Cached{i:04d}"
    target = Target.checked(job=job, user=f"uprod_{job}", host=f"10.1.{i // 256}.{i % 256}",
                            port=22, workdir=None, source="bench")
    entry = jobcache.Entry(state=jobcache.OK, resolved=time.time(), target=target)
    jobcache.save(conf.state_dir, job, entry)
    matcher.publish(conf, job, entry)
"""
CACHED_JOBS = 100
FEW_JOBS = 10
