"""The event store: message identity, counters in step with events, normalized senders."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from django.db import IntegrityError, transaction

from smtplog.models import (
    COLUMNS,
    COUNTER_FIELDS,
    NULL_SENDER,
    DailyCounter,
    Event,
    Message,
    Status,
    normalize_address,
)
from smtplog.store import (
    add_events,
    attribute_events,
    delete_events,
    rebuild_counters,
    recount,
    stored_counts,
)
from tests.conftest import NOW, TZ, make_event

pytestmark = pytest.mark.django_db

ALICE = "alice@cs.nthu.edu.tw"
BOB = "bob@ee.nthu.edu.tw"
YESTERDAY = NOW - dt.timedelta(days=1)


class TestMessageIdentity:
    def test_a_queue_id_seen_again_after_removal_makes_a_second_message(self):
        first = Message.objects.create(
            relay="smtp1",
            queue_id="4AA091855DA0",
            first_seen=YESTERDAY,
            sender=ALICE,
            removed_at=YESTERDAY + dt.timedelta(seconds=3),
        )
        # Postfix recycles queue IDs: the same ID on the same relay, a later life.
        second = Message.objects.create(
            relay="smtp1", queue_id="4AA091855DA0", first_seen=NOW, sender=BOB
        )

        assert first.pk != second.pk
        assert list(
            Message.objects.filter(queue_id="4AA091855DA0")
            .order_by("first_seen")
            .values_list("sender", flat=True)
        ) == [ALICE, BOB]

    def test_the_same_queue_id_on_another_relay_is_another_message(self):
        Message.objects.create(relay="smtp1", queue_id="4AA091855DA0", first_seen=NOW)
        Message.objects.create(relay="smtp2", queue_id="4AA091855DA0", first_seen=NOW)
        assert Message.objects.count() == 2

    def test_the_same_relay_queue_id_and_first_seen_twice_is_refused(self):
        Message.objects.create(relay="smtp1", queue_id="4AA091855DA0", first_seen=NOW)
        with pytest.raises(IntegrityError), transaction.atomic():
            Message.objects.create(relay="smtp1", queue_id="4AA091855DA0", first_seen=NOW)
        assert Message.objects.count() == 1


class TestNormalizedSenders:
    @pytest.mark.parametrize(
        ("raw", "stored"),
        [
            ("<Alice@CS.NTHU.edu.tw>", "alice@cs.nthu.edu.tw"),
            ("  < Alice@CS.NTHU.edu.tw >  ", "alice@cs.nthu.edu.tw"),
            ("Alice@CS.NTHU.edu.tw", "alice@cs.nthu.edu.tw"),
            ("<>", NULL_SENDER),
            ("", NULL_SENDER),
            ("< >", NULL_SENDER),
        ],
    )
    def test_an_address_is_normalized_as_stored(self, raw, stored):
        assert normalize_address(raw) == stored

    def test_a_sender_is_found_whatever_case_and_brackets_are_asked_for(self):
        add_events(
            [make_event(normalize_address("<Alice@CS.NTHU.edu.tw>"), Status.SENT, YESTERDAY)]
        )

        assert Event.objects.get().sender == ALICE
        assert Event.objects.for_sender("<ALICE@cs.nthu.edu.tw>").count() == 1
        assert DailyCounter.objects.for_sender("Alice@CS.nthu.edu.tw").get().sent == 1

    def test_the_null_sender_and_unknown_senders_are_never_counted(self):
        add_events(
            [
                make_event(NULL_SENDER, Status.BOUNCED, YESTERDAY),
                make_event("", Status.AUTH_BLK, YESTERDAY),
            ]
        )
        assert Event.objects.count() == 2
        assert not DailyCounter.objects.exists()


def random_event(rng: random.Random) -> Event:
    sender = rng.choice([ALICE, BOB, "carol@nthu.edu.tw", "", NULL_SENDER])
    # Around local midnight, so some events land on either side of a day boundary.
    time = YESTERDAY.replace(hour=23, minute=0) + dt.timedelta(minutes=rng.randrange(0, 150))
    return make_event(sender, rng.choice(Status.values), time)


class TestCountersInStep:
    def test_counters_equal_a_recount_after_inserts(self, mail_events):
        assert stored_counts() == recount()
        day = YESTERDAY.date()
        alice = DailyCounter.objects.get(sender=ALICE, day=day)
        assert (alice.auth_rcv, alice.sent, alice.deferred, alice.bounced) == (1, 1, 1, 1)
        assert DailyCounter.objects.get(sender=BOB, day=day).sent == 1

    def test_counters_equal_a_recount_after_deletes(self, mail_events):
        assert delete_events(Event.objects.filter(status=Status.SENT)) == 2
        assert stored_counts() == recount()
        assert DailyCounter.objects.get(sender=ALICE).sent == 0
        assert DailyCounter.objects.get(sender=BOB).total == 0

    def test_attributing_events_counts_them_for_their_sender(self):
        add_events(
            [
                make_event("", Status.AUTH_BLK, YESTERDAY, sasl_username="alice"),
                make_event("", Status.AUTH_BLK, YESTERDAY, sasl_username="alice"),
                make_event("", Status.AUTH_BLK, YESTERDAY, sasl_username="mallory"),
            ]
        )
        assert not DailyCounter.objects.exists()

        assert attribute_events(Event.objects.filter(sasl_username="alice"), ALICE) == 2
        assert attribute_events(Event.objects.filter(sasl_username="alice"), ALICE) == 0
        assert stored_counts() == recount()
        assert DailyCounter.objects.get(sender=ALICE).auth_blk == 2

    def test_rebuilding_a_day_repairs_damaged_counters(self, mail_events):
        day = YESTERDAY.date()
        DailyCounter.objects.filter(sender=ALICE).update(sent=40, expired=3)
        DailyCounter.objects.filter(sender=BOB).delete()
        DailyCounter.objects.create(sender="ghost@nthu.edu.tw", day=day, sent=5)

        assert rebuild_counters(day) == 2
        assert stored_counts() == recount()
        assert not DailyCounter.objects.filter(sender="ghost@nthu.edu.tw").exists()

    def test_rebuilding_one_day_leaves_other_days_alone(self, mail_events):
        other = make_event(ALICE, Status.SENT, YESTERDAY - dt.timedelta(days=3))
        add_events([other])
        DailyCounter.objects.filter(day=other.day).update(sent=9)

        rebuild_counters(YESTERDAY.date())
        assert DailyCounter.objects.get(day=other.day).sent == 9

    def test_counters_stay_equal_to_a_recount_through_mixed_inserts_and_deletes(self):
        rng = random.Random(20261120)  # fixed: the same sequence on every run
        for _ in range(30):
            action = rng.random()
            if action < 0.5:
                add_events([random_event(rng) for _ in range(rng.randrange(1, 8))])
            elif action < 0.8:
                ids = list(Event.objects.values_list("id", flat=True))
                delete_events(Event.objects.filter(id__in=rng.sample(ids, min(len(ids), 3))))
            else:
                attribute_events(Event.objects.all(), rng.choice([ALICE, BOB]))
            assert stored_counts() == recount()
        assert Event.objects.exists()


def test_the_total_is_the_sum_of_the_six_columns_in_the_database():
    counter = DailyCounter.objects.create(
        sender=ALICE,
        day=YESTERDAY.date(),
        auth_blk=1,
        auth_rcv=2,
        bounced=3,
        deferred=4,
        expired=5,
        sent=6,
    )
    counter.refresh_from_db()
    assert counter.total == 21
    # Computed by the database itself (a generated column), also after a raw UPDATE.
    DailyCounter.objects.filter(pk=counter.pk).update(sent=100)
    counter.refresh_from_db()
    assert counter.total == 115
    assert DailyCounter.objects.filter(total=115).count() == 1


def test_the_report_columns_are_the_six_counted_statuses():
    assert sorted(COUNTER_FIELDS) == sorted(Status.values)


def test_the_counter_columns_are_one_list_sum_first_that_the_model_follows():
    assert [c.label for c in COLUMNS] == [
        "Sum",
        "Auth_blk",
        "Auth_rcv",
        "Bounced",
        "Deferred",
        "Expired",
        "Sent",
    ]
    assert [c.field for c in COLUMNS] == ["total", *COUNTER_FIELDS]
    for column in COLUMNS:
        assert DailyCounter._meta.get_field(column.field).verbose_name == column.label


def test_events_of_a_sender_are_selected_by_local_day():
    before_midnight = dt.datetime(2026, 11, 19, 23, 30, tzinfo=TZ)  # 15:30 UTC, the 19th
    after_midnight = dt.datetime(2026, 11, 20, 0, 30, tzinfo=TZ)  # 16:30 UTC, still the 19th
    add_events(
        [
            make_event(ALICE, Status.SENT, before_midnight, recipient="a@example.com"),
            make_event(ALICE, Status.SENT, after_midnight, recipient="b@example.com"),
            make_event(BOB, Status.SENT, after_midnight, recipient="c@example.com"),
        ]
    )
    nov_19, nov_20 = dt.date(2026, 11, 19), dt.date(2026, 11, 20)

    def recipients(first, last):
        return sorted(
            Event.objects.for_sender("<Alice@CS.NTHU.edu.tw>")
            .between(first, last)
            .values_list("recipient", flat=True)
        )

    assert recipients(nov_19, nov_19) == ["a@example.com"]
    assert recipients(nov_20, nov_20) == ["b@example.com"]
    assert recipients(nov_19, nov_20) == ["a@example.com", "b@example.com"]
    assert recipients(dt.date(2026, 11, 21), dt.date(2026, 12, 31)) == []
