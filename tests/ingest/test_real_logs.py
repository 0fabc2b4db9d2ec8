"""Real logs (issue 9): repeats and reuse never stop ingestion, and discards and local
forwards are counted as docs/counting-rules.md says, down to mailstats and sender_report."""

from __future__ import annotations

import datetime as dt
import io
import json
import zoneinfo

import pytest
from django.core.management import call_command

from smtplog.models import Event, LogFile, Message
from tests.ingest.conftest import counts, event_rows, run, write_log

TZ = zoneinfo.ZoneInfo("Asia/Taipei")
MTIME = dt.datetime(2026, 2, 1, 12, 0, tzinfo=TZ)

# The three lines of the issue: a syslog relay repeating a block does this.
THREE_LINES = """
Jan 27 07:00:04 mail postfix/smtpd[27800]: 2AA0F3004142: client=unknown[165.199.26.15]
Jan 27 07:00:04 mail postfix/qmgr[1789]: 2AA0F3004142: removed
Jan 27 07:00:04 mail postfix/smtpd[27800]: 2AA0F3004142: client=unknown[165.199.26.15]
"""

MESSAGE = """
Jan 27 07:00:04 mail postfix/submission/smtpd[27800]: 2AA0F3004142: client=unknown[165.199.26.15], sasl_method=LOGIN, sasl_username=kao
Jan 27 07:00:04 mail postfix/cleanup[27803]: 2AA0F3004142: message-id=<20260127070004.1@phys.nthu.edu.tw>
Jan 27 07:00:04 mail postfix/qmgr[1789]: 2AA0F3004142: from=<kao@phys.nthu.edu.tw>, size=3021, nrcpt=2 (queue active)
Jan 27 07:00:05 mail postfix/smtp[27810]: 2AA0F3004142: to=<a@example.com>, relay=mx.example.com[192.0.2.25]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, status=sent (250 2.0.0 OK queued)
Jan 27 07:00:05 mail postfix/smtp[27810]: 2AA0F3004142: to=<b@example.org>, relay=mx.example.org[192.0.2.26]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=4.2.2, status=deferred (host mx.example.org[192.0.2.26] said: 452 4.2.2 Mailbox full (in reply to RCPT TO command))
Jan 27 07:30:05 mail postfix/qmgr[1789]: 2AA0F3004142: from=<kao@phys.nthu.edu.tw>, size=3021, nrcpt=2 (queue active)
Jan 27 07:30:06 mail postfix/smtp[27811]: 2AA0F3004142: to=<b@example.org>, relay=mx.example.org[192.0.2.26]:25, delay=1802, delays=1800/0/0.5/1.5, dsn=5.2.2, status=bounced (host mx.example.org[192.0.2.26] said: 552 5.2.2 Mailbox full (in reply to RCPT TO command))
Jan 27 07:30:06 mail postfix/qmgr[1789]: 2AA0F3004142: removed
"""
KAO = "kao@phys.nthu.edu.tw"
KAO_COUNTS = {
    (KAO, "2026-01-27", "auth_rcv"): 1,
    (KAO, "2026-01-27", "sent"): 1,
    (KAO, "2026-01-27", "deferred"): 1,
    (KAO, "2026-01-27", "bounced"): 1,
}


def database_state() -> tuple:
    messages = sorted(
        Message.objects.values_list("relay", "queue_id", "first_seen", "sender", "removed_at")
    )
    return event_rows(), counts(), messages


def test_the_three_lines_of_the_issue_are_read_to_the_end_and_again_change_nothing(db, logdir):
    log = write_log(logdir / "mail.log", THREE_LINES, MTIME)
    summary = run(log)
    assert not summary.errors
    logfile = LogFile.objects.get()
    assert (logfile.position, logfile.last_error) == (log.stat().st_size, "")
    assert Message.objects.count() == 1
    before = database_state()
    assert run(log).lines == 0
    assert database_state() == before


def test_a_block_repeated_by_syslog_counts_as_the_block_once(db, logdir):
    lines = MESSAGE.strip().splitlines()
    run(write_log(logdir / "mail.log", "\n".join(lines + lines[1:6] + lines), MTIME))
    assert counts() == KAO_COUNTS
    assert Message.objects.count() == 1


def test_a_block_repeated_after_the_next_run_still_counts_once(db, logdir):
    log = write_log(logdir / "mail.log", MESSAGE, MTIME)
    run(log)
    write_log(log, MESSAGE, MTIME, mode="a")  # the relay sends its buffer again, later
    summary = run(log)
    assert summary.lines == len(MESSAGE.strip().splitlines())
    assert counts() == KAO_COUNTS
    assert Message.objects.count() == 1
    assert LogFile.objects.get().position == log.stat().st_size


def test_an_expiry_logged_twice_counts_once(db, logdir):
    text = """
    Sep 25 18:26:34 smtp2 postfix/qmgr[31214]: 23EBE3D5C0: from=<lab@phys.nthu.edu.tw>, size=312343, nrcpt=1 (queue active)
    Sep 30 20:46:08 smtp2 postfix/qmgr[31214]: 23EBE3D5C0: from=<lab@phys.nthu.edu.tw>, status=expired, returned to sender
    Sep 30 20:46:08 smtp2 postfix/qmgr[31214]: 23EBE3D5C0: from=<lab@phys.nthu.edu.tw>, status=expired, returned to sender
    Sep 30 20:46:08 smtp2 postfix/qmgr[31214]: 23EBE3D5C0: removed
    Sep 30 20:46:08 smtp2 postfix/qmgr[31214]: 23EBE3D5C0: from=<lab@phys.nthu.edu.tw>, status=expired, returned to sender
    """
    run(write_log(logdir / "mail.log", text, dt.datetime(2026, 10, 1, tzinfo=TZ)))
    assert counts() == {("lab@phys.nthu.edu.tw", "2026-09-30", "expired"): 1}


def test_identical_sasl_failures_and_noqueue_rejects_count_each_time(db, logdir):
    failure = "Jan 27 07:05:42 mail postfix/submission/smtpd[3564]: warning: unknown[222.162.115.97]: SASL LOGIN authentication failed: authentication failure, sasl_username=kao@phys.nthu.edu.tw"
    reject = "Jan 27 07:05:43 mail postfix/smtpd[3564]: NOQUEUE: reject: RCPT from unknown[222.162.115.97]: 554 5.7.1 <x@example.com>: Relay access denied; from=<kao@phys.nthu.edu.tw> to=<x@example.com> proto=ESMTP helo=<pc>"
    run(write_log(logdir / "mail.log", "\n".join([failure, failure, reject, reject]), MTIME))
    assert counts() == {(KAO, "2026-01-27", "auth_blk"): 4}


def test_a_queue_id_reused_within_the_second_is_a_message_of_its_own(db, logdir):
    text = """
    Jan 27 07:00:04 mail postfix/smtpd[27800]: 2AA0F3004142: client=pc1[140.114.9.1]
    Jan 27 07:00:04 mail postfix/qmgr[1789]: 2AA0F3004142: from=<a@nthu.edu.tw>, size=1, nrcpt=1 (queue active)
    Jan 27 07:00:04 mail postfix/smtp[2]: 2AA0F3004142: to=<x@example.com>, relay=mx[192.0.2.1]:25, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 ok)
    Jan 27 07:00:04 mail postfix/qmgr[1789]: 2AA0F3004142: removed
    Jan 27 07:00:04 mail postfix/smtpd[27801]: 2AA0F3004142: client=pc2[140.114.9.2]
    Jan 27 07:00:04 mail postfix/qmgr[1789]: 2AA0F3004142: from=<b@nthu.edu.tw>, size=1, nrcpt=1 (queue active)
    Jan 27 07:00:05 mail postfix/smtp[2]: 2AA0F3004142: to=<y@example.com>, relay=mx[192.0.2.1]:25, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 ok)
    Jan 27 07:00:05 mail postfix/qmgr[1789]: 2AA0F3004142: removed
    """
    run(write_log(logdir / "mail.log", text, MTIME))
    assert counts() == {
        ("a@nthu.edu.tw", "2026-01-27", "sent"): 1,
        ("b@nthu.edu.tw", "2026-01-27", "sent"): 1,
    }
    lives = Message.objects.order_by("first_seen")
    assert [(m.sender, m.client_ip) for m in lives] == [
        ("a@nthu.edu.tw", "140.114.9.1"),
        ("b@nthu.edu.tw", "140.114.9.2"),
    ]
    # Both began in the same second; the second is stored a microsecond on.
    assert lives[1].first_seen - lives[0].first_seen == dt.timedelta(microseconds=1)


def test_a_queue_id_back_without_its_removed_logged_is_a_new_message(db, logdir):
    text = """
    Jan 27 07:00:04 mail postfix/smtpd[27800]: 2AA0F3004142: client=pc1[140.114.9.1]
    Jan 27 07:00:04 mail postfix/qmgr[1789]: 2AA0F3004142: from=<a@nthu.edu.tw>, size=1, nrcpt=1 (queue active)
    Jan 27 07:00:04 mail postfix/smtp[2]: 2AA0F3004142: to=<x@example.com>, relay=mx[192.0.2.1]:25, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 ok)
    Jan 27 11:00:04 mail postfix/smtpd[27801]: 2AA0F3004142: client=pc2[140.114.9.2]
    Jan 27 11:00:04 mail postfix/qmgr[1789]: 2AA0F3004142: from=<b@nthu.edu.tw>, size=1, nrcpt=1 (queue active)
    Jan 27 11:00:05 mail postfix/smtp[2]: 2AA0F3004142: to=<y@example.com>, relay=mx[192.0.2.1]:25, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 ok)
    """
    run(write_log(logdir / "mail.log", text, MTIME))
    assert counts() == {
        ("a@nthu.edu.tw", "2026-01-27", "sent"): 1,
        ("b@nthu.edu.tw", "2026-01-27", "sent"): 1,
    }
    first = Message.objects.get(sender="a@nthu.edu.tw")
    assert first.removed_at == dt.datetime(2026, 1, 27, 11, 0, 4, tzinfo=TZ)


def test_junk_in_fields_with_a_type_is_stored_as_nothing_rather_than_stopping(db, logdir):
    text = f"""
    Jan 27 07:00:04 mail postfix/smtpd[1]: 2AA0F3004142: client=pc[not-an-address]
    Jan 27 07:00:04 mail postfix/qmgr[2]: 2AA0F3004142: from=<{"x" * 400}@nthu.edu.tw>, size=1, nrcpt=1 (queue active)
    Jan 27 07:00:05 mail postfix/smtp[3]: 2AA0F3004142: to=<y@example.com>, relay=mx[192.0.2.1]:25, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 ok)
    Jan 27 07:00:06 mail postfix/smtpd[4]: NOQUEUE: reject: RCPT from pc[fe80::1%eth0]: 554 5.7.1 <x@example.com>: Relay access denied; from=<c@nthu.edu.tw> to=<x@example.com> proto=ESMTP helo=<pc>
    """
    summary = run(write_log(logdir / "mail.log", text, MTIME))
    assert not summary.errors
    sent = Event.objects.get(status="sent")
    assert (sent.client_ip, len(sent.sender)) == (None, 320)
    assert Event.objects.get(status="auth_blk").client_ip is None


# -- docs/counting-rules.md: a discard is a bounce, a local forward an internal step --------
# The issue's lines, the addresses anonymised as there; the sender a campus address.
DISCARDED = """
2023-03-15T10:12:03.100000+01:00 helga postfix/submission/smtpd[440800]: 4Pc3ZX1jFxz3tBr: client=pc.example.net[192.0.2.10], sasl_method=PLAIN, sasl_username=user02.test@cs.nthu.edu.tw
2023-03-15T10:12:03.200000+01:00 helga postfix/cleanup[440802]: 4Pc3ZX1jFxz3tBr: message-id=<20230315101203.1@cs.nthu.edu.tw>
2023-03-15T10:12:03.300000+01:00 helga postfix/qmgr[1789]: 4Pc3ZX1jFxz3tBr: from=<user02.test@cs.nthu.edu.tw>, size=40210, nrcpt=1 (queue active)
2023-03-15T10:12:04.500000+01:00 helga postfix/amavis/smtp[440819]: 4Pc3ZX1jFxz3tBr: to=<user01.test@example.net>, relay=127.0.0.1[127.0.0.1]:10024, delay=1.4, delays=0.3/0/0/1.1, dsn=2.7.0, status=sent (250 2.7.0 Ok, discarded, id=351462-17 - BANNED: .exe,P=p003,L=1,M=multipart/mixed | P=p002,L=1/2,M=application/x-msdownload,T=exe,N=setup.exe)
2023-03-15T10:12:04.600000+01:00 helga postfix/qmgr[1789]: 4Pc3ZX1jFxz3tBr: removed
"""
FORWARDED = """
2023-03-13T00:40:10.812345+01:00 helga postfix/submission/smtpd[326880]: 4PbMVH1gW1z3tBr: client=pc.example.net[192.0.2.10], sasl_method=PLAIN, sasl_username=user02.test@cs.nthu.edu.tw
2023-03-13T00:40:10.900000+01:00 helga postfix/cleanup[326882]: 4PbMVH1gW1z3tBr: message-id=<20230313004010.1@cs.nthu.edu.tw>
2023-03-13T00:40:10.950000+01:00 helga postfix/qmgr[1789]: 4PbMVH1gW1z3tBr: from=<user02.test@cs.nthu.edu.tw>, size=1520, nrcpt=1 (queue active)
2023-03-13T00:40:11.021405+01:00 helga postfix/cleanup[326882]: 4PbMVH1yTpz3tG3: message-id=<20230313004010.1@cs.nthu.edu.tw>
2023-03-13T00:40:11.030000+01:00 helga postfix/qmgr[1789]: 4PbMVH1yTpz3tG3: from=<user02.test@cs.nthu.edu.tw>, size=1690, nrcpt=1 (queue active)
2023-03-13T00:40:11.031000+01:00 helga postfix/local[326895]: 4PbMVH1gW1z3tBr: to=<root@mail.example.de>, relay=local, delay=0.22, delays=0.13/0.01/0/0.08, dsn=2.0.0, status=sent (forwarded as 4PbMVH1yTpz3tG3)
2023-03-13T00:40:11.032000+01:00 helga postfix/qmgr[1789]: 4PbMVH1gW1z3tBr: removed
2023-03-13T00:40:11.150000+01:00 helga postfix/pipe[326897]: 4PbMVH1yTpz3tG3: to=<user01.test@example.net>, orig_to=<root@mail.example.de>, relay=dovecot, delay=0.12, delays=0.01/0.01/0/0.1, dsn=2.0.0, status=sent (delivered via dovecot service)
2023-03-13T00:40:11.151000+01:00 helga postfix/qmgr[1789]: 4PbMVH1yTpz3tG3: removed
"""
USER = "user02.test@cs.nthu.edu.tw"


def mailstats(day: str) -> list[dict]:
    """The senders' rows of mailstats' JSON for that day."""
    out = io.StringIO()
    call_command("mailstats", "--day", day, "--format", "json", stdout=out)
    return json.loads(out.getvalue())["senders"]


def sender_report(day: str, fmt: str = "text", language: str = "en") -> str:
    out = io.StringIO()
    options = ("--begin", day, "--end", day, "--format", fmt, "--language", language)
    call_command("sender_report", USER, *options, stdout=out)
    return out.getvalue()


def test_a_content_filter_discard_is_one_bounce_per_recipient_with_the_filter_reply(db, logdir):
    run(write_log(logdir / "mail.log", DISCARDED, MTIME))
    assert mailstats("2023-03-15") == [
        {
            "sender": USER,
            "sum": 2,
            "auth_blk": 0,
            "auth_rcv": 1,
            "bounced": 1,
            "deferred": 0,
            "expired": 0,
            "sent": 0,
        }
    ]
    rows = json.loads(sender_report("2023-03-15", "json"))["details"]
    bounce = next(row for row in rows if row["status"] == "bounced")
    assert bounce["queue_id"] == "4Pc3ZX1jFxz3tBr"
    assert "user01.test@example.net" in bounce["response"]
    assert "250 2.7.0 Ok, discarded, id=351462-17 - BANNED: .exe" in bounce["response"]
    text = sender_report("2023-03-15")
    assert "discarded by the content filter" in text
    assert "no bounce message comes back to you" in text
    assert "遭內容過濾系統丟棄" in sender_report("2023-03-15", language="zh-hant")


def test_a_local_forward_is_an_internal_step_and_the_new_message_keeps_its_sender(db, logdir):
    run(write_log(logdir / "mail.log", FORWARDED, MTIME))
    assert mailstats("2023-03-13") == [
        {
            "sender": USER,
            "sum": 2,
            "auth_blk": 0,
            "auth_rcv": 1,
            "bounced": 0,
            "deferred": 0,
            "expired": 0,
            "sent": 1,
        }
    ]
    rows = json.loads(sender_report("2023-03-13", "json"))["details"]
    assert [(row["status"], row["queue_id"]) for row in rows] == [
        ("auth_rcv", "4PbMVH1gW1z3tBr"),
        ("sent", "4PbMVH1yTpz3tG3"),
    ]
    sent = Event.objects.get(status="sent")
    assert (sent.client_ip, sent.sasl_username) == ("192.0.2.10", USER)
    assert "user01.test@example.net" in rows[1]["response"]
    assert Message.objects.get(queue_id="4PbMVH1yTpz3tG3").origin.queue_id == "4PbMVH1gW1z3tBr"


@pytest.mark.parametrize("hops", [["127.0.0.1"], ["10.0.0.5:10024"]])
def test_a_discarded_reply_counts_only_from_the_relays_own_filter(db, logdir, settings, hops):
    settings.SMTPLOG_INTERNAL_NEXT_HOPS = hops
    run(write_log(logdir / "mail.log", DISCARDED, MTIME))
    status = "bounced" if hops == ["127.0.0.1"] else "sent"
    assert counts()[(USER, "2023-03-15", status)] == 1


def test_a_repeat_of_an_earlier_life_leaves_the_queue_ids_new_life_alone(db, logdir):
    first_life = """
    Jan 27 07:00:04 mail postfix/submission/smtpd[27800]: 2AA0F3004142: client=pc1[140.114.9.1], sasl_method=LOGIN, sasl_username=kao
    Jan 27 07:00:04 mail postfix/qmgr[1789]: 2AA0F3004142: from=<kao@phys.nthu.edu.tw>, size=1, nrcpt=1 (queue active)
    Jan 27 07:00:05 mail postfix/smtp[2]: 2AA0F3004142: to=<x@example.com>, relay=mx[192.0.2.1]:25, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 ok)
    Jan 27 07:00:05 mail postfix/qmgr[1789]: 2AA0F3004142: removed
    """
    second_life = """
    Jan 27 07:20:00 mail postfix/smtpd[27900]: 2AA0F3004142: client=pc2[140.114.9.2]
    Jan 27 07:20:00 mail postfix/qmgr[1789]: 2AA0F3004142: from=<b@nthu.edu.tw>, size=1, nrcpt=1 (queue active)
    """
    log = write_log(logdir / "mail.log", first_life + second_life, MTIME)
    run(log)
    write_log(log, first_life, MTIME, mode="a")  # syslog sends the first life again...
    write_log(  # ...and the second life goes on
        log,
        "Jan 27 07:20:01 mail postfix/smtp[3]: 2AA0F3004142: to=<y@example.com>, relay=mx[192.0.2.1]:25, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 ok)",
        MTIME,
        mode="a",
    )
    run(log)
    assert counts() == {
        (KAO, "2026-01-27", "auth_rcv"): 1,
        (KAO, "2026-01-27", "sent"): 1,
        ("b@nthu.edu.tw", "2026-01-27", "sent"): 1,
    }
    assert Event.objects.get(recipient="y@example.com").client_ip == "140.114.9.2"
    assert Message.objects.count() == 2
