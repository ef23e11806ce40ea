"""Item 5, ``edit``: ``add --from-log`` into a config of 1,000 managed hosts and 5,000 user lines,
against the same into an empty config."""

from __future__ import annotations

import json
import sysconfig
from collections.abc import Callable
from dataclasses import asdict

from bench.context import Ctx
from bench.errors import BenchError
from bench.process import run
from bench.report import ItemResult, Row, fmt_ratio, fmt_time, verdict
from bench.sandbox import Sandbox, restore
from bench.scenario import RENDER_SECTION, ROOT
from bench.stats import Cmd, interleave, ratio


def user_lines(count: int) -> bytes:
    """``count`` lines of a user's own config: globals, Host blocks, comments, a Match."""
    lines = ["# My own hosts (generated for the benchmark).", "ServerAliveInterval 60", ""]
    i = 0
    while len(lines) < count:
        lines += [
            f"# host {i}",
            f"Host dev{i} dev{i}.example.com",
            f"\tHostName 192.0.{i // 256 % 256}.{i % 256}",
            "\tUser alice",
            f"\tPort {2200 + i % 100}",
            "\tIdentityFile ~/.ssh/id_dev",
            "",
        ]
        if i % 50 == 0:
            lines += [f"Match originalhost lab{i}-* exec \"test -e /tmp/lab{i}\"",
                      "    ForwardAgent no", ""]
        i += 1
    return ("\n".join(lines[:count]) + "\n").encode()



def bench_edit(ctx: Ctx) -> ItemResult:
    result = ItemResult("edit", "Config editing at scale")
    sb = Sandbox(ctx, "edit")
    identity = sb.home / ".ssh" / "rescale_ed25519"
    identity.write_text("not a key: `add` only checks that it exists\n")
    identity.chmod(0o600)
    hosts, users = 1000, 5000
    section = run([ctx.python, "-c", RENDER_SECTION, str(hosts)], sb.env).stdout.encode()
    tail = user_lines(users)
    big = section + tail
    big_path = sb.home / ".ssh" / "config.big"
    empty_path = sb.home / ".ssh" / "config.empty"
    big_env = {**sb.env, "RESCALE_SSH_CONFIG": str(big_path)}
    empty_env = {**sb.env, "RESCALE_SSH_CONFIG": str(empty_path)}
    big_path.write_bytes(big)
    listed = json.loads(run([ctx.cli, "list", "--json"], big_env).stdout)
    if len(listed) != hosts:
        raise BenchError(f"`list` read {len(listed)} of the {hosts} generated hosts")

    new_job = "Newjob1"
    line = ("Instance ready for ssh access. Command: ssh -i </path/to/key> -p 2222 "
            f"uprod_{new_job}@198.51.100.9; working directory: /enc/uprod_{new_job}/work")
    argv = [ctx.cli, "add", new_job, "--from-log", line]
    # The result must be the generated section plus one block, the user's lines untouched.
    run(argv, big_env)
    after = big_path.read_bytes()
    if not after.endswith(tail) or len(json.loads(run([ctx.cli, "list", "--json"],
                                                        big_env).stdout)) != hosts + 1:
        raise BenchError("`add` into the big config did not keep the other hosts and lines")
    run(argv, empty_env)
    one = empty_path.read_bytes()
    block = one[one.index(b"Host rescale-"):one.index(b"# Jobs") if b"# Jobs" in one else None]
    if block.split(b"\nHost *")[0] not in after:
        raise BenchError("the block added to the big config differs from the one added alone")

    reps = ctx.reps(15, 5)
    samples = interleave({
        "big": Cmd(argv, big_env, prepare=lambda: restore(big_path, big)),
        "empty": Cmd(argv, empty_env, prepare=lambda: restore(empty_path, b"")),
    }, reps, warmup=1)
    big_t, empty_t = samples["big"].times, samples["empty"].times
    r = ratio(big_t, empty_t)
    result.rows.append(Row(
        "5", f"`add --from-log` into {hosts} managed hosts + {users} user lines "
        f"({len(big) // 1000} kB)", fmt_time(big_t), f"into an empty config {fmt_time(empty_t)}",
        fmt_ratio(r), "≤ 2×", verdict(r <= 2)))
    result.notes.append(f"The big config is the section rendered by `rescale_ssh.sshconfig.section."
                        f"Section(...).render()` for {hosts} jobs, followed by {users} user "
                        f"lines; restored before every run (with its time set back, as a "
                        f"file saved a while ago: see `restore`). {reps} interleaved repeats.")
    if r > 2 or ctx.args.profile:
        result.notes.append("Profile of one `add` into the big config, by own time "
                            "(cProfile slows it about 3×): "
                            + profile_cli(ctx, argv[1:], big_env,
                                          prepare=lambda: restore(big_path, big)))
    result.raw = {"repeats": reps, "config_bytes": len(big),
                  **{name: asdict(s) for name, s in samples.items()}}
    return result


def profile_cli(ctx: Ctx, args: list[str], env: dict[str, str], *,
                prepare: Callable[[], object] | None = None, top: int = 12) -> str:
    """The top functions by own time of one CLI run (cProfile), as a code block."""
    if prepare is not None:
        prepare()
    out = ctx.root / "profile.out"
    run([ctx.python, "-m", "cProfile", "-o", str(out), ctx.cli, *args], env)
    script = ("import pstats, sys; s = pstats.Stats(sys.argv[1]); s.sort_stats('tottime')"
              f".print_stats({top})")
    text = run([ctx.python, "-c", script, str(out)], env).stdout
    total = next((line.strip() for line in text.splitlines() if "function calls" in line), "")
    body = text[text.index("ncalls"):] if "ncalls" in text else text
    prefixes = [str(ROOT) + "/", *(sysconfig.get_paths()[key] + "/"  # ctx.python is this one
                                   for key in ("purelib", "stdlib"))]
    lines = []
    for line in body.splitlines():
        if line.strip():
            for prefix in prefixes:
                line = line.replace(prefix, "")
            lines.append(line.rstrip())
    return f"{total}\n```\n" + "\n".join(lines) + "\n```"
