"""The staff's admin lists on a big store: how long a page of events takes to render.

    python bench/admin.py [--events 10000000] [--repeat 5]

Uses the store of bench/report.py (database smtplog_bench_report on BENCH_DATABASE_URL's
server; built there, and migrated, if it is missing). Renders the admin's event and
message lists as a staff member's request would (the ModelAdmin's changelist view, its
template included) unfiltered, searched by the start of an address and by a whole
address, and filtered by status; prints the count shown (and whether it is PostgreSQL's
estimate), the median and range of --repeat renders, each SQL statement that took more
than 5 ms, and how busy the machine was meanwhile (CPU of other processes).
No target in the issues; the README quotes the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.report import build_store, machine_busy_seconds, say  # noqa: E402


def time_lists(url: str, repeat: int) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "smtplog.settings"
    import django

    django.setup()
    from django.contrib import admin
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import RequestFactory
    from django.test.utils import CaptureQueriesContext

    from smtplog.models import Event, Message

    staff = User(username="bench", is_superuser=True, is_staff=True, is_active=True)
    heaviest = Event.objects.order_by("-pk").values_list("sender", flat=True).first()
    cases = [
        (Event, "events, unfiltered", {}),
        (Event, f"events, search {heaviest[:5]!r}", {"q": heaviest[:5]}),
        (Event, f"events, search {heaviest!r}", {"q": heaviest}),
        (Event, "events, status bounced", {"status__exact": "bounced"}),
        (Message, "messages, unfiltered", {}),
    ]
    for model, label, params in cases:
        model_admin = admin.site._registry[model]
        timings = []
        busy, own = machine_busy_seconds(), time.process_time()
        for _ in range(repeat):
            request = RequestFactory().get("/admin/", params)
            request.user = staff
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = model_admin.changelist_view(request)
                response.render()
                timings.append(time.perf_counter() - started)
        busy, own = machine_busy_seconds() - busy, time.process_time() - own
        changelist = response.context_data["cl"]
        shown = ("about " if changelist.paginator.estimated else "") + (
            f"{changelist.result_count:,}"
        )
        say(
            f"{label:45} {shown:>13} rows shown; median {statistics.median(timings) * 1000:5.0f} ms"
            f" ({min(timings) * 1000:.0f}-{max(timings) * 1000:.0f}); other processes' CPU "
            f"{max(busy - own, 0) / sum(timings):.2f} of {os.cpu_count()} cores"
        )
        for query in queries.captured_queries:
            if float(query["time"]) > 0.005:
                say(f"    {float(query['time']) * 1000:5.0f} ms  {query['sql'][:90]}")
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/smtplog_bench_report"
        ),
    )
    args = parser.parse_args()
    build_store(args.database_url, args.events, rebuild=False)
    time_lists(args.database_url, args.repeat)
    say(
        "load average         {:.2f} {:.2f} {:.2f} ({} cores)".format(
            *os.getloadavg(), os.cpu_count()
        )
    )


if __name__ == "__main__":
    main()
