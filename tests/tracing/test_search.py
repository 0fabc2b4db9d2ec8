"""The trace search on ingested logs: each field, prefixes, queue-ID reuse, the chains."""

from __future__ import annotations

import datetime as dt

import pytest

from smtplog.ingest.run import ingest
from smtplog.models import Message, Status
from tests.conftest import NOW
from tests.ingest.conftest import write_log
from tests.ingest.test_real_logs import DISCARDED, FORWARDED
from tests.ingest.test_real_logs import MTIME as REAL_LOGS_MTIME
from tracing.search import Chain, Criteria, LoneEvent, chain_of, nearby_refusals, path, search

DAY = Criteria(since=NOW - dt.timedelta(hours=24), until=NOW)


def find(**fields) -> list:
    results, _more = search(Criteria(**{"since": DAY.since, "until": DAY.until, **fields}))
    return results


def summary(results) -> list[tuple]:
    """Each result as (kind, relay, queue IDs, sender)."""
    return [(r.kind, r.relay, r.queue_ids, r.sender) for r in results]


ALICE = ("message", "smtp1", ["4AA091855DA0", "776E41855DB2"], "alice@cs.nthu.edu.tw")
BOB = ("message", "smtp2", ["4AA091855DA0"], "bob@ee.nthu.edu.tw")
CAROL = ("message", "smtp1", ["4AA091855DA0"], "carol@phys.nthu.edu.tw")
DAN = ("message", "smtp3", ["1234ABCDE"], "dan@cs.nthu.edu.tw")


class TestEachField:
    def test_a_whole_sender_finds_the_message_once_with_both_queue_ids(self, morning):
        # alice's events and both hops match: one result, her message.
        results = find(sender="alice@cs.nthu.edu.tw")
        assert summary(r for r in results if r.kind == "message") == [ALICE]

    def test_a_sender_also_finds_her_refusals_tied_to_no_message(self, morning):
        results = find(sender="alice@cs.nthu.edu.tw")
        lone = [r for r in results if isinstance(r, LoneEvent)]
        # Two rejects, and a SASL failure under her bare login (known to be hers).
        assert [(r.event.recipient, r.is_sasl_failure) for r in lone] == [
            ("far@example.net", False),
            ("", True),
            ("spam@example.net", False),
        ]
        assert [r.recipients()[0].status for r in lone if r.recipients()] == ["refused"] * 2

    def test_a_recipient_finds_the_message_it_was_in(self, morning):
        assert summary(find(recipient="carol@example.org")) == [ALICE]

    def test_a_queue_id_finds_every_life_of_it_on_every_relay(self, morning):
        # Newest first: carol's life on smtp1, bob's on smtp2, alice's first hop on smtp1.
        assert summary(find(queue_id="4AA091855DA0")) == [CAROL, BOB, ALICE]

    def test_the_requeued_queue_id_finds_the_whole_message(self, morning):
        assert summary(find(queue_id="776E41855DB2")) == [ALICE]

    def test_a_queue_id_and_a_relay_find_that_relay_only(self, morning):
        assert summary(find(queue_id="4AA091855DA0", relay="smtp2")) == [BOB]

    def test_a_message_id_finds_the_message_once(self, morning):
        # Both hops carry the Message-ID (the filter keeps it): one result.
        assert summary(find(message_id="ca10035e@cs.nthu.edu.tw")) == [ALICE]
        assert summary(find(message_id="bob-1@ee.nthu.edu.tw")) == [BOB]

    def test_a_message_id_and_the_requeued_queue_id_find_the_message(self, morning):
        found = find(message_id="ca10035e@cs.nthu.edu.tw", queue_id="776E41855DB2")
        assert summary(found) == [ALICE]
        assert find(message_id="ca10035e@cs.nthu.edu.tw", queue_id="9A4843E2D2") == []

    def test_a_client_ip_finds_its_messages_and_its_refusals(self, morning):
        # Newest activity first: alice's bounce after midnight, then the refusals.
        results = find(client_ip="140.114.63.228")
        assert [r.kind for r in results] == ["message", "event", "event", "event"]
        assert summary(results[:1]) == [ALICE]
        assert [r.is_sasl_failure for r in results[1:]] == [False, True, False]
        assert summary(find(client_ip="140.114.24.10")) == [BOB]

    def test_a_sasl_login_finds_its_messages_and_failures(self, morning):
        results = find(sasl_username="ALICE")  # relays log logins in any case
        assert [r.kind for r in results] == ["message", "event"]
        assert summary(results[:1]) == [ALICE]

    def test_a_status_narrows_the_search(self, morning):
        assert summary(find(status=Status.BOUNCED)) == [ALICE]
        assert summary(find(sender="bob@ee.nthu.edu.tw", status=Status.BOUNCED)) == []
        assert summary(find(queue_id="4AA091855DA0", status=Status.SENT)) == [BOB]

    def test_fields_combine(self, morning):
        assert summary(find(sender="alice@", recipient="bob@example.com")) == [ALICE]
        assert summary(find(sender="alice@", recipient="dave@example.net")) == []

    def test_the_range_leaves_out_what_happened_outside_it(self, morning):
        before_carol = NOW - dt.timedelta(hours=3)
        assert summary(find(queue_id="4AA091855DA0", until=before_carol)) == [BOB, ALICE]
        assert find(sender="bob@ee.nthu.edu.tw", since=NOW - dt.timedelta(hours=2)) == []


class TestPrefixes:
    @pytest.mark.parametrize("prefix", ["alice@", "alice@cs.", "ali*", "ALICE@CS.nthu*"])
    def test_a_sender_matches_by_its_beginning(self, morning, prefix):
        assert summary(r for r in find(sender=prefix) if r.kind == "message") == [ALICE]

    def test_a_beginning_matches_every_sender_it_begins(self, morning):
        # Newest activity first: carol's deferral, alice's bounce, bob's, dan's delivery.
        messages = [r for r in find(sender="*") if r.kind == "message"]
        assert summary(messages) == [CAROL, ALICE, BOB, DAN]
        assert [m.last_time.astimezone(NOW.tzinfo).strftime("%d %H:%M") for m in messages] == [
            "20 08:00",
            "20 00:20",
            "19 12:00",
            "19 11:00",
        ]

    def test_without_a_mark_an_address_is_whole(self, morning):
        assert find(sender="alice") == []
        assert find(sender="alice@cs.nthu.edu") == []

    def test_a_recipient_matches_by_its_beginning(self, morning):
        assert summary(find(recipient="carol@")) == [ALICE]
        assert summary(find(recipient="erin@slow.")) == [CAROL]
        assert summary(find(recipient="dave*")) == [BOB]


class TestChains:
    def test_the_filter_link_is_followed_both_ways(self, morning):
        from_first = chain_of(morning["filtered"])
        from_requeued = chain_of(morning["requeued"])
        assert [h.id for h in from_first.hops] == [h.id for h in from_requeued.hops]
        assert from_first.hops == [morning["filtered"], morning["requeued"]]

    def test_a_local_forward_is_followed_both_ways(self, db, tmp_path):
        # Issue 9's lines, ingested: `forwarded as NEWID` links NEWID to the original
        # (Message.origin), as the content filter's hand-off does.
        ingest([str(write_log(tmp_path / "mail.log", FORWARDED, REAL_LOGS_MTIME))])
        original = Message.objects.get(queue_id="4PbMVH1gW1z3tBr")
        forwarded = Message.objects.get(queue_id="4PbMVH1yTpz3tG3")
        assert chain_of(forwarded).hops == chain_of(original).hops == [original, forwarded]
        march = {
            "since": dt.datetime(2023, 3, 12, tzinfo=dt.UTC),
            "until": dt.datetime(2023, 3, 14, tzinfo=dt.UTC),
        }
        [result] = search(Criteria(**march, recipient="user01.test@example.net"))[0]
        assert (result.queue_ids, result.sender) == (
            ["4PbMVH1gW1z3tBr", "4PbMVH1yTpz3tG3"],
            "user02.test@cs.nthu.edu.tw",
        )
        assert [(r.address, r.status) for r in result.recipients()] == [
            ("user01.test@example.net", "sent")
        ]
        [by_id] = search(Criteria(**march, message_id="20230313004010.1@cs.nthu.edu.tw"))[0]
        assert by_id.root == original

    def test_a_content_filter_discard_ends_as_a_bounce_with_the_filters_reply(self, db, tmp_path):
        ingest([str(write_log(tmp_path / "mail.log", DISCARDED, REAL_LOGS_MTIME))])
        chain = chain_of(Message.objects.get(queue_id="4Pc3ZX1jFxz3tBr"))
        [recipient] = chain.recipients()
        assert (recipient.address, recipient.status) == ("user01.test@example.net", "bounced")
        assert "Ok, discarded, id=351462-17 - BANNED: .exe" in recipient.last_reply

    def test_each_recipient_ends_with_its_final_status(self, morning):
        chain = chain_of(morning["filtered"])
        final = {r.address: (r.status, r.attempts) for r in chain.recipients()}
        assert final == {"bob@example.com": ("sent", 1), "carol@example.org": ("bounced", 3)}
        assert chain.attempts == 4

    def test_the_path_is_in_time_order_with_every_step(self, morning):
        steps = path(chain_of(morning["requeued"]))
        assert [(s.kind, s.hop.queue_id) for s in steps] == [
            ("received", "4AA091855DA0"),
            ("requeued", "776E41855DB2"),
            ("accepted", "4AA091855DA0"),
            ("removed", "4AA091855DA0"),
            ("attempt", "776E41855DB2"),
            ("attempt", "776E41855DB2"),
            ("attempt", "776E41855DB2"),
            ("attempt", "776E41855DB2"),
            ("removed", "776E41855DB2"),
        ]
        assert steps[1].origin == morning["filtered"]

    def test_a_reject_under_a_queue_id_belongs_to_that_life_of_it(self, morning):
        carol = chain_of(morning["reused"])
        assert [(e.status, e.recipient) for e in carol.events] == [
            ("auth_blk", "nobody@phys.nthu.edu.tw"),
            ("deferred", "erin@slow.example"),
        ]
        assert {r.address: r.status for r in carol.recipients()} == {
            "nobody@phys.nthu.edu.tw": "refused",
            "erin@slow.example": "deferred",
        }
        assert not any(e.status == "auth_blk" for e in chain_of(morning["filtered"]).events)

    def test_refusals_of_the_same_client_near_the_message_are_beside_it(self, morning):
        nearby = nearby_refusals(chain_of(morning["filtered"]))
        assert [
            (e.time.astimezone(NOW.tzinfo).strftime("%H:%M"), e.response[:4]) for e in nearby
        ] == [
            ("10:30", "reje"),
            ("10:35", "SASL"),
        ]  # the 14:00 reject is more than an hour away


class TestWhatTheLogsDoNotShow:
    def gaps(self, message) -> dict[str, str]:
        return {gap.code: gap.text for gap in chain_of(message).gaps()}

    def test_a_recipient_without_final_status_is_still_in_the_queue(self, morning):
        gaps = self.gaps(morning["reused"])
        assert gaps == {
            "still_in_queue": "erin@slow.example: still in the queue, last deferred at "
            "2026-11-20 08:00:04."
        }

    def test_a_message_seen_only_from_its_middle_says_so(self, morning):
        assert set(self.gaps(morning["middle"])) == {"seen_from_middle"}

    def test_a_requeued_message_whose_origin_is_gone_says_so(self, morning):
        Message.objects.filter(pk=morning["filtered"].pk).delete()
        chain = chain_of(Message.objects.get(pk=morning["requeued"].pk))
        assert [h.queue_id for h in chain.hops] == ["776E41855DB2"]
        assert {g.code for g in chain.gaps()} == {"origin_not_retained"}

    def test_a_filter_reinjection_with_no_origin_says_so(self, db):
        t = NOW - dt.timedelta(hours=1)
        message = Message.objects.create(
            relay="smtp1",
            queue_id="776E41855DB9",
            first_seen=t,
            sender="alice@cs.nthu.edu.tw",
            client_name="localhost",
            client_ip="127.0.0.1",
            removed_at=t,
        )
        gaps = {g.code for g in chain_of(message).gaps()}
        assert gaps == {"received_from_internal", "no_attempt_logged"}

    def test_a_complete_message_has_nothing_to_say(self, morning):
        assert self.gaps(morning["filtered"]) == {}
        assert self.gaps(morning["other relay"]) == {}


def test_pages_follow_each_other_without_repeating_a_message(morning):
    criteria = Criteria(since=DAY.since, until=DAY.until, sender="*")
    first, more = search(criteria, limit=2)
    second, more_after = search(criteria, limit=2, offset=2)
    everything, _ = search(criteria, limit=100)
    assert more and [r.time for r in first + second] == [r.time for r in everything[:4]]
    assert len({r.root.id for r in everything if isinstance(r, Chain)}) == 4
    assert more_after == (len(everything) > 4)
