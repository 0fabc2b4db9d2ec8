"""PostgreSQL: each of the trace's lookups can be served by the index meant for it.

Sequential and bitmap scans are turned off so that the plan shows whether an index
scan is possible at all (on tables this small the planner would rather read them whole):
a query written so that its index cannot serve it (a cast, a predicate the partial
index does not imply) shows here, not only as slowness on a full store.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connection, transaction

from tests.conftest import NOW
from tests.services import require_postgres
from tracing.search import Criteria, matching, refusals_near, requeued_from

pytestmark = pytest.mark.postgres
DAY = {"since": NOW - dt.timedelta(hours=24), "until": NOW}


def uses(index: str, queryset) -> bool:
    return re.search(rf"Index Scan (Backward )?using {index} ", plan(queryset)) is not None


def plan(queryset) -> str:
    require_postgres()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        return queryset.explain()


@pytest.mark.parametrize(
    ("fields", "index"),
    [
        ({"queue_id": "4AA091855DA0"}, "message_queue_id_relay_first_seen"),
        ({"message_id": "ca10035e@cs.nthu.edu.tw"}, "message_first_hop_message_id"),
        ({"sender": "alice@"}, "event_sender_prefix_time"),
        ({"sender": "alice@cs.nthu.edu.tw"}, "event_sender_prefix_time"),
        ({"recipient": "carol@"}, "event_recipient_prefix"),
    ],
)
def test_each_search_field_has_its_index(db, fields, index):
    assert uses(index, matching(Criteria(**DAY, **fields)))


def test_the_requeued_messages_of_a_message_have_their_index(db):
    assert uses("message_requeued", requeued_from([1, 2]))


def test_a_clients_refusals_near_a_time_have_their_index(db):
    assert "Index Scan using event_refusal_client_time " in plan(
        refusals_near("140.114.63.228", NOW)
    )
