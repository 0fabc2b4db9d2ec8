"""ingest_maillog and the every-minute ingest task (mailstats: tests/test_mailstats.py)."""

from __future__ import annotations

import datetime as dt
import io
import zoneinfo

import pytest
from django.core.management import CommandError, call_command

from smtplog.models import DailyCounter
from smtplog.tasks import ingest_configured_logs
from tests.ingest.conftest import write_log

TZ = zoneinfo.ZoneInfo("Asia/Taipei")
LOG = """
Jun  3 10:40:57 smtp1 postfix/submission/smtpd[1]: AAAA1: client=pc[140.114.9.9], sasl_method=PLAIN, sasl_username=h@nthu.edu.tw
Jun  3 10:40:57 smtp1 postfix/qmgr[2]: AAAA1: from=<h@nthu.edu.tw>, size=1, nrcpt=2 (queue active)
Jun  3 10:40:58 smtp1 postfix/smtp[4]: AAAA1: to=<x@example.com>, relay=mx[192.0.2.1]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)
Jun  3 10:40:58 smtp1 postfix/smtp[4]: AAAA1: to=<y@example.com>, relay=mx[192.0.2.1]:25, delay=1, delays=0/0/0/1, dsn=5.1.1, status=bounced (550 5.1.1 no such user)
Jun  3 10:40:58 smtp1 postfix/qmgr[2]: AAAA1: removed
Jun  3 10:41:00 smtp1 postfix/anvil[9]: statistics: max connection rate 2/60s for (submission:68.183.218.8) at Jun  3 10:40:00
this is not a syslog line
"""


@pytest.fixture
def log(logdir):
    return write_log(logdir / "mail.log", LOG, dt.datetime(2026, 6, 30, tzinfo=TZ))


def test_ingest_maillog_prints_a_summary_of_what_it_did(db, log):
    out = io.StringIO()
    call_command("ingest_maillog", str(log), "--no-progress", stdout=out)
    text = out.getvalue()
    assert "lines read 7" in text
    assert "events written 3" in text
    assert "lines/s" in text
    assert DailyCounter.objects.get(sender="h@nthu.edu.tw").total == 3


def test_ingest_maillog_refuses_paths_that_match_nothing(db, tmp_path):
    with pytest.raises(CommandError, match="no file matches"):
        call_command("ingest_maillog", str(tmp_path / "nothing*"))


def test_the_beat_task_ingests_the_configured_globs(db, log, settings):
    settings.SMTPLOG_MAILLOG_GLOBS = [str(log.parent / "mail.log*")]
    assert ingest_configured_logs.delay().get() == "7 lines, 3 events, 0 errors"
    assert ingest_configured_logs.delay().get() == "0 lines, 0 events, 0 errors"


def test_ingest_maillog_reads_standard_input(db, monkeypatch):
    data = "\n".join(line.strip() for line in LOG.strip().splitlines()) + "\n"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data.encode())))
    out = io.StringIO()
    call_command("ingest_maillog", "-", "--no-progress", stdout=out)
    assert "events written 3" in out.getvalue()
    assert DailyCounter.objects.get(sender="h@nthu.edu.tw").sent == 1


def test_the_same_lines_fed_twice_on_standard_input_change_nothing_the_second_time(db, monkeypatch):
    data = "\n".join(line.strip() for line in LOG.strip().splitlines()) + "\n"
    for _ in range(2):
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data.encode())))
        call_command("ingest_maillog", "-", "--no-progress", stdout=io.StringIO())
    # Standard input has no identity, so it is read whole each time; but a message's lines
    # fed again within the hour are repeats of lines already read (as a syslog relay's
    # repeats are): the message stays one, its events counted once.
    counter = DailyCounter.objects.get(sender="h@nthu.edu.tw")
    assert (counter.sent, counter.bounced, counter.auth_rcv) == (1, 1, 1)
    from smtplog.models import Message

    assert Message.objects.filter(queue_id="AAAA1").count() == 1


def test_a_run_collects_cycles_less_often_and_restores_the_collector(db, log, monkeypatch):
    """memory.INGEST_GC_THRESHOLD while the lines are read (bench/ingest.py: the default
    collector cost a quarter of the CPU), the caller's thresholds after, failure or not."""
    import gc

    from smtplog.ingest import memory, plan, run

    before = gc.get_threshold()
    seen = []
    survey = plan.survey

    def watching(*args):
        seen.append(gc.get_threshold())
        return survey(*args)

    monkeypatch.setattr(plan, "survey", watching)
    call_command("ingest_maillog", str(log), "--no-progress", stdout=io.StringIO())
    assert seen == [(memory.INGEST_GC_THRESHOLD, *before[1:])]
    assert gc.get_threshold() == before

    def failing(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(plan, "survey", failing)
    with pytest.raises(RuntimeError):
        run.ingest([str(log)])
    assert gc.get_threshold() == before
