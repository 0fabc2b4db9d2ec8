"""kill -9 an ingest at random points, run it again: the same database as one clean run."""

from __future__ import annotations

import random
import time

import pytest

from tests.ingest.scratch import drop_database, dump, manage, popen, scratch_database

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def sample_month(tmp_path):
    from smtplog.sample import generate

    out = tmp_path / "maillog"
    generate(out, days=6, relays=3, messages_per_day=250, seed=7)
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


def test_killed_runs_resumed_give_the_database_of_one_clean_run(sample_month, databases,
                                                                tmp_path, monkeypatch):
    # Small batches: many commits, so the kills land between and inside them.
    monkeypatch.setenv("SMTPLOG_INGEST_BATCH_LINES", "300")
    glob = str(sample_month / "*" / "mail.log*")
    clean = databases()
    manage(clean, tmp_path, "ingest_maillog", "--no-progress", glob)
    killed = databases()
    rng = random.Random(1)
    kills = 0
    for _ in range(40):
        proc = popen(killed, tmp_path, "ingest_maillog", "--no-progress", glob)
        time.sleep(rng.uniform(0.3, 2.5))
        if proc.poll() is not None:
            break
        proc.kill()  # SIGKILL: no cleanup, no atexit, mid-transaction
        proc.wait()
        kills += 1
    manage(killed, tmp_path, "ingest_maillog", "--no-progress", glob)
    assert kills >= 5, "the run finished before it could be killed five times"
    assert dump(killed, tmp_path) == dump(clean, tmp_path)


def test_two_ingesters_at_once_count_nothing_twice(sample_month, databases, tmp_path):
    glob = str(sample_month / "*" / "mail.log*")
    clean = databases()
    manage(clean, tmp_path, "ingest_maillog", "--no-progress", glob)
    both = databases()
    first = popen(both, tmp_path, "ingest_maillog", "--no-progress", glob)
    second = popen(both, tmp_path, "ingest_maillog", "--no-progress", glob)
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert second.wait(timeout=300) == 0, second.stderr.read()
    assert dump(both, tmp_path) == dump(clean, tmp_path)
