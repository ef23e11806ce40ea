"""Editors saving while rescale-ssh writes the config (issue 12, item 7).

The user's editor and rescale-ssh write the same file without a common lock. Real processes
race on the real file system here: an editor saving in place (truncate, then write) or the way
vim and VS Code do (temp file in the same folder, rename over the config), against a process
that adds and removes jobs in a loop.

What "lost" means. Only the editor writes the user's part of the file (everything after our
section), and each save puts a new counter (``# save N``) at its top. So before save N the
file's user part must be exactly save N-1, byte for byte: if it is anything else, a write of
ours replaced save N-1 with an older or half-written user part, and that save is lost. The
editor checks this before every save and once more at the end, so every loss that persists
is counted, however briefly the file held the save. A file that holds an older save at first
and save N-1 again 5 ms later is a "stale read", counted apart: a write of ours that got an
editor's save back from the swap shows our file until it swaps back. (Losing *our* change to
an editor that saves a stale buffer over it is the editor's doing, as with any program that
saves a stale buffer, and is not counted.)
"""

from __future__ import annotations

import multiprocessing
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import pytest

from rescale_ssh import configfile, exchange
from rescale_ssh.errors import ConfigError
from rescale_ssh.settings import Settings
from rescale_ssh.sshconfig import hosts, section
from rescale_ssh.target import Target
from tests.helpers import Cli

Figures = Callable[[str, int], None]
FORK = multiprocessing.get_context("fork")
END_LINE = section.END + b"\n"
BASE_JOBS = [f"Base{i}" for i in range(3)]


def user_part(save: int) -> bytes:
    """The user's part of the file as save ``save`` leaves it: its counter first, then hosts
    and long comment lines (about 200 kB in 100 lines: a read or a compare of the file takes
    long enough for a rename to land inside it, while our parser's per-line work stays small).
    """
    hosts_part = b"".join(b"Host user-%02d\n    HostName 192.0.2.%d\n    User me\n" % (i, i + 1)
                          for i in range(30))
    notes = b"".join(b"# note %02d " % i + b"abcdefgh" * 1000 + b"\n" for i in range(24))
    return b"# save %d\n" % save + hosts_part + notes + b"Host last\n    User end\n"


def split(data: bytes) -> tuple[bytes, bytes]:
    """(our section, the user's part): the editor keeps the first as it read it."""
    cut = data.find(END_LINE)
    return (b"", data) if cut < 0 else (data[: cut + len(END_LINE)], data[cut + len(END_LINE):])


def counter(theirs: bytes) -> int:
    first = theirs.split(b"\n", 1)[0]
    return int(first[len(b"# save "):]) if first.startswith(b"# save ") and first[7:].isdigit() \
        else -1


def settings(config: Path) -> Settings:
    return Settings(ssh_config_flag=str(config))


def target(job: str) -> Target:
    return Target(job, f"u_{job}", "127.0.0.1", 2222, f"/enc/u_{job}/work")


def prepare(config: Path) -> None:
    """The user's file (save 0) below our section holding the base jobs."""
    config.parent.mkdir(mode=0o700, exist_ok=True)
    config.write_bytes(user_part(0))
    for job in BASE_JOBS:
        hosts.add(settings(config), target(job))
    assert split(config.read_bytes())[1] == user_part(0)


def check_final(config: Path, saves: int) -> None:
    """The file holds the editor's last save below a whole section with the base jobs, and
    no temp file of ours is left."""
    ours, theirs = split(config.read_bytes())
    last = theirs == user_part(saves)
    assert last, f"final user part is save {counter(theirs)} ({len(theirs)} bytes), not {saves}"
    jobs = {entry.job for entry in hosts.entries(settings(config))}
    assert set(BASE_JOBS) <= jobs, jobs
    assert ours.startswith(section.BEGIN)
    assert not [p for p in config.parent.iterdir() if p.name.endswith(configfile.TEMP_SUFFIX)]


# -- the processes that race ------------------------------------------------------------------


class Checks:
    """What an editor found before each save: saves lost, and stale reads (the file held an
    older save for a moment and the last one again 5 ms later: a reader, or an editor that
    reloads a file changed on disk, saw the user's previous save)."""

    def __init__(self) -> None:
        self.lost: list[tuple[int, int]] = []
        self.stale = 0

    def read(self, path: Path, save: int) -> bytes:
        """Our section as the file holds it, after checking the user's part is ``save``."""
        ours, theirs = split(path.read_bytes())
        if theirs != user_part(save):
            time.sleep(0.005)  # a write of ours swapped back is done within microseconds
            ours, theirs = split(path.read_bytes())
            if theirs == user_part(save):
                self.stale += 1
            else:
                self.lost.append((save, counter(theirs)))
        return ours

    def send(self, out: Connection) -> None:
        out.send((self.lost, self.stale))


def rename_editor(config: str, saves: int, gap: float, seed: int, out: Connection) -> None:
    """Saves like VS Code or vim's writebackup: read the file (our section is part of the
    buffer, as the editor last saw it), write the buffer to a temp file beside it, rename the
    temp file over the config."""
    rng = random.Random(seed)
    path = Path(config)
    temp = path.with_name(".config.editor-save")
    checks = Checks()
    for save in range(1, saves + 1):
        ours = checks.read(path, save - 1)
        temp.write_bytes(ours + user_part(save))
        os.rename(temp, path)
        time.sleep(rng.uniform(0.0, gap))
    checks.read(path, saves)
    checks.send(out)


def in_place_editor(config: str, saves: int, chunks: int, chunk_gap: float, pause: float,
                    seed: int, out: Connection) -> None:
    """Saves in place, slowly (nano, a script's ``cat > config``, an editor on a slow disk):
    truncate, then write the buffer in ``chunks`` pieces with up to ``chunk_gap`` s between
    them, then leave the file alone for up to ``pause`` s."""
    rng = random.Random(seed)
    path = Path(config)
    checks = Checks()
    for save in range(1, saves + 1):
        data = checks.read(path, save - 1) + user_part(save)
        step = -(-len(data) // chunks)
        with open(path, "wb", buffering=0) as handle:  # O_TRUNC: the save starts empty
            for start in range(0, len(data), step):
                handle.write(data[start : start + step])
                time.sleep(rng.uniform(0.001, chunk_gap))
        time.sleep(rng.uniform(0.0, pause))
    checks.read(path, saves)
    checks.send(out)


def add_remove_loop(config: str, stop: multiprocessing.synchronize.Event,
                    out: Connection) -> None:
    """``add`` and ``remove`` of three jobs, in turn, as fast as they go, until stopped.
    Counts writes, give-ups (ConfigError), swaps done and refused, and, where the writer has
    them, swap-backs (an editor's save caught between our last check and our swap, handed
    back): the figures show the race reached the window it is about."""
    counts: Counter[str] = Counter()
    swap = exchange.swap  # (the fallback test's refusing one, when it set one)

    def counted_swap(first: str, second: str) -> bool:
        done = swap(first, second)
        counts["swaps" if done else "swaps refused"] += 1
        return done

    exchange.swap = counted_swap
    swap_back = getattr(configfile, "_swap_back", None)
    if swap_back is not None:
        def counted(*args: object) -> None:
            counts["swap-backs"] += 1
            swap_back(*args)

        configfile._swap_back = counted
    chosen = settings(Path(config))
    present: set[str] = set()
    index = 0
    while not stop.is_set():
        job = f"Race{index % 3}"
        index += 1
        try:
            if job in present:
                result = hosts.remove(chosen, job)
                present.discard(job)
            else:
                result = hosts.add(chosen, target(job))
                present.add(job)
            counts["writes"] += result.change.changed
        except ConfigError as exc:
            counts[f"gave up: {str(exc).replace(config, 'CONFIG')[:60]}"] += 1
    out.send(dict(counts))


def race(config: Path, editor: Callable[..., None], *args: object,
         timeout: float = 90) -> tuple[list[tuple[int, int]], int, dict[str, int]]:
    """Run the editor (to its last save) against the add/remove loop: (saves lost as
    (expected, found), stale reads, the loop's counts)."""
    stop = FORK.Event()
    loop_in, loop_out = FORK.Pipe(duplex=False)
    editor_in, editor_out = FORK.Pipe(duplex=False)
    loop = FORK.Process(target=add_remove_loop, args=(str(config), stop, loop_out), daemon=True)
    edit = FORK.Process(target=editor, args=(str(config), *args, editor_out), daemon=True)
    loop.start()
    time.sleep(0.2)  # the loop is writing before the first save
    edit.start()
    try:
        assert editor_in.poll(timeout), "the editor did not finish"
        lost, stale = editor_in.recv()
        edit.join(10)
        assert edit.exitcode == 0
    finally:
        stop.set()
        if edit.is_alive():
            edit.kill()
    assert loop_in.poll(60), "the add/remove loop did not stop"
    counts = loop_in.recv()
    loop.join(10)
    assert loop.exitcode == 0
    return lost, stale, counts


def report(figures: Figures, what: str, saves: int, lost: list[tuple[int, int]], stale: int,
           counts: dict[str, int]) -> None:
    figures(f"{what}: editor saves attempted", saves)
    figures(f"{what}: editor saves lost", len(lost))
    figures(f"{what}: stale reads (an older save shown for a moment)", stale)
    figures(f"{what}: our writes that landed", counts.get("writes", 0))
    figures(f"{what}: our swap-backs (a save caught in the window, handed back)",
            counts.get("swap-backs", 0))
    figures(f"{what}: our writes that gave up (ConfigError)",
            sum(n for key, n in counts.items() if key.startswith("gave up")))


# -- 1. a half-written in-place save ----------------------------------------------------------


def half_then_rest(config: str, pause: float, out: Connection) -> None:
    """One in-place save of save 1 that stops halfway through the user's hosts for
    ``pause`` s (a slow disk, a network file system, a script writing as it goes)."""
    path = Path(config)
    ours, _ = split(path.read_bytes())
    new = user_part(1)
    half = new.index(b"Host user-15\n")
    with open(path, "wb", buffering=0) as handle:
        handle.write(ours + new[:half])
        out.send("paused")
        time.sleep(pause)
        handle.write(new[half:])
    out.send("done")


def test_an_add_during_a_half_written_in_place_save_keeps_all_of_it(
        ssh_config: Path, figures: Figures) -> None:
    """Issue 12: "a user's in-place save that is half written when `add` reads the file
    ends with half the user's hosts gone". The save pauses 0.3 s with half of the user's hosts
    written; an add started in the pause must leave the whole save and the new job."""
    prepare(ssh_config)
    signals, writer_out = FORK.Pipe(duplex=False)
    writer = FORK.Process(target=half_then_rest, args=(str(ssh_config), 0.3, writer_out),
                          daemon=True)
    writer.start()
    assert signals.poll(10) and signals.recv() == "paused"
    hosts.add(settings(ssh_config), target("Added1"))
    assert signals.poll(10) and signals.recv() == "done"
    writer.join(10)
    theirs = split(ssh_config.read_bytes())[1]
    kept = theirs.count(b"\nHost user-")
    figures("half-written save: user hosts kept of 30", kept)
    whole = theirs == user_part(1)  # (not in the assert: pytest would print 200 kB)
    assert whole, f"the user's save holds {kept} of its 30 hosts and {len(theirs)} bytes"
    jobs = {entry.job for entry in hosts.entries(settings(ssh_config))}
    assert jobs == {*BASE_JOBS, "Added1"}


# -- 2. a rename-writer (vim, VS Code) racing add/remove --------------------------------------

RENAME_SAVES = 3000
RENAME_GAP = 0.010  # random 0-10 ms between saves: about as long as one of our writes


def quick_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rename save is never seen half-done, so how long the writer waits for a recently
    changed file to settle cannot change what such a save may lose; at 0.5 s and 0.1 s the
    loop would wait out every run of saves a few ms apart and write nothing (that bound is
    test 5's). 2 ms lets it write between saves."""
    monkeypatch.setattr(configfile, "RECENT", 0.002, raising=False)
    monkeypatch.setattr(configfile, "WATCH", 0.002, raising=False)


@pytest.mark.slow
def test_rename_saves_racing_add_and_remove_are_never_lost(
        ssh_config: Path, figures: Figures, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12: "a temp-file-and-rename save (vim, VS Code) racing an add/remove loop lost 2
    of 4,000 saves": a save renamed in between our last check and our rename was replaced by
    our file, which held the save before it. 3,000 saves against a loop of adds and removes;
    none may be lost (module docstring), and the file ends holding the last one. (The writer
    before the swap, 720bcc1, lost 9 of these 3,000.)"""
    quick_settle(monkeypatch)
    prepare(ssh_config)
    lost, stale, counts = race(ssh_config, rename_editor, RENAME_SAVES, RENAME_GAP, 2)
    report(figures, "rename saves", RENAME_SAVES, lost, stale, counts)
    assert counts.get("writes", 0) >= 200, f"the loop hardly wrote: {counts}"
    assert not lost, f"{len(lost)} saves lost (expected, found): {lost[:10]}; loop: {counts}"
    check_final(ssh_config, RENAME_SAVES)


def editor_save(config: Path, save: int) -> None:
    temp = config.with_name(".config.editor-save")
    temp.write_bytes(split(config.read_bytes())[0] + user_part(save))
    os.rename(temp, config)


def test_a_save_landing_while_we_swap_back_is_kept(
        ssh_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race of test 2 at its worst moment, made certain: an editor saves twice in quick
    succession while our write is in flight, save 1 after our last check and before our swap
    (we get it back under the temp name and must swap it back), save 2 after our swap and
    before our swap-back (our process descheduled for a moment on a busy machine). Both are
    real renames of the editor's temp file; only their timing is forced, by running them
    around the real swap. Save 2 is the user's newest: the config must end holding it."""
    prepare(ssh_config)
    real_swap = exchange.swap
    calls: list[str] = []

    def swap_amid_saves(first: str, second: str) -> bool:
        calls.append(first)
        if len(calls) > 1:
            return real_swap(first, second)
        editor_save(ssh_config, 1)
        done = real_swap(first, second)
        editor_save(ssh_config, 2)
        return done

    monkeypatch.setattr(exchange, "swap", swap_amid_saves)
    error = None
    try:
        hosts.add(settings(ssh_config), target("Added1"))
    except ConfigError as exc:  # a conflict reported, with both versions kept, would be fine
        error = exc
    assert calls, "the write no longer swaps: this test needs another place to save from"
    found = counter(split(ssh_config.read_bytes())[1])
    assert found == 2, f"the config holds save {found}, not the newest (2); error: {error}"


# -- 3. a slow in-place writer racing add/remove ----------------------------------------------

IN_PLACE_SAVES = 40


@pytest.mark.slow
def test_slow_in_place_saves_racing_add_and_remove_are_never_lost(
        ssh_config: Path, figures: Figures) -> None:
    """An editor that saves in place, in 8 pieces up to 10 ms apart, racing the add/remove
    loop (with the writer's real settle timing): a write of ours based on a half-done save
    keeps only its first pieces, and the editor's later pieces go to the file we replaced.
    No completed save may lose a line, and the file ends holding the last one. (The writer
    before the settle, 720bcc1, lost 44 of 50 such saves.)"""
    prepare(ssh_config)
    lost, stale, counts = race(ssh_config, in_place_editor, IN_PLACE_SAVES, 8, 0.01, 0.3, 3)
    report(figures, "in-place saves", IN_PLACE_SAVES, lost, stale, counts)
    # The loop waits while the editor holds the file open (a lease cannot be had): fewer
    # writes land than saves are made, but enough to have raced them.
    assert counts.get("writes", 0) >= 20, f"the loop hardly wrote: {counts}"
    assert not lost, f"{len(lost)} saves lost (expected, found): {lost[:10]}; loop: {counts}"
    check_final(ssh_config, IN_PLACE_SAVES)


# -- 4. where the file system cannot swap -----------------------------------------------------

FALLBACK_SAVES = 1000


@pytest.mark.slow
def test_rename_saves_where_swap_is_unsupported(
        ssh_config: Path, figures: Figures, monkeypatch: pytest.MonkeyPatch) -> None:
    """NFS and some FUSE file systems refuse RENAME_EXCHANGE: the writer then reads the file
    once more, compares, and renames. What that cannot guarantee: a save renamed over the
    config after that last read began and before our rename is replaced by our file and lost,
    as with the writer before the swap (measured here: about 5 in 1,000 saves, as 720bcc1).
    Asserted instead: the writes went through the fallback; the loss rate is that of a
    window of one read, not of a writer that does not look (without the last checks, 287 of
    1,500 were lost); and the file ends holding the editor's last save under a whole section,
    no temp file left."""
    monkeypatch.setattr(exchange, "swap", lambda first, second: False)
    quick_settle(monkeypatch)
    prepare(ssh_config)
    lost, stale, counts = race(ssh_config, rename_editor, FALLBACK_SAVES, RENAME_GAP, 4)
    report(figures, "rename saves, no swap", FALLBACK_SAVES, lost, stale, counts)
    assert counts.get("writes", 0) >= 100, f"the loop hardly wrote: {counts}"
    assert counts.get("swaps refused", 0) >= counts["writes"] and not counts.get("swaps")
    assert len(lost) <= FALLBACK_SAVES * 3 // 100, f"{len(lost)} saves lost: {lost[:10]}"
    check_final(ssh_config, FALLBACK_SAVES)


# -- 5. a file that never settles -------------------------------------------------------------


def rewrite_forever(config: str, stop: multiprocessing.synchronize.Event) -> None:
    """A program rewriting the config in place every 20 ms (a sync daemon gone wrong)."""
    path = Path(config)
    ours, _ = split(path.read_bytes())
    save = 0
    while not stop.is_set():
        save += 1
        with open(path, "wb") as handle:
            handle.write(ours + user_part(save % 2))
        time.sleep(0.02)


@pytest.mark.slow
def test_a_file_that_keeps_changing_makes_add_give_up_in_time(
        cli: Cli, ssh_config: Path, figures: Figures) -> None:
    """A file rewritten every 20 ms never looks settled: `add` must not write into it, and
    must not wait for ever either: it gives up after SETTLE_LIMIT with one error line (exit 3,
    a ConfigError) and leaves the file as the other program wrote it."""
    prepare(ssh_config)
    before = ssh_config.read_bytes()
    stop = FORK.Event()
    writer = FORK.Process(target=rewrite_forever, args=(str(ssh_config), stop), daemon=True)
    writer.start()
    try:
        time.sleep(0.1)
        started = time.monotonic()
        result = cli("add", "Busy1", "--from-log", "Command: ssh -p 2222 u_Busy1@127.0.0.1",
                     expect=None, timeout=60)
        took = time.monotonic() - started
    finally:
        stop.set()
        writer.join(10)
    limit = getattr(configfile, "SETTLE_LIMIT", 10.0)
    figures("never-settling file: seconds before add gave up", round(took))
    assert result.returncode == 3, str(result)
    lines = result.stderr.splitlines()
    assert lines[0].startswith("rescale-ssh: error: ") and "kept changing" in lines[0], lines
    assert len(lines) <= 2 and (len(lines) == 1 or lines[1].startswith("hint: ")), lines
    assert limit <= took <= limit + 4, f"gave up after {took:.1f} s"
    ours, theirs = split(ssh_config.read_bytes())
    untouched = ours == split(before)[0] and theirs in (user_part(0), user_part(1))
    assert untouched, f"the file changed: save {counter(theirs)}, {len(ours)} bytes of section"
    assert b"Busy1" not in ssh_config.read_bytes()
