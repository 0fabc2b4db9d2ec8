"""A task runs through a real worker process, on Redis and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db.models import F

from smtplog.models import DailyCounter, Status
from smtplog.store import add_events, recount, stored_counts
from tests.conftest import NOW, make_event
from tests.services import require_postgres, require_redis
from tests.worker import running_worker, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.worker, pytest.mark.slow]

DAY = (NOW - dt.timedelta(days=1)).date()


@pytest.fixture
def broker_url() -> str:
    require_postgres()  # the worker must open the test database itself
    return require_redis()


def test_recount_counters_runs_in_a_worker_and_repairs_the_counters(transactional_db, broker_url):
    t = NOW - dt.timedelta(days=1)
    add_events(
        [
            make_event("alice@cs.nthu.edu.tw", Status.SENT, t),
            make_event("alice@cs.nthu.edu.tw", Status.BOUNCED, t + dt.timedelta(minutes=5)),
            make_event("bob@ee.nthu.edu.tw", Status.DEFERRED, t),
        ]
    )
    # Damage the day's counters the way a crashed repair or a manual edit could.
    DailyCounter.objects.filter(day=DAY, sender="alice@cs.nthu.edu.tw").update(sent=F("sent") + 7)
    DailyCounter.objects.filter(day=DAY, sender="bob@ee.nthu.edu.tw").delete()
    assert stored_counts(DAY) != recount(DAY)

    with running_worker(broker_url) as worker:
        worker.send("smtplog.tasks.recount_counters", DAY.isoformat())
        wait_until(
            lambda: stored_counts(DAY) == recount(DAY),
            timeout=30,
            what="the worker to rebuild the counters",
            worker=worker,
        )
        wait_until(
            lambda: "succeeded" in worker.log(),
            timeout=10,
            what="the worker to log the task's success",
            worker=worker,
        )

    assert stored_counts(DAY) == {
        ("alice@cs.nthu.edu.tw", DAY, "sent"): 1,
        ("alice@cs.nthu.edu.tw", DAY, "bounced"): 1,
        ("bob@ee.nthu.edu.tw", DAY, "deferred"): 1,
    }
    assert f"{DAY.isoformat()}: 2 counters rebuilt" in worker.log()
    assert not worker.alive()  # stopped with the context manager
