"""Generated months: every (sender, day, column) equals what the generator expects."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.ingest.conftest import counts, run

pytestmark = pytest.mark.slow


def expected_counts(out) -> dict:
    data = json.loads((out / "expected.json").read_text())
    return {
        (sender, day, column): n
        for sender, days in data["counts"].items()
        for day, columns in days.items()
        for column, n in columns.items()
        if n
    }


def ingest_generated(tmp_path, **options):
    from smtplog.sample import generate

    out = tmp_path / "maillog"
    generate(out, **options)
    summary = run(out / "*" / "mail.log*")
    assert not summary.errors
    return out, summary


def test_a_month_of_three_relays_is_counted_exactly(transactional_db, tmp_path):
    # transactional_db: outside a test transaction, as a run, with workers side by side.
    out, summary = ingest_generated(
        tmp_path, days=31, end=dt.date(2026, 11, 27), relays=3, messages_per_day=120, seed=11
    )
    assert counts() == expected_counts(out)
    assert summary.lines == json.loads((out / "expected.json").read_text())["lines"]


def test_a_month_crossing_new_year_is_counted_on_the_right_days(db, tmp_path):
    out, _ = ingest_generated(
        tmp_path, days=20, end=dt.date(2027, 1, 8), relays=2, messages_per_day=100, seed=12
    )
    got = counts()
    assert got == expected_counts(out)
    days = {day for _, day, _ in got}
    assert "2026-12-31" in days and "2027-01-01" in days


def test_a_month_in_rfc3339_timestamps_is_counted_exactly(db, tmp_path):
    out, _ = ingest_generated(
        tmp_path,
        days=12,
        end=dt.date(2026, 11, 27),
        relays=3,
        messages_per_day=100,
        seed=13,
        timestamp_format="rfc3339",
    )
    assert counts() == expected_counts(out)


def test_ingesting_in_small_batches_gives_the_same_counts(db, tmp_path, settings):
    settings.SMTPLOG_INGEST_BATCH_LINES = 137  # commits land inside every kind of sequence
    out, _ = ingest_generated(
        tmp_path, days=5, end=dt.date(2026, 11, 27), relays=3, messages_per_day=80, seed=14
    )
    assert counts() == expected_counts(out)


def test_a_central_log_of_three_relays_is_counted_exactly(transactional_db, tmp_path):
    # one log host's file for all relays, lines interleaved as it receives them (issue 10)
    out, summary = ingest_generated(
        tmp_path,
        days=8,
        end=dt.date(2026, 11, 27),
        relays=3,
        messages_per_day=120,
        seed=15,
        layout="central",
    )
    assert counts() == expected_counts(out)
    assert summary.lines == json.loads((out / "expected.json").read_text())["lines"]


@pytest.mark.parametrize("layout", ["per-relay", "central"])
def test_relays_of_uneven_traffic_are_counted_exactly(transactional_db, tmp_path, layout):
    out, _ = ingest_generated(
        tmp_path,
        days=6,
        end=dt.date(2026, 11, 27),
        relays=3,
        messages_per_day=120,
        seed=16,
        layout=layout,
        relay_weights=(55, 30, 15),
    )
    assert counts() == expected_counts(out)
