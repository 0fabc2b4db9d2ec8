"""Correlation rules (docs/counting-rules.md), on small real-shaped logs (Taipei time, year from the mtime)."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from smtplog.models import Event, LoginAlias, Message
from tests.ingest.conftest import counts, run, write_log

TZ = zoneinfo.ZoneInfo("Asia/Taipei")
MTIME = dt.datetime(2026, 6, 30, 12, 0, tzinfo=TZ)

FILTERED = """
Jun  3 10:40:57 smtp1 postfix/submission/smtpd[9708]: 4AA091855DA0: client=pc.cs.nthu.edu.tw[140.114.63.228], sasl_method=PLAIN, sasl_username=alice
Jun  3 10:40:57 smtp1 postfix/cleanup[9709]: 4AA091855DA0: message-id=<ca10035e@cs.nthu.edu.tw>
Jun  3 10:40:57 smtp1 postfix/qmgr[1005]: 4AA091855DA0: from=<Alice@CS.nthu.edu.tw>, size=391, nrcpt=2 (queue active)
Jun  3 10:40:57 smtp1 postfix/smtpd[9715]: 776E41855DB2: client=localhost[127.0.0.1]
Jun  3 10:40:57 smtp1 postfix/cleanup[9709]: 776E41855DB2: message-id=<ca10035e@cs.nthu.edu.tw>
Jun  3 10:40:57 smtp1 postfix/qmgr[1005]: 776E41855DB2: from=<alice@cs.nthu.edu.tw>, size=888, nrcpt=2 (queue active)
Jun  3 10:40:57 smtp1 postfix/smtp[9710]: 4AA091855DA0: to=<bob@example.com>, relay=127.0.0.1[127.0.0.1]:10024, delay=0.23, delays=0.15/0/0/0.08, dsn=2.0.0, status=sent (250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as 776E41855DB2)
Jun  3 10:40:57 smtp1 postfix/smtp[9710]: 4AA091855DA0: to=<carol@example.org>, relay=127.0.0.1[127.0.0.1]:10024, delay=0.23, delays=0.15/0/0/0.08, dsn=2.0.0, status=sent (250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as 776E41855DB2)
Jun  3 10:40:57 smtp1 postfix/qmgr[1005]: 4AA091855DA0: removed
Jun  3 10:40:59 smtp1 postfix/smtp[9890]: 776E41855DB2: to=<bob@example.com>, relay=mx.example.com[192.0.2.25]:25, delay=1.9, delays=0/0/1.5/0.37, dsn=2.0.0, status=sent (250 2.0.0 OK  1608161352 c34si2363086pgm.445 - gsmtp)
Jun  3 10:40:59 smtp1 postfix/smtp[9891]: 776E41855DB2: to=<carol@example.org>, relay=mx.example.org[192.0.2.26]:25, delay=1.9, delays=0/0/1.5/0.37, dsn=4.2.2, status=deferred (host mx.example.org[192.0.2.26] said: 452 4.2.2 Mailbox full (in reply to RCPT TO command))
Jun  3 23:50:00 smtp1 postfix/qmgr[1005]: 776E41855DB2: from=<alice@cs.nthu.edu.tw>, size=888, nrcpt=2 (queue active)
Jun  3 23:50:01 smtp1 postfix/smtp[9891]: 776E41855DB2: to=<carol@example.org>, relay=mx.example.org[192.0.2.26]:25, delay=1.9, delays=0/0/1.5/0.37, dsn=4.2.2, status=deferred (host mx.example.org[192.0.2.26] said: 452 4.2.2 Mailbox full (in reply to RCPT TO command))
Jun  4 00:20:01 smtp1 postfix/smtp[9891]: 776E41855DB2: to=<carol@example.org>, relay=mx.example.org[192.0.2.26]:25, delay=1.9, delays=0/0/1.5/0.37, dsn=5.1.1, status=bounced (host mx.example.org[192.0.2.26] said: 550 5.1.1 <carol@example.org> User unknown (in reply to RCPT TO command))
Jun  4 00:20:01 smtp1 postfix/cleanup[9716]: A48191855DA0: message-id=<20260604002001.A48191855DA0@smtp1>
Jun  4 00:20:01 smtp1 postfix/qmgr[1005]: A48191855DA0: from=<>, size=3147, nrcpt=1 (queue active)
Jun  4 00:20:01 smtp1 postfix/bounce[9719]: 776E41855DB2: sender non-delivery notification: A48191855DA0
Jun  4 00:20:01 smtp1 postfix/qmgr[1005]: 776E41855DB2: removed
Jun  4 00:20:02 smtp1 postfix/smtp[9717]: A48191855DA0: to=<alice@cs.nthu.edu.tw>, relay=mail.cs.nthu.edu.tw[140.114.1.1]:25, delay=0.03, delays=0.01/0/0.02/0.01, dsn=2.0.0, status=sent (250 2.0.0 Saved)
Jun  4 00:20:02 smtp1 postfix/qmgr[1005]: A48191855DA0: removed
"""


def test_the_filter_hop_is_not_counted_and_the_requeued_mail_keeps_who_sent_it(db, logdir):
    run(write_log(logdir / "mail.log", FILTERED, MTIME))
    alice = "alice@cs.nthu.edu.tw"
    assert counts() == {
        (alice, "2026-06-03", "auth_rcv"): 1,
        (alice, "2026-06-03", "sent"): 1,
        (alice, "2026-06-03", "deferred"): 2,
        (alice, "2026-06-04", "bounced"): 1,
    }
    sent = Event.objects.get(status="sent")
    assert (sent.queue_id, sent.client_ip, sent.sasl_username) == (
        "776E41855DB2",
        "140.114.63.228",
        "alice",
    )
    assert sent.recipient == "bob@example.com"
    assert sent.next_hop == "mx.example.com[192.0.2.25]:25"
    assert sent.response == "250 2.0.0 OK  1608161352 c34si2363086pgm.445 - gsmtp"
    requeued = Message.objects.get(queue_id="776E41855DB2")
    assert requeued.origin.queue_id == "4AA091855DA0"
    assert requeued.removed_at is not None
    assert LoginAlias.objects.get(login="alice").sender == alice


def test_the_null_sender_counts_for_nobody(db, logdir):
    run(write_log(logdir / "mail.log", FILTERED, MTIME))
    assert not Event.objects.filter(queue_id="A48191855DA0").exists()
    assert not Event.objects.filter(sender="<>").exists()


def test_a_requeue_logged_before_the_hand_off_line_is_linked_all_the_same(db, logdir):
    text = """
    Jun  3 10:40:57 smtp1 postfix/smtpd[1]: AAAA1: client=pc[140.114.9.9], sasl_method=LOGIN, sasl_username=bob@ee.nthu.edu.tw
    Jun  3 10:40:57 smtp1 postfix/qmgr[2]: AAAA1: from=<bob@ee.nthu.edu.tw>, size=1, nrcpt=1 (queue active)
    Jun  3 10:40:58 smtp1 postfix/qmgr[2]: BBBB2: from=<bob@ee.nthu.edu.tw>, size=2, nrcpt=1 (queue active)
    Jun  3 10:40:58 smtp1 postfix/smtpd[3]: BBBB2: client=localhost[127.0.0.1]
    Jun  3 10:40:58 smtp1 postfix/smtp[4]: AAAA1: to=<x@example.com>, relay=127.0.0.1[127.0.0.1]:10024, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as BBBB2)
    Jun  3 10:40:59 smtp1 postfix/smtp[5]: BBBB2: to=<x@example.com>, relay=mx[192.0.2.1]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)
    """
    run(write_log(logdir / "mail.log", text, MTIME))
    sent = Event.objects.get(status="sent")
    assert (sent.sender, sent.client_ip, sent.queue_id) == (
        "bob@ee.nthu.edu.tw",
        "140.114.9.9",
        "BBBB2",
    )
    assert Event.objects.filter(status="auth_rcv").count() == 1


def test_expiry_counts_once_per_message_and_every_deferral_counts(db, logdir):
    text = """
    Sep 25 18:26:34 smtp2 postfix-out/qmgr[31214]: 23EBE3D5C0: from=<lab@phys.nthu.edu.tw>, size=312343, nrcpt=2 (queue active)
    Sep 25 18:26:36 smtp2 postfix-out/smtp[5084]: 23EBE3D5C0: to=<a@h.com>, relay=mx.h.com[3.155.237.60]:25, delay=2, delays=0.18/0/1.6/0.19, dsn=4.1.1, status=deferred (host mx.h.com[3.155.237.60] said: 452 4.1.1 <a@h.com> user is over quota (in reply to RCPT TO command))
    Sep 25 18:26:36 smtp2 postfix-out/smtp[5084]: 23EBE3D5C0: to=<b@h.com>, relay=mx.h.com[3.155.237.60]:25, delay=2, delays=0.18/0/1.6/0.19, dsn=4.1.1, status=deferred (host mx.h.com[3.155.237.60] said: 452 4.1.1 <b@h.com> user is over quota (in reply to RCPT TO command))
    Sep 30 20:46:07 smtp2 postfix-out/error[5085]: 23EBE3D5C0: to=<a@h.com>, relay=none, delay=440374, delays=440374/0/0/0, dsn=4.1.1, status=deferred (delivery temporarily suspended: host mx.h.com[3.155.237.60] refused to talk to me)
    Sep 30 20:46:08 smtp2 postfix-out/qmgr[31214]: 23EBE3D5C0: from=<lab@phys.nthu.edu.tw>, status=expired, returned to sender
    Sep 30 20:46:08 smtp2 postfix-out/qmgr[31214]: 23EBE3D5C0: removed
    """
    run(write_log(logdir / "mail.log", text, dt.datetime(2026, 10, 1, tzinfo=TZ)))
    lab = "lab@phys.nthu.edu.tw"
    assert counts() == {
        (lab, "2026-09-25", "deferred"): 2,
        (lab, "2026-09-30", "deferred"): 1,
        (lab, "2026-09-30", "expired"): 1,
    }


def test_rejects_and_sasl_failures_are_refusals_of_the_sender_they_name(db, logdir):
    text = """
    Jun 10 09:00:00 smtp1 postfix/smtpd[1]: NOQUEUE: reject: RCPT from unknown[203.0.113.5]: 554 5.7.1 <x@example.com>: Relay access denied; from=<Carol@Chem.nthu.edu.tw> to=<x@example.com> proto=ESMTP helo=<pc>
    Jun 10 09:00:01 smtp1 postfix/smtpd[1]: NOQUEUE: reject: RCPT from unknown[203.0.113.5]: 554 5.7.1 <x@example.com>: Relay access denied; from=<> to=<x@example.com> proto=ESMTP helo=<pc>
    Jun 10 09:00:02 smtp1 postfix/submission/smtpd[2]: warning: unknown[203.0.113.6]: SASL LOGIN authentication failed: authentication failure, sasl_username=carol@chem.nthu.edu.tw
    Jun 10 09:00:03 smtp1 postfix/submission/smtpd[2]: warning: unknown[203.0.113.6]: SASL LOGIN authentication failed: UGFzc3dvcmQ6
    """
    run(write_log(logdir / "mail.log", text, MTIME))
    assert counts() == {("carol@chem.nthu.edu.tw", "2026-06-10", "auth_blk"): 2}
    reject = Event.objects.get(client_ip="203.0.113.5")
    assert reject.recipient == "x@example.com"
    assert "Relay access denied" in reject.response


def test_a_bare_login_failing_before_its_first_success_counts_once_it_is_known(db, logdir):
    failures = """
    Jun 10 08:00:00 smtp1 postfix/submission/smtpd[2]: warning: unknown[203.0.113.6]: SASL LOGIN authentication failed: authentication failure, sasl_username=dave
    Jun 10 08:00:05 smtp1 postfix/submission/smtpd[2]: warning: unknown[203.0.113.6]: SASL PLAIN authentication failed: authentication failure, sasl_username=dave
    """
    success = """
    Jun 11 08:00:00 smtp1 postfix/submission/smtpd[3]: CCCC3: client=pc[140.114.2.2], sasl_method=PLAIN, sasl_username=dave
    Jun 11 08:00:00 smtp1 postfix/qmgr[4]: CCCC3: from=<dave@math.nthu.edu.tw>, size=10, nrcpt=1 (queue active)
    Jun 11 08:00:01 smtp1 postfix/smtp[5]: CCCC3: to=<y@example.com>, relay=mx[192.0.2.1]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)
    """
    run(write_log(logdir / "mail.log.1", failures, MTIME))
    assert counts() == {}
    run(write_log(logdir / "mail.log", success, MTIME))
    dave = "dave@math.nthu.edu.tw"
    assert counts() == {
        (dave, "2026-06-10", "auth_blk"): 2,
        (dave, "2026-06-11", "auth_rcv"): 1,
        (dave, "2026-06-11", "sent"): 1,
    }


def test_a_queue_id_reused_after_removed_is_a_new_message(db, logdir):
    text = """
    Sep  4 01:24:10 smtp3 postfix/qmgr[1]: DADADADADA: from=<a@nthu.edu.tw>, size=1, nrcpt=1 (queue active)
    Sep  4 01:24:11 smtp3 postfix/smtp[2]: DADADADADA: to=<x@example.com>, relay=mx[192.0.2.1]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)
    Sep  4 01:24:11 smtp3 postfix/qmgr[1]: DADADADADA: removed
    Sep  4 09:00:00 smtp3 postfix/qmgr[1]: DADADADADA: from=<b@nthu.edu.tw>, size=1, nrcpt=1 (queue active)
    Sep  4 09:00:01 smtp3 postfix/smtp[2]: DADADADADA: to=<y@example.com>, relay=mx[192.0.2.1]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)
    Sep  4 09:00:01 smtp3 postfix/qmgr[1]: DADADADADA: removed
    """
    run(write_log(logdir / "mail.log", text, dt.datetime(2026, 9, 5, tzinfo=TZ)))
    assert Message.objects.filter(queue_id="DADADADADA").count() == 2
    assert counts() == {
        ("a@nthu.edu.tw", "2026-09-04", "sent"): 1,
        ("b@nthu.edu.tw", "2026-09-04", "sent"): 1,
    }


def test_status_lines_of_a_message_begun_before_the_log_wait_for_their_sender(db, logdir):
    first = """
    Jun  1 00:10:00 smtp1 postfix/smtp[2]: EEEE5: to=<x@example.com>, relay=none, delay=900, delays=900/0/0/0, dsn=4.4.1, status=deferred (connect to mx.example.com[192.0.2.9]:25: Connection timed out)
    """
    later = """
    Jun  1 00:40:00 smtp1 postfix/qmgr[1]: EEEE5: from=<erin@nthu.edu.tw>, size=1, nrcpt=1 (queue active)
    Jun  1 00:40:01 smtp1 postfix/smtp[2]: EEEE5: to=<x@example.com>, relay=mx.example.com[192.0.2.9]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)
    Jun  1 00:40:01 smtp1 postfix/qmgr[1]: EEEE5: removed
    """
    log = write_log(logdir / "mail.log", first, MTIME)
    run(log)
    assert counts() == {}
    assert Event.objects.get().sender == ""
    write_log(log, later, MTIME, mode="a")
    run(log)
    assert counts() == {
        ("erin@nthu.edu.tw", "2026-06-01", "deferred"): 1,
        ("erin@nthu.edu.tw", "2026-06-01", "sent"): 1,
    }


def test_days_are_local_days_of_the_configured_zone(db, logdir):
    text = """
    2026-06-02T16:30:00.000000+00:00 smtp1 postfix/qmgr[1]: FFFF6: from=<f@nthu.edu.tw>, size=1, nrcpt=1 (queue active)
    2026-06-02T16:30:01.000000+00:00 smtp1 postfix/smtp[2]: FFFF6: to=<x@example.com>, relay=mx[192.0.2.1]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)
    """
    run(write_log(logdir / "mail.log", text, MTIME))
    # 16:30 UTC is 00:30 the next day in Taipei.
    assert counts() == {("f@nthu.edu.tw", "2026-06-03", "sent"): 1}


def test_a_hand_off_to_a_bracketless_filter_address_is_not_counted(db, logdir):
    text = """
    Jun  5 10:00:00 smtp1 postfix/qmgr[2]: GGGG1: from=<gina@nthu.edu.tw>, size=1, nrcpt=1 (queue active)
    Jun  5 10:00:01 smtp1 postfix/smtp[4]: GGGG1: to=<x@example.com>, relay=127.0.0.1:2525, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as HHHH2)
    Jun  5 10:00:02 smtp1 postfix/qmgr[2]: HHHH2: from=<gina@nthu.edu.tw>, size=2, nrcpt=1 (queue active)
    Jun  5 10:00:03 smtp1 postfix/smtp[5]: HHHH2: to=<x@example.com>, relay=mx[192.0.2.1]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)
    """
    run(write_log(logdir / "mail.log", text, MTIME))
    assert counts() == {("gina@nthu.edu.tw", "2026-06-05", "sent"): 1}


def test_ingested_times_compare_as_times_in_every_database(db, logdir):
    # SQLite keeps times as text: rows written by the ingester must be in the form
    # Django queries them with (UTC), or a range misses them by the zone's offset.
    run(write_log(logdir / "mail.log", FILTERED, MTIME))
    moment = dt.datetime(2026, 6, 3, 10, 40, 59, tzinfo=TZ)

    assert Event.objects.filter(time__gte=moment, time__lte=moment).count() == 2
    assert Message.objects.filter(first_seen__lt=moment).count() == 2
    later = Message.objects.filter(removed_at__gt=moment).values_list("queue_id", flat=True)
    assert set(later) == {"776E41855DB2", "A48191855DA0"}


ADDRESSES = """
Jun  3 10:40:57 smtp1 postfix/submission/smtpd[9708]: 5AA091855DA0: client=pc6.cs.nthu.edu.tw[2001:db8:140:114::63], sasl_method=PLAIN, sasl_username=alice
Jun  3 10:40:57 smtp1 postfix/qmgr[1005]: 5AA091855DA0: from=<alice@cs.nthu.edu.tw>, size=391, nrcpt=1 (queue active)
Jun  3 10:40:58 smtp1 postfix/smtp[9710]: 5AA091855DA0: to=<bob@example.com>, relay=mx.example.com[192.0.2.25]:25, delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 OK)
Jun  3 10:40:58 smtp1 postfix/qmgr[1005]: 5AA091855DA0: removed
Jun  3 10:41:00 smtp1 postfix/smtpd[9711]: 6AA091855DA0: client=mapped.example[::ffff:140.114.63.228], sasl_method=PLAIN, sasl_username=alice
Jun  3 10:41:00 smtp1 postfix/qmgr[1005]: 6AA091855DA0: from=<alice@cs.nthu.edu.tw>, size=391, nrcpt=1 (queue active)
Jun  3 10:41:01 smtp1 postfix/smtp[9710]: 6AA091855DA0: to=<bob@example.com>, relay=mx.example.com[192.0.2.25]:25, delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 OK)
Jun  3 10:41:01 smtp1 postfix/qmgr[1005]: 6AA091855DA0: removed
Jun  3 10:41:02 smtp1 postfix/smtpd[9712]: warning: unknown[fe80::1%eth0]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=alice
Jun  3 10:41:03 smtp1 postfix/smtpd[9712]: warning: unknown[140.114.63.9]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=alice
"""


def test_client_addresses_of_every_form_are_stored_as_logged(db, logdir):
    """IPv6, IPv4-mapped IPv6 and IPv4 addresses reach the inet columns as they were
    logged (COPY's binary format on PostgreSQL); one the column cannot hold (an IPv6
    zone) is none, and the line still counts."""
    run(write_log(logdir / "mail.log", ADDRESSES, MTIME))
    assert dict(Message.objects.values_list("queue_id", "client_ip")) == {
        "5AA091855DA0": "2001:db8:140:114::63",
        "6AA091855DA0": "::ffff:140.114.63.228",
    }
    refusals = Event.objects.filter(status="auth_blk").order_by("time")
    assert list(refusals.values_list("client_ip", flat=True)) == [None, "140.114.63.9"]
    sent = Event.objects.filter(status="sent").order_by("time")
    assert list(sent.values_list("client_ip", flat=True)) == [
        "2001:db8:140:114::63",
        "::ffff:140.114.63.228",
    ]
