"""The nightly purge: its edges for every kind of row, its batches, and counters kept true."""

from __future__ import annotations

import datetime as dt

import pytest
from captcha.models import CaptchaStore
from django.core.management import call_command

from alerts.models import Alert
from queries.models import Query
from smtplog import retention, store
from smtplog.models import DailyCounter, Event, LoginAlias, Message, Status
from smtplog.tasks import purge_expired_data
from tests.conftest import NOW, TZ, make_event
from tracing.models import Look

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]

KEPT = NOW - dt.timedelta(days=30, hours=23)  # 2026-10-20 11:00, the cutoff day
GONE = NOW - dt.timedelta(days=31, hours=1)  # 2026-10-20 09:00, the same day
CUTOFF_DAY = dt.date(2026, 10, 20)


def make_message(time: dt.datetime, queue_id: str, **fields) -> Message:
    return Message.objects.create(
        relay="smtp1", queue_id=queue_id, first_seen=time, sender="alice@cs.nthu.edu.tw", **fields
    )


def make_query(time: dt.datetime) -> Query:
    return Query.objects.create(
        address="alice@cs.nthu.edu.tw",
        begin=time.date(),
        end=time.date(),
        language="en",
        created=time,
    )


def make_alert(time: dt.datetime) -> Alert:
    day = time.astimezone(TZ).date() - dt.timedelta(days=1)
    return Alert.objects.create(
        sender=f"alice{time:%H}@cs.nthu.edu.tw",
        day=day,
        total=300,
        bounced=0,
        state=Alert.State.SENT,
        created=time,
        sent_at=time,
    )


def make_alias(time: dt.datetime) -> LoginAlias:
    return LoginAlias.objects.create(
        login=f"alice{time:%H}", sender="alice@cs.nthu.edu.tw", last_seen=time
    )


def make_look(time: dt.datetime) -> Look:
    return Look.objects.create(
        time=time, username="opr", kind=Look.Kind.SEARCH, criteria={"sender": "alice@"}, results=1
    )


def make_counted_event(time: dt.datetime) -> Event:
    [event] = store.add_events([make_event("alice@cs.nthu.edu.tw", Status.SENT, time)])
    return event


# kind -> (make a row at a time, what tells the rows apart)
KINDS = {
    "event": (make_counted_event, lambda: Event.objects.values_list("time", flat=True)),
    "message": (
        lambda t: make_message(t, f"Q{t:%H}"),
        lambda: Message.objects.values_list("first_seen", flat=True),
    ),
    "query": (make_query, lambda: Query.objects.values_list("created", flat=True)),
    "alert": (make_alert, lambda: Alert.objects.values_list("created", flat=True)),
    "login alias": (make_alias, lambda: LoginAlias.objects.values_list("last_seen", flat=True)),
    "trace audit": (make_look, lambda: Look.objects.values_list("time", flat=True)),
}


@pytest.mark.parametrize("kind", KINDS)
def test_a_row_30_days_23_hours_old_is_kept_and_one_31_days_1_hour_old_is_purged(kind):
    make, remaining = KINDS[kind]
    make(KEPT)
    make(GONE)

    retention.purge()

    assert list(remaining()) == [KEPT]


def test_the_cutoff_days_counter_stays_and_loses_only_its_purged_events():
    make_counted_event(KEPT)
    make_counted_event(GONE)
    store.add_events([make_event("alice@cs.nthu.edu.tw", Status.BOUNCED, GONE)])

    retention.purge()

    counter = DailyCounter.objects.get()
    assert (counter.day, counter.sent, counter.bounced, counter.total) == (CUTOFF_DAY, 1, 0, 1)


def test_the_counters_of_days_before_the_cutoff_day_go_with_their_events():
    day_before = dt.datetime(2026, 10, 19, 23, 59, tzinfo=TZ)
    make_counted_event(day_before)

    retention.purge()

    assert not Event.objects.exists()
    assert not DailyCounter.objects.filter(day__lt=CUTOFF_DAY).exists()


def test_expired_captchas_are_purged_and_live_ones_kept():
    CaptchaStore.objects.create(
        challenge="OLD", response="old", expiration=NOW - dt.timedelta(minutes=1)
    )
    CaptchaStore.objects.create(
        challenge="NEW", response="new", expiration=NOW + dt.timedelta(minutes=1)
    )

    retention.purge()

    assert list(CaptchaStore.objects.values_list("challenge", flat=True)) == ["NEW"]


def test_a_kept_event_of_a_purged_message_loses_only_its_link():
    # A message whose removal was never logged: its last known activity is first_seen.
    old = make_message(GONE, "Q1")
    [event] = store.add_events(
        [make_event("alice@cs.nthu.edu.tw", Status.DEFERRED, KEPT, message=old)]
    )

    retention.purge()

    assert not Message.objects.exists()
    event.refresh_from_db()
    assert event.message is None


def test_a_message_removed_inside_the_window_is_kept_with_its_first_line_outside():
    make_message(GONE, "Q1", removed_at=KEPT)

    retention.purge()

    assert Message.objects.count() == 1


def test_counters_still_equal_a_recount_after_a_purge_in_small_batches():
    times = [NOW - dt.timedelta(days=31, hours=h) for h in range(-30, 30, 3)]
    store.add_events(
        [
            make_event(
                f"user{n % 3}@cs.nthu.edu.tw",
                (Status.SENT, Status.BOUNCED, Status.DEFERRED)[n % 3],
                t,
            )
            for n, t in enumerate(times)
        ]
    )

    deleted = retention.purge(batch_size=2)

    assert store.stored_counts() == store.recount()
    assert deleted["events of whole days"] + deleted["events of the cutoff day"] == (
        len([t for t in times if t < NOW - dt.timedelta(days=31)])
    )
    assert Event.objects.filter(time__lt=NOW - dt.timedelta(days=31)).count() == 0


def test_rows_are_deleted_in_batches_of_at_most_the_batch_size():
    store.add_events(
        [
            make_event("alice@cs.nthu.edu.tw", Status.SENT, GONE - dt.timedelta(days=2, seconds=n))
            for n in range(10)
        ]
    )
    batches = []

    def delete(queryset) -> int:
        batches.append(queryset.count())
        return queryset.delete()[0]

    deleted = retention.delete_in_batches(Event.objects.all(), batch_size=3, delete=delete)

    assert (deleted, batches) == (10, [3, 3, 3, 1])
    assert retention.BATCH_SIZE <= 10_000


def test_a_dry_run_counts_and_deletes_nothing():
    make_counted_event(GONE)
    make_query(GONE)

    counts = retention.purge(dry_run=True)

    assert counts["events of the cutoff day"] == 1
    assert counts["queries"] == 1
    assert Event.objects.count() == Query.objects.count() == 1


def test_the_command_reports_what_it_deleted(capsys):
    make_counted_event(GONE)
    make_query(KEPT)

    call_command("purge_expired")

    out = capsys.readouterr().out
    assert "cutoff 2026-10-20 10:00 CST" in out
    assert "events of the cutoff day: 1" in out
    assert "deleted 1 rows" in out
    assert Query.objects.count() == 1


def test_the_nightly_task_purges():
    make_query(GONE)

    assert "queries: 1" in purge_expired_data.delay().get()
    assert not Query.objects.exists()
