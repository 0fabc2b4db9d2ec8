"""kill -9 an ingest at random points, run it again: the same database as one clean run."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import pytest

from tests import services
from tests.ingest.conftest import central_month
from tests.ingest.scratch import (
    drop_database,
    dump,
    lines_read,
    manage,
    open_parts,
    popen,
    scratch_database,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def sample_month(tmp_path):
    from smtplog.sample import generate

    out = tmp_path / "maillog"
    generate(out, days=4, relays=3, messages_per_day=150, seed=7)
    return out


@pytest.fixture
def databases(tmp_path):
    urls = []

    def make():
        urls.append(scratch_database(tmp_path))
        return urls[-1]

    yield make
    for url in urls:
        drop_database(url)


@pytest.fixture(params=["one process", "relays side by side"])
def mode(request, monkeypatch):
    """Ingest in one process, or one worker process per relay (PostgreSQL only)."""
    if request.param == "one process":
        monkeypatch.setenv("SMTPLOG_INGEST_WORKERS", "1")
    else:
        services.require_postgres()
        monkeypatch.setenv("SMTPLOG_INGEST_PARALLEL_BYTES", "0")
    return request.param


def test_killed_runs_resumed_give_the_database_of_one_clean_run(
    sample_month, databases, tmp_path, monkeypatch, mode
):
    kill_and_resume(str(sample_month / "*" / "mail.log*"), databases, tmp_path, monkeypatch)


def test_killed_runs_of_a_central_log_resumed_give_the_database_of_one_clean_run(
    databases, tmp_path, monkeypatch
):
    """The relays of one central log (of uneven traffic) read side by side, each keeping
    its own position."""
    services.require_postgres()
    monkeypatch.setenv("SMTPLOG_INGEST_PARALLEL_BYTES", "0")
    _, central = central_month(tmp_path, days=4, messages_per_day=150, seed=7)
    # (smaller batches: three workers commit by turns, and a run ends sooner)
    glob = str(central / "mail.log*")
    parts_left = kill_and_resume(glob, databases, tmp_path, monkeypatch, batch_lines=150)
    assert any(parts_left), "no kill landed while the relays were read apart"


def kill_and_resume(
    glob: str, databases, tmp_path, monkeypatch, batch_lines: int = 300
) -> list[int]:
    """Kill -9 ingestion runs over `glob` at six random points, then run it to the end:
    the database must equal that of one clean run. Returns how many relays' parts of
    central logs each kill left open."""
    # Small batches: many commits, so the kills land between and inside them.
    monkeypatch.setenv("SMTPLOG_INGEST_BATCH_LINES", str(batch_lines))
    clean = databases()
    manage(clean, tmp_path, "ingest_maillog", "--no-progress", glob)
    total = lines_read(clean)
    killed = databases()
    rng = random.Random(1)
    # Kill points chosen by progress, not by the clock: after 6 random amounts of lines
    # have been committed, plus a random moment into the next batch.
    targets = sorted(rng.uniform(0.05, 0.8) * total for _ in range(6))
    kills = 0
    parts_left: list[int] = []
    for target in targets:
        proc = popen(killed, tmp_path, "ingest_maillog", "--no-progress", glob)
        while proc.poll() is None and lines_read(killed) < target:
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.04))
        if proc.poll() is None:
            proc.kill()  # SIGKILL: no cleanup, no atexit, mid-transaction
            kills += 1
        proc.wait()
        parts_left.append(open_parts(killed))
    assert 0 < lines_read(killed) < total
    manage(killed, tmp_path, "ingest_maillog", "--no-progress", glob)
    assert kills >= 5, "the runs finished before they could be killed five times"
    assert dump(killed, tmp_path) == dump(clean, tmp_path)
    return parts_left


def test_two_ingesters_at_once_count_nothing_twice(sample_month, databases, tmp_path, mode):
    glob = str(sample_month / "*" / "mail.log*")
    clean = databases()
    manage(clean, tmp_path, "ingest_maillog", "--no-progress", glob)
    both = databases()
    first = popen(both, tmp_path, "ingest_maillog", "--no-progress", glob)
    second = popen(both, tmp_path, "ingest_maillog", "--no-progress", glob)
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert second.wait(timeout=300) == 0, second.stderr.read()
    assert dump(both, tmp_path) == dump(clean, tmp_path)


def test_follow_keeps_reading_as_the_log_grows_and_rotates(databases, tmp_path):
    from tests.ingest.test_rotation import append, message_lines

    logdir = tmp_path / "follow"
    logdir.mkdir()
    log = logdir / "mail.log"
    append(log, message_lines(3))
    url = databases()
    proc = popen(
        url,
        tmp_path,
        "ingest_maillog",
        "--follow",
        "--interval",
        "0.2",
        "--no-progress",
        str(logdir / "mail.log*"),
    )
    try:
        assert wait_for_sent(url, tmp_path, 3)
        append(log, message_lines(2, start=3))
        assert wait_for_sent(url, tmp_path, 5)
        log.rename(logdir / "mail.log.1")
        append(log, message_lines(4, start=5))
        assert wait_for_sent(url, tmp_path, 9)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def wait_for_sent(url, var_dir, n: int, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sent = sum(1 for e in dump(url, var_dir)["events"] if e[3] == "sent")
        if sent == n:
            return True
        assert sent < n, f"{sent} sent events, more than the {n} written"
        time.sleep(0.5)
    return False


def test_workers_die_with_a_killed_ingester(databases, tmp_path, monkeypatch):
    from smtplog.sample import generate

    services.require_postgres()
    generate(tmp_path / "big", days=10, relays=3, messages_per_day=1500, seed=8)
    total = json.loads((tmp_path / "big" / "expected.json").read_text())["lines"]
    monkeypatch.setenv("SMTPLOG_INGEST_PARALLEL_BYTES", "0")
    glob = str(tmp_path / "big" / "*" / "mail.log*")
    url = databases()
    proc = popen(url, tmp_path, "ingest_maillog", "--no-progress", glob)
    processes = min(3, os.cpu_count() or 1)  # a process per relay, no more than the cores
    while proc.poll() is None and (len(ingesters(glob)) < processes or not lines_read(url)):
        time.sleep(0.005)
    assert len(ingesters(glob)) == processes, "the parent and its forked workers"
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 2
    while ingesters(glob) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ingesters(glob) == [], "workers outlived their parent"
    stopped = lines_read(url)
    time.sleep(0.5)
    assert lines_read(url) == stopped < total
    # The next run goes on from what they committed and finishes the job.
    manage(url, tmp_path, "ingest_maillog", "--no-progress", glob)
    assert lines_read(url) == total


def ingesters(glob: str) -> list[int]:
    """Live processes ingesting `glob` (the command and its forked workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if glob.encode() in cmdline and b"ingest_maillog" in cmdline and state != "Z":
                found.append(int(entry.name))
    return found
