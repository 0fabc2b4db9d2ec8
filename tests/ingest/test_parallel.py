"""Relays ingested side by side, one worker process each (PostgreSQL): same database as one
process would make, what the relays share (login aliases, counters) kept right, and files
that mix relays read on in one process."""

from __future__ import annotations

import datetime as dt
import json
import os
import zoneinfo
from pathlib import Path

import pytest
from django.db.models import F

from smtplog.ingest import parallel
from smtplog.models import Event, LogFile, LoginAlias, RelayPart
from tests import services
from tests.ingest.conftest import central_month, counts, event_rows, run, write_log
from tests.ingest.test_accuracy import expected_counts

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TZ = zoneinfo.ZoneInfo("Asia/Taipei")
MTIME = dt.datetime(2026, 6, 30, 12, 0, tzinfo=TZ)


@pytest.fixture
def side_by_side(settings, monkeypatch):
    """Workers whatever the size of the files; records what each parallel run did."""
    services.require_postgres()
    settings.SMTPLOG_INGEST_PARALLEL_BYTES = 0
    settings.SMTPLOG_INGEST_WORKERS = 4
    runs = []
    real = parallel.run

    def spy(groups, *args, **kwargs):
        done, leftover = real(groups, *args, **kwargs)
        runs.append({"relays": sorted(group.relay for group in groups), "leftover": leftover})
        return done, leftover

    monkeypatch.setattr(parallel, "run", spy)
    return runs


def test_a_month_of_three_relays_side_by_side_is_counted_exactly(side_by_side, tmp_path):
    from smtplog.sample import generate

    out = tmp_path / "maillog"
    generate(out, days=31, end=dt.date(2026, 11, 27), relays=3, messages_per_day=120, seed=11)
    summary = run(out / "*" / "mail.log*")
    assert side_by_side == [{"relays": ["smtp1", "smtp2", "smtp3"], "leftover": []}]
    assert not summary.errors
    assert summary.lines == json.loads((out / "expected.json").read_text())["lines"]
    assert counts() == expected_counts(out)


SUCCESS = """
Jun 11 08:00:00 {relay} postfix/submission/smtpd[3]: CCCC3: client=pc[140.114.2.2], sasl_method=PLAIN, sasl_username=dave
Jun 11 08:00:00 {relay} postfix/qmgr[4]: CCCC3: from=<dave@math.nthu.edu.tw>, size=10, nrcpt=1 (queue active)
Jun 11 08:00:01 {relay} postfix/smtp[5]: CCCC3: to=<y@example.com>, relay=mx[192.0.2.1]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)
Jun 11 08:00:01 {relay} postfix/qmgr[4]: CCCC3: removed
"""
FAILURES = """
Jun 10 08:00:00 {relay} postfix/submission/smtpd[2]: warning: unknown[203.0.113.6]: SASL LOGIN authentication failed: authentication failure, sasl_username=dave
Jun 12 08:00:05 {relay} postfix/submission/smtpd[2]: warning: unknown[203.0.113.6]: SASL PLAIN authentication failed: authentication failure, sasl_username=dave
"""


@pytest.mark.parametrize("repeat", range(3))  # the workers' timing differs run to run
def test_a_login_learnt_on_one_relay_attributes_failures_on_another(side_by_side, tmp_path, repeat):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_log(tmp_path / "a" / "mail.log", SUCCESS.format(relay="smtp1"), MTIME)
    write_log(tmp_path / "b" / "mail.log", FAILURES.format(relay="smtp2") * 50, MTIME)
    run(tmp_path / "*" / "mail.log")
    assert side_by_side[0]["relays"] == ["smtp1", "smtp2"]
    dave = "dave@math.nthu.edu.tw"
    assert counts() == {
        (dave, "2026-06-10", "auth_blk"): 50,
        (dave, "2026-06-12", "auth_blk"): 50,
        (dave, "2026-06-11", "auth_rcv"): 1,
        (dave, "2026-06-11", "sent"): 1,
    }
    assert list(LoginAlias.objects.values_list("login", "sender")) == [("dave", dave)]
    assert not Event.objects.filter(sender="").exists()


def test_a_file_holding_lines_of_another_relay_is_read_on_in_one_process(
    side_by_side, tmp_path, settings, monkeypatch
):
    """A line of another relay past the start the plan looks at (else the file is read
    as a central log: see below)."""
    from smtplog.ingest import plan

    monkeypatch.setattr(plan, "_PROBE_BYTES", 4096)
    settings.SMTPLOG_INGEST_BATCH_LINES = 100
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    mixed = SUCCESS.format(relay="smtp1").replace("CCCC3", "AAAA1")
    mixed += "".join(
        SUCCESS.format(relay="smtp1").replace("CCCC3", f"AB{i:04d}") for i in range(60)
    )
    mixed += SUCCESS.format(relay="smtp2").replace("CCCC3", "BBBB2")  # smtp2, in smtp1's file
    write_log(tmp_path / "a" / "mail.log", mixed, MTIME)
    write_log(tmp_path / "b" / "mail.log", FAILURES.format(relay="smtp2"), MTIME)
    summary = run(tmp_path / "*" / "mail.log")
    [parallel_run] = side_by_side
    assert parallel_run["leftover"] == [str(tmp_path / "a" / "mail.log")]
    assert not summary.errors
    dave = "dave@math.nthu.edu.tw"
    assert counts() == {
        (dave, "2026-06-10", "auth_blk"): 1,
        (dave, "2026-06-12", "auth_blk"): 1,
        (dave, "2026-06-11", "auth_rcv"): 62,
        (dave, "2026-06-11", "sent"): 62,
    }
    assert summary.lines == 62 * 4 + 2
    stored = event_rows()
    run(tmp_path / "*" / "mail.log")  # nothing new: nothing changes
    assert event_rows() == stored


def test_one_relay_or_little_to_read_stays_in_one_process(settings, tmp_path, monkeypatch):
    services.require_postgres()
    called = []
    monkeypatch.setattr(parallel, "run", lambda *a, **k: called.append(a))
    write_log(tmp_path / "mail.log", SUCCESS.format(relay="smtp1"), MTIME)
    settings.SMTPLOG_INGEST_PARALLEL_BYTES = 0
    run(tmp_path / "mail.log")  # one relay, however much there is to read
    settings.SMTPLOG_INGEST_PARALLEL_BYTES = 16 * 2**20  # the default floor
    (tmp_path / "b").mkdir()
    write_log(tmp_path / "b" / "mail.log", FAILURES.format(relay="smtp2"), MTIME)
    run(tmp_path / "mail.log", tmp_path / "b" / "mail.log")  # two relays, little to read
    assert called == []
    assert counts()[("dave@math.nthu.edu.tw", "2026-06-10", "auth_blk")] == 1


def test_no_lock_outlives_a_run(side_by_side, tmp_path):
    """Between two runs (ingest_maillog --follow) nothing of ours is held: the every-minute
    task of another process must be able to start."""
    import psycopg
    from django.conf import settings as django_settings

    from smtplog.ingest.locks import WRITERS_LOCK

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_log(tmp_path / "a" / "mail.log", SUCCESS.format(relay="smtp1"), MTIME)
    write_log(tmp_path / "b" / "mail.log", FAILURES.format(relay="smtp2"), MTIME)
    for _ in range(2):
        run(tmp_path / "*" / "mail.log")
        db = django_settings.DATABASES["default"]
        with psycopg.connect(
            dbname=db["NAME"],
            host=db["HOST"] or "127.0.0.1",
            port=db["PORT"] or 5432,
            user=db["USER"] or "postgres",
            password=db["PASSWORD"] or None,
            autocommit=True,
        ) as other:
            assert other.execute("SELECT pg_try_advisory_lock(%s)", [WRITERS_LOCK]).fetchone()[0]
            other.execute("SELECT pg_advisory_unlock(%s)", [WRITERS_LOCK])
    assert len(side_by_side) == 2


def test_a_central_log_of_three_relays_is_read_side_by_side_and_counted_exactly(
    side_by_side, tmp_path
):
    out, central = central_month(tmp_path, days=31, messages_per_day=120, seed=11)
    summary = run(central / "mail.log*")
    # smtp1 (55 %) apart, and as many more as there are cores but one; the rest together
    [parallel_run] = side_by_side
    assert parallel_run["relays"][0] == "smtp1"
    assert parallel_run["relays"] == ["smtp1", "smtp2", "smtp3"][: min(3, os.cpu_count())]
    assert parallel_run["leftover"] == []
    assert not summary.errors
    assert summary.lines == json.loads((out / "expected.json").read_text())["lines"]
    assert counts() == expected_counts(out)
    assert not RelayPart.objects.exists()  # every relay read to the files' ends
    ends = {f.name: f.stat().st_size for f in central.iterdir() if f.suffix != ".gz"}
    for logfile in LogFile.objects.all():
        if Path(logfile.path).name in ends:
            assert logfile.position == ends[Path(logfile.path).name]
    stored = event_rows()
    run(central / "mail.log*")  # nothing new: nothing changes
    assert event_rows() == stored


def test_a_relay_the_first_lines_do_not_show_is_read_with_the_smallest(
    side_by_side, tmp_path, settings, monkeypatch
):
    """The plan sees smtp1 and smtp2 at the start of the central log; smtp3 logs only
    later: the worker of the smallest relay seen reads its lines too."""
    from smtplog.ingest import plan

    monkeypatch.setattr(plan, "_PROBE_BYTES", 4096)
    settings.SMTPLOG_INGEST_BATCH_LINES = 100
    head = "".join(
        SUCCESS.format(relay="smtp2" if i % 8 == 1 else "smtp1").replace("CCCC3", f"AA{i:04d}")
        for i in range(45)
    )
    late = SUCCESS.format(relay="smtp3").replace("CCCC3", "DDDD4") + FAILURES.format(relay="smtp3")
    write_log(tmp_path / "mail.log", head + late, MTIME)
    summary = run(tmp_path / "mail.log")
    assert side_by_side[0]["relays"] == ["smtp1", "smtp2"]
    assert side_by_side[0]["leftover"] == []
    assert not summary.errors
    dave = "dave@math.nthu.edu.tw"
    assert counts() == {
        (dave, "2026-06-10", "auth_blk"): 1,
        (dave, "2026-06-12", "auth_blk"): 1,
        (dave, "2026-06-11", "auth_rcv"): 46,
        (dave, "2026-06-11", "sent"): 46,
    }
    assert Event.objects.filter(relay="smtp3").count() == 4


@pytest.mark.parametrize("next_run", ["one process", "side by side", "an older copy first"])
def test_relays_left_behind_in_a_central_log_are_caught_up(
    side_by_side, tmp_path, settings, monkeypatch, next_run
):
    """smtp2's worker (its relay read apart) fails near the end of the month, while the
    others read on: the next run (in one process, or side by side again,
    whichever relay the plan then finds smallest) reads smtp2's lines on from its part's
    position, and no line twice."""
    from django.db import OperationalError

    from smtplog.ingest import reading
    from smtplog.ingest.run import IngestFailed

    out, central = central_month(tmp_path, days=31, messages_per_day=60, seed=3)
    settings.SMTPLOG_INGEST_BATCH_LINES = 500
    monkeypatch.setattr(os, "cpu_count", lambda: 4)  # smtp2 apart too, in a forked worker
    real_batches = reading._Reader._batches

    def failing_batches(reader, begin):  # (handed out by the rest's worker, or read)
        for lines, position, tail in real_batches(reader, begin):
            share = reader.share
            if share.part and share.relay == "smtp2" and lines[0].startswith(b"Nov 26"):
                raise OperationalError("smtp2's worker breaks down")
            yield lines, position, tail

    monkeypatch.setattr(reading._Reader, "_batches", failing_batches)
    with pytest.raises(IngestFailed, match="smtp2's worker breaks down"):
        run(central / "mail.log*")
    # Relays stand at different positions now (which, depends on which process failed).
    apart = RelayPart.objects.exclude(position=F("logfile__position"))
    assert apart.filter(logfile__position__gt=0).exists()
    assert counts() != expected_counts(out)
    monkeypatch.setattr(reading._Reader, "_batches", real_batches)
    monkeypatch.undo()  # (the machine's own cores)
    paths = [central / "mail.log*"]
    if next_run != "side by side":
        settings.SMTPLOG_INGEST_WORKERS = 1
    if next_run == "an older copy first":
        # A shorter copy of a file with parts behind (the same first line), read before
        # it: nothing new in it, and the relays' positions in that file must stay.
        logfile = apart.filter(logfile__position__gt=0).first().logfile
        with open(logfile.path, "rb") as f:
            head = f.read(logfile.position // 2)
        (central / "a-copy.log").write_bytes(head[: head.rfind(b"\n") + 1])
        paths.insert(0, central / "a-copy.log")
    summary = run(*paths)
    assert not summary.errors
    assert counts() == expected_counts(out)
    assert not RelayPart.objects.exists()
    assert not Event.objects.filter(sender="").exists()
