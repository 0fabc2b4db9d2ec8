"""Nightly alerts: who is alerted, exactly once, and what the mail says."""

from __future__ import annotations

import datetime as dt
import re
import smtplib
import threading
from unittest import mock

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from alerts import alerting
from alerts.models import Alert
from alerts.tasks import send_alert, send_daily_alerts
from smtplog import delivery
from smtplog.models import DailyCounter, Status
from smtplog.store import add_events
from tests.alerts.conftest import YESTERDAY, counter, heavy_day
from tests.conftest import NOW, TZ, make_event
from tests.services import require_postgres

pytestmark = pytest.mark.usefixtures("frozen")


def alerted() -> set[tuple[str, dt.date]]:
    return set(Alert.objects.filter(state=Alert.State.SENT).values_list("sender", "day"))


def mailed_to() -> list[str]:
    return sorted(address for message in mail.outbox for address in message.to)


def run_nightly(django_capture_on_commit_callbacks) -> None:
    # The task queues one send_alert per alert on commit; eager mode runs them right here.
    with django_capture_on_commit_callbacks(execute=True):
        send_daily_alerts.delay()


# Who is alerted


@pytest.mark.django_db
def test_a_sum_of_250_is_alerted_and_249_is_not():
    counter("at@nthu.edu.tw", sent=250)
    counter("under@nthu.edu.tw", sent=240, deferred=9)

    senders = [c.sender for c in alerting.over_threshold(YESTERDAY)]

    assert senders == ["at@nthu.edu.tw"]


@pytest.mark.django_db
def test_10_bounces_are_alerted_and_9_are_not():
    counter("ten@nthu.edu.tw", bounced=10)
    counter("nine@nthu.edu.tw", bounced=9, sent=5)

    senders = [c.sender for c in alerting.over_threshold(YESTERDAY)]

    assert senders == ["ten@nthu.edu.tw"]


@pytest.mark.django_db
def test_a_sender_over_both_thresholds_gets_one_alert_giving_both_reasons():
    counter("both@nthu.edu.tw", sent=300, bounced=20)

    [candidate] = alerting.over_threshold(YESTERDAY)

    assert candidate.reasons == ["Sum 320 >= 250", "Bounced 20 >= 10"]


@pytest.mark.django_db
def test_only_campus_senders_are_alerted_never_the_null_sender():
    for sender in (
        "exact@nthu.edu.tw",
        "sub@cs.nthu.edu.tw",
        "deep@a.b.nthu.edu.tw",
        "outsider@example.com",
        "lookalike@nthu.edu.tw.example.com",
        "prefix@xnthu.edu.tw",
        "nthu.edu.tw",
        "<>",
        "",
    ):
        counter(sender, sent=500)

    senders = {c.sender for c in alerting.over_threshold(YESTERDAY)}

    assert senders == {"exact@nthu.edu.tw", "sub@cs.nthu.edu.tw", "deep@a.b.nthu.edu.tw"}


@pytest.mark.django_db
def test_other_days_counters_do_not_count():
    counter("alice@nthu.edu.tw", day=YESTERDAY - dt.timedelta(days=1), sent=249)
    counter("alice@nthu.edu.tw", day=NOW.date(), sent=249)
    counter("alice@nthu.edu.tw", sent=1)

    assert alerting.over_threshold(YESTERDAY) == []


# Exactly once


@pytest.mark.django_db
def test_the_nightly_task_sends_one_mail_per_sender_and_day(django_capture_on_commit_callbacks):
    counter("alice@cs.nthu.edu.tw", sent=400)
    counter("bob@ee.nthu.edu.tw", bounced=12)
    counter("carol@nthu.edu.tw", sent=10)

    run_nightly(django_capture_on_commit_callbacks)

    assert mailed_to() == ["alice@cs.nthu.edu.tw", "bob@ee.nthu.edu.tw"]
    assert alerted() == {("alice@cs.nthu.edu.tw", YESTERDAY), ("bob@ee.nthu.edu.tw", YESTERDAY)}
    alert = Alert.objects.get(sender="alice@cs.nthu.edu.tw")
    assert (alert.total, alert.bounced, alert.attempts, alert.sent_at) == (400, 0, 1, NOW)


@pytest.mark.django_db
def test_a_rerun_sends_nothing(django_capture_on_commit_callbacks):
    counter("alice@cs.nthu.edu.tw", sent=400)
    run_nightly(django_capture_on_commit_callbacks)
    mail.outbox.clear()

    run_nightly(django_capture_on_commit_callbacks)
    call_command("send_alerts", verbosity=0)
    call_command("send_alerts", f"--date={YESTERDAY}", verbosity=0)

    assert mail.outbox == []
    assert Alert.objects.get().attempts == 1


@pytest.mark.django_db
def test_more_mail_after_the_alert_does_not_alert_again(django_capture_on_commit_callbacks):
    counter("alice@cs.nthu.edu.tw", sent=400)
    run_nightly(django_capture_on_commit_callbacks)
    DailyCounter.objects.filter(sender="alice@cs.nthu.edu.tw").update(bounced=50)
    mail.outbox.clear()

    run_nightly(django_capture_on_commit_callbacks)

    assert mail.outbox == []


@pytest.mark.django_db
def test_a_gap_of_three_days_is_alerted_once_for_each_day(django_capture_on_commit_callbacks):
    gap = [YESTERDAY - dt.timedelta(days=n) for n in (2, 1, 0)]
    for day in gap:
        counter("alice@cs.nthu.edu.tw", day=day, sent=300)

    run_nightly(django_capture_on_commit_callbacks)
    run_nightly(django_capture_on_commit_callbacks)

    assert alerted() == {("alice@cs.nthu.edu.tw", day) for day in gap}
    assert len(mail.outbox) == 3
    assert sorted(m.subject[-10:] for m in mail.outbox) == [d.isoformat() for d in gap]


@pytest.mark.django_db
def test_days_before_the_catch_up_window_are_not_alerted(settings):
    settings.SMTPLOG_ALERT_CATCHUP_DAYS = 3
    counter("alice@cs.nthu.edu.tw", day=YESTERDAY - dt.timedelta(days=2), sent=300)
    counter("alice@cs.nthu.edu.tw", day=YESTERDAY - dt.timedelta(days=3), sent=300)

    call_command("send_alerts", verbosity=0)

    assert alerted() == {("alice@cs.nthu.edu.tw", YESTERDAY - dt.timedelta(days=2))}


@pytest.mark.django_db
def test_the_catch_up_window_stops_before_the_day_the_retention_cutoff_falls_in(settings):
    settings.SMTPLOG_RETENTION_DAYS = 5
    settings.SMTPLOG_ALERT_CATCHUP_DAYS = 5

    days = alerting.catch_up_days()

    # Cutoff: 2026-11-15 10:00, so the 15th is partly purged and the 16th is the first day.
    assert days == [dt.date(2026, 11, 16), dt.date(2026, 11, 17), dt.date(2026, 11, 18), YESTERDAY]


@pytest.mark.django_db
def test_the_alert_row_exists_before_the_mail_is_sent():
    counter("alice@cs.nthu.edu.tw", sent=400)
    seen = []

    def send(self, fail_silently=False):
        seen.append(list(Alert.objects.values_list("sender", "state")))
        return 1

    with mock.patch("django.core.mail.EmailMessage.send", send):
        alerting.run_alerts([YESTERDAY])

    assert seen == [[("alice@cs.nthu.edu.tw", Alert.State.SENDING)]]
    assert alerted() == {("alice@cs.nthu.edu.tw", YESTERDAY)}


@pytest.mark.django_db
def test_a_second_claim_of_the_same_alert_fails():
    counter("alice@cs.nthu.edu.tw", sent=400)
    [alert_id] = alerting.prepare_alerts([YESTERDAY])

    assert alerting.claim(alert_id) is True
    assert alerting.claim(alert_id) is False
    assert alerting.deliver(alert_id) == "not claimed"
    assert mail.outbox == []


@pytest.mark.django_db
def test_the_claim_of_a_killed_worker_is_taken_over_after_the_lease():
    counter("alice@cs.nthu.edu.tw", sent=400)
    [alert_id] = alerting.prepare_alerts([YESTERDAY])
    alerting.claim(alert_id, now=NOW - delivery.CLAIM_LEASE - dt.timedelta(seconds=1))

    assert alerting.prepare_alerts([YESTERDAY]) == [alert_id]
    assert alerting.deliver(alert_id) == "sent"
    assert Alert.objects.get().attempts == 2


@pytest.mark.django_db
def test_a_transient_smtp_error_is_retried_until_the_mail_goes(monkeypatch):
    # Eagerly, a retry runs at once, in place, as long as errors are not propagated.
    monkeypatch.setitem(send_alert.app.conf, "task_eager_propagates", False)
    counter("alice@cs.nthu.edu.tw", sent=400)
    [alert_id] = alerting.prepare_alerts([YESTERDAY])
    real_send = mail.EmailMessage.send
    failures = [smtplib.SMTPServerDisconnected("gone"), ConnectionRefusedError(111, "refused")]

    def flaky_send(self, fail_silently=False):
        if failures:
            raise failures.pop(0)
        return real_send(self, fail_silently)

    with mock.patch("django.core.mail.EmailMessage.send", flaky_send):
        result = send_alert.apply(args=[alert_id])

    assert result.get() == "sent"
    assert mailed_to() == ["alice@cs.nthu.edu.tw"]
    alert = Alert.objects.get()
    assert (alert.state, alert.attempts, alert.last_error) == (Alert.State.SENT, 3, "")


@pytest.mark.django_db
def test_a_send_that_keeps_failing_stays_pending_for_the_next_night():
    counter("alice@cs.nthu.edu.tw", sent=400)
    with mock.patch(
        "django.core.mail.EmailMessage.send", side_effect=smtplib.SMTPConnectError(421, "try later")
    ):
        outcomes = alerting.run_alerts([YESTERDAY])

    alert = Alert.objects.get()
    assert outcomes == {"failed, will retry": 1}
    assert (alert.state, alert.claimed_at) == (Alert.State.PENDING, None)
    assert alert.last_error == "SMTPConnectError: 421"  # the kind and the code, no server text

    alerting.run_alerts([YESTERDAY])

    assert mailed_to() == ["alice@cs.nthu.edu.tw"]
    assert Alert.objects.get().state == Alert.State.SENT


@pytest.mark.django_db
def test_a_recipient_refused_for_good_is_not_retried():
    counter("gone@cs.nthu.edu.tw", sent=400)
    refused = smtplib.SMTPRecipientsRefused({"gone@cs.nthu.edu.tw": (550, b"No such user")})
    with mock.patch("django.core.mail.EmailMessage.send", side_effect=refused):
        outcomes = alerting.run_alerts([YESTERDAY])

    assert outcomes == {"refused": 1}
    assert Alert.objects.get().state == Alert.State.FAILED
    assert alerting.prepare_alerts([YESTERDAY]) == []


@pytest.mark.django_db
def test_the_task_does_not_retry_a_permanent_data_error(monkeypatch):
    # It used to: any SMTPException was retried, 50 times, a 554 after DATA included.
    monkeypatch.setitem(send_alert.app.conf, "task_eager_propagates", False)
    counter("alice@cs.nthu.edu.tw", sent=400)
    [alert_id] = alerting.prepare_alerts([YESTERDAY])
    rejected = smtplib.SMTPDataError(554, b"5.7.1 <alice@cs.nthu.edu.tw>: message rejected")
    with mock.patch("django.core.mail.EmailMessage.send", side_effect=rejected) as send:
        result = send_alert.apply(args=[alert_id])

    assert result.get() == "refused" and send.call_count == 1
    alert = Alert.objects.get()
    assert (alert.state, alert.attempts) == (Alert.State.FAILED, 1)
    assert alert.last_error == "SMTPDataError: 554 5.7.1"
    assert alerting.prepare_alerts([YESTERDAY]) == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_alert_runs_at_once_send_one_mail_per_sender_and_day():
    require_postgres()
    senders = [f"user{n:02}@cs.nthu.edu.tw" for n in range(20)]
    for n, sender in enumerate(senders):
        counter(sender, sent=300, bounced=n % 15)
    start = threading.Barrier(2)
    errors = []

    def nightly_pass() -> None:
        try:
            start.wait(timeout=10)
            alerting.run_alerts(alerting.catch_up_days())
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=nightly_pass) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    assert errors == []
    assert mailed_to() == senders
    assert Alert.objects.filter(state=Alert.State.SENT, attempts=1).count() == 20


# The mail


@pytest.mark.django_db
def test_the_alert_mail_has_both_languages_and_the_figures_of_that_day(assert_email_contains):
    heavy_day(
        "alice@cs.nthu.edu.tw", sent=240, bounced=12, client_ip="45.33.2.1", sasl_username="alice"
    )
    heavy_day(
        "alice@cs.nthu.edu.tw",
        day=YESTERDAY - dt.timedelta(days=1),
        sent=7,
        client_ip="198.51.100.7",
    )

    alerting.run_alerts([YESTERDAY])

    [message] = mail.outbox
    assert message.to == ["alice@cs.nthu.edu.tw"]
    assert message.subject == (
        "您的信箱於 2026-11-19 寄信量異常 / Unusual amount of mail from your address on 2026-11-19"
    )
    assert message.extra_headers["Auto-Submitted"] == "auto-generated"
    assert message.extra_headers["Reply-To"] == "opr@net.nthu.edu.tw"
    for fragment in (
        "當日總數（Sum）252 筆，已達通知門檻 250 筆。",  # Chinese
        "退信數（Bounced）12 筆，已達通知門檻 10 筆。",
        "Sum 252 reached the alert threshold of 250.",  # English
        "Bounced 12 reached the alert threshold of 10.",
        "example.com",  # top recipient domains
        "example.org",
        "Recipient address rejected: User unknown",  # commonest bounce reply
        "45.33.2.1",  # client IP
        "alice",  # SASL login
        "http://127.0.0.1:8000/",  # the form
        "opr@net.nthu.edu.tw",  # the contact
    ):
        assert_email_contains(fragment)
    assert "198.51.100.7" not in message.body  # another day's client
    assert "  Sent          240  recipients delivered to" in message.body
    assert "  Bounced        12  無法投遞而退信的收件者" in message.body
    assert "     12  550 5.1.1 <…>: Recipient address rejected: User unknown" in message.body


@pytest.mark.django_db
def test_the_alert_context_is_built_before_rendering():
    heavy_day(
        "alice@cs.nthu.edu.tw", sent=3, bounced=2, client_ip="45.33.2.1", sasl_username="alice"
    )

    context = alerting.alert_context("alice@cs.nthu.edu.tw", YESTERDAY)

    assert context["counts"]["total"] == 5
    assert context["top_domains"] == [("example.com", 3), ("example.org", 2)]
    assert context["bounce_replies"] == [
        ("550 5.1.1 <…>: Recipient address rejected: User unknown", 2)
    ]
    assert context["client_ips"] == [("45.33.2.1", 5)]
    assert context["sasl_logins"] == [("alice", 5)]
    assert all(
        isinstance(value, list)
        for key, value in context.items()
        if key in ("top_domains", "bounce_replies", "client_ips", "sasl_logins")
    )


GMAIL_NO_SUCH_USER = (
    "host gmail-smtp-in.l.google.com[142.250.157.{ip}] said: 550-5.1.1 The email account "
    "that you tried to reach does not exist. Please try 550-5.1.1 double-checking the "
    "recipient's email address for typos or 550-5.1.1 unnecessary spaces. For more "
    "information, go to 550 5.1.1  https://support.google.com/mail/?p=NoSuchUser "
    "{id}si{n}pgm.{n} - gsmtp (in reply to RCPT TO command)"
)
SPAM_BLOCK = (
    "host outlook-com.olc.protection.outlook.com[52.101.68.{ip}] said: 550 5.7.1 "
    "Unfortunately, messages from [140.114.64.{ip}] weren't sent. Please contact your "
    "Internet service provider since part of their network is on our block list (S3150). "
    "You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors. "
    "[SG2PEPF000{n}.apcprd02.prod.outlook.com] (in reply to MAIL FROM command)"
)


@pytest.mark.django_db
def test_bounce_replies_are_grouped_by_what_they_say_and_shown_whole():
    noon = dt.datetime.combine(YESTERDAY, dt.time(12), tzinfo=TZ)
    replies = [
        GMAIL_NO_SUCH_USER.format(ip=26 + n, id=f"c{34 + n}", n=2363086 + n) for n in range(3)
    ]
    replies += [SPAM_BLOCK.format(ip=n, n=10000 + 7 * n) for n in range(5)]
    add_events(
        [
            make_event(
                "alice@cs.nthu.edu.tw",
                Status.BOUNCED,
                noon + dt.timedelta(minutes=n),
                recipient=f"user{n}@example.com",
                response=reply,
            )
            for n, reply in enumerate(replies)
        ]
    )

    replies = alerting.alert_context("alice@cs.nthu.edu.tw", YESTERDAY)["bounce_replies"]

    assert [n for _reply, n in replies] == [5, 3]
    spam, gmail = (reply for reply, _n in replies)
    assert spam.startswith("host outlook-com.olc.protection.outlook.com[<…>] said: 550 5.7.1 ")
    assert "messages from [<…>] weren't sent" in spam and spam.endswith(
        "(in reply to MAIL FROM command)"
    )
    assert "http://mail.live.com/…" in spam
    assert "550-5.1.1 The email account that you tried to reach does not exist." in gmail
    assert gmail.endswith("https://support.google.com/… <…> - gsmtp (in reply to RCPT TO command)")
    for reply in (spam, gmail):  # nothing of one recipient or one attempt is left
        assert "@" not in reply and not re.search(r"\d+\.\d+\.\d+\.\d+|\d{5}", reply)


@pytest.mark.parametrize(
    "reply, pattern",
    [
        ("550 5.1.1 <bob@example.com>: User unknown", "550 5.1.1 <…>: User unknown"),
        (
            "554 5.7.1 Client host [2001:db8::25] blocked using zen.spamhaus.org; "
            "https://www.spamhaus.org/query/ip/2001:db8::25",
            "554 5.7.1 Client host [<…>] blocked using zen.spamhaus.org; https://www.spamhaus.org/…",
        ),
        (
            "452-4.2.2 The recipient's inbox is out of storage space.  452 4.2.2 ok",
            "452-4.2.2 The recipient's inbox is out of storage space. 452 4.2.2 ok",
        ),
        ("250 2.0.0 OK 1700000000 queued as 4AA091855DA0", "250 2.0.0 OK <…> queued as <…>"),
    ],
)
def test_a_reply_pattern_masks_addresses_ips_ids_and_urls_and_keeps_codes_and_words(reply, pattern):
    assert alerting.reply_pattern(reply) == pattern


# The command


@pytest.mark.django_db
def test_send_alerts_dry_run_shows_who_and_why_and_sends_nothing(capsys):
    counter("alice@cs.nthu.edu.tw", sent=400)
    counter("bob@ee.nthu.edu.tw", bounced=10)
    counter("outsider@example.com", sent=900)

    call_command("send_alerts", "--dry-run")

    out = capsys.readouterr().out
    assert "alice@cs.nthu.edu.tw  Sum 400 >= 250  [to alert]" in out
    assert "bob@ee.nthu.edu.tw  Bounced 10 >= 10  [to alert]" in out
    assert "outsider" not in out
    assert "Dry run: nothing sent, nothing recorded." in out
    assert mail.outbox == []
    assert not Alert.objects.exists()


@pytest.mark.django_db
def test_send_alerts_dry_run_says_who_was_alerted_already(capsys):
    counter("alice@cs.nthu.edu.tw", sent=400)
    call_command("send_alerts", verbosity=0)

    call_command("send_alerts", "--dry-run", "--date=2026-11-19")

    assert "alice@cs.nthu.edu.tw  Sum 400 >= 250  [alerted 2026-11-20 10:00]" in (
        capsys.readouterr().out
    )


@pytest.mark.django_db
def test_send_alerts_with_a_date_alerts_that_day_only(capsys):
    earlier = YESTERDAY - dt.timedelta(days=3)
    counter("alice@cs.nthu.edu.tw", day=earlier, sent=400)
    counter("alice@cs.nthu.edu.tw", sent=400)

    call_command("send_alerts", f"--date={earlier}")

    assert alerted() == {("alice@cs.nthu.edu.tw", earlier)}
    assert "Alerts: 1 sent." in capsys.readouterr().out


@pytest.mark.django_db
@pytest.mark.parametrize("day", ["2026-11-20", "2026-11-21", "2026-10-19", "19/11/2026"])
def test_send_alerts_refuses_a_day_not_over_or_outside_retention(day):
    with pytest.raises(CommandError):
        call_command("send_alerts", f"--date={day}")
