"""Ingestion is total (issue 9), shown on real logs mangled the ways real relays mangle them.

Blocks are the real logs of the shared corpus (../shared/corpus: one block per source
file, or per file a source concatenated), with their syslog headers. Hypothesis mutates
them: a sub-block repeated (a syslog relay sending its buffer again), lines dropped,
lines of one second swapped, a line cut mid-way (a crash) or the file ending mid-line,
two relays' lines interleaved (central syslog). Whatever comes out:

* the run finishes without an error and the read position reaches the end (of the last
  complete line);
* a second run reads nothing and changes nothing;
* a repeated block leaves Sent, Bounced, Deferred, Expired and Auth_rcv as the block
  alone gives them (Auth_blk may grow: SASL failures and NOQUEUE rejects count each time);
* two relays interleaved count what each alone counts (for a block in time order: in a
  collection of lines of many months the year of a classic timestamp is guessed from the
  order of the months).

Batches of a few lines are drawn too, so that commits fall inside the blocks.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import os
import re
import tempfile
import zoneinfo
from collections import Counter
from pathlib import Path

import pytest
from django.test import override_settings
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from smtplog.ingest.correlate import REPEAT_WINDOW
from smtplog.ingest.run import ingest
from smtplog.models import DailyCounter, Event, LogFile, LoginAlias, Message
from smtplog.postfix import LineParser
from tests.ingest.conftest import counts, event_rows
from tests.services import missing

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
TZ = zoneinfo.ZoneInfo("Asia/Taipei")
MTIME = dt.datetime(2026, 12, 31, 12, 0, tzinfo=TZ).timestamp()
# A syslog line: its timestamp to the second, then the host.
HEADER = re.compile(
    r"^(?P<second>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"
    r"|\d{4} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d)\S* (?P<host>\S+) \S+: "
)
REPEATED = ("sent", "bounced", "deferred", "expired", "auth_rcv")
SETTINGS = settings(
    deadline=None,
    max_examples=30,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
BATCHES = st.sampled_from([4, 20000])  # commits inside a block, or one per file


def corpus_blocks() -> list[list[str]]:
    """The corpus's real logs with syslog headers: a block per section between comments."""
    blocks: list[list[str]] = []
    for path in sorted(CORPUS.glob("*.log")) if CORPUS.is_dir() else []:
        section: list[str] = []
        for line in [*path.read_text(encoding="utf-8").splitlines(), "#"]:
            if not line.startswith("#"):
                section.append(line)
            elif section:
                headed = [x for x in section if HEADER.match(x)]
                if len(headed) >= 3 and len(headed) * 2 >= len(section):
                    blocks.append(section)
                section = []
    return blocks


BLOCKS = corpus_blocks()


@pytest.fixture(autouse=True)
def corpus_there():
    if not BLOCKS:
        missing(f"the shared corpus of real Postfix lines at {CORPUS}")


@functools.cache
def times_of(index: int) -> tuple[dt.datetime | None, ...]:
    """Each line's time: its record's, else the last one before it (None before any)."""
    parser = LineParser(TZ, reference=dt.datetime.fromtimestamp(MTIME, TZ))
    times: list[dt.datetime | None] = []
    last = None
    for line in BLOCKS[index]:
        rec = parser.parse(line)
        last = rec.time if rec is not None else last
        times.append(last)
    return tuple(times)


@functools.cache
def in_time_order(index: int) -> bool:
    """Whether the block is a log in time order (within a minute), not a set of samples."""
    times = [t for t in times_of(index) if t is not None]
    return all(b >= a - dt.timedelta(minutes=1) for a, b in itertools.pairwise(times))


def wipe() -> None:
    for model in (Event, Message, DailyCounter, LoginAlias, LogFile):
        model.objects.all().delete()


def ingest_text(text: str, batch: int, name: str = "mail.log") -> tuple[dict, int, int]:
    """Ingest the text as a fresh store's only file; (counts, position, end to reach),
    after checking that a second run reads nothing and changes nothing."""
    wipe()
    with tempfile.TemporaryDirectory() as tmp, override_settings(SMTPLOG_INGEST_BATCH_LINES=batch):
        path = Path(tmp) / name
        path.write_text(text, encoding="utf-8")
        os.utime(path, (MTIME, MTIME))
        summary = ingest([str(path)])
        assert summary.errors == []
        state = (
            event_rows(),
            counts(),
            sorted(Message.objects.values_list("queue_id", "sender")),
        )
        again = ingest([str(path)])
        assert again.lines == 0
        assert state == (
            event_rows(),
            counts(),
            sorted(Message.objects.values_list("queue_id", "sender")),
        )
        data = text.encode()
        end = data.rfind(b"\n") + 1
        position = LogFile.objects.get().position if LogFile.objects.exists() else 0
        return state[1], position, end


def joined(lines: list[str], newline_at_end: bool = True) -> str:
    return "\n".join(lines) + ("\n" if newline_at_end and lines else "")


@functools.cache
def alone(index: int) -> dict:
    """The counts of a block alone (one file, one batch)."""
    result, _, _ = ingest_text(joined(BLOCKS[index]), 20000)
    return result


def columns(result: dict, wanted=REPEATED) -> Counter:
    out: Counter = Counter()
    for (sender, day, column), n in result.items():
        if column in wanted:
            out[(sender, day, column)] += n
    return out


# -- mutations ------------------------------------------------------------------------------
block_index = st.integers(0, max(len(BLOCKS) - 1, 0))


@st.composite
def repeated_sub_block(draw) -> tuple[int, list[str]]:
    """A sub-block repeated, the copy within the repeat window of what it repeats: no line
    before the copy is more than the window later than the earliest line repeated (a
    repeat later than that is a line read anew, by design)."""
    index = draw(block_index)
    lines, times = BLOCKS[index], times_of(index)
    a = draw(st.integers(0, len(lines) - 1))
    b = draw(st.integers(a + 1, len(lines)))
    at = draw(st.integers(b, len(lines)))

    def within_window() -> bool:
        before = [t for t in times[:at] if t is not None]
        repeated = [t for t in times[a:b] if t is not None]
        window = REPEAT_WINDOW - dt.timedelta(minutes=5)
        return not repeated or max(before) - min(repeated) <= window

    while not within_window() and at > b:
        at -= 1
    while not within_window() and a < b - 1:
        a += 1
    assume(within_window())  # (a block of samples hours apart, out of order)
    return index, lines[:at] + lines[a:b] + lines[at:]


@given(mutation=repeated_sub_block(), batch=BATCHES)
@SETTINGS
def test_a_repeated_block_counts_as_the_block_once(db, mutation, batch):
    index, lines = mutation
    result, position, end = ingest_text(joined(lines), batch)
    assert position == end
    assert columns(result) == columns(alone(index))


@given(index=block_index, data=st.data(), batch=BATCHES)
@SETTINGS
def test_dropped_lines_never_stop_ingestion(db, index, data, batch):
    lines = BLOCKS[index]
    dropped = data.draw(st.sets(st.integers(0, len(lines) - 1), max_size=len(lines) // 2 + 1))
    kept = [line for i, line in enumerate(lines) if i not in dropped]
    _, position, end = ingest_text(joined(kept), batch)
    assert position == end


@given(index=block_index, data=st.data(), batch=BATCHES)
@SETTINGS
def test_lines_swapped_within_a_second_never_stop_ingestion(db, index, data, batch):
    lines = list(BLOCKS[index])
    seconds = [m["second"] if (m := HEADER.match(line)) else None for line in lines]
    pairs = [i for i in range(len(lines) - 1) if seconds[i] and seconds[i] == seconds[i + 1]]
    for i in data.draw(st.lists(st.sampled_from(pairs), max_size=20)) if pairs else []:
        lines[i], lines[i + 1] = lines[i + 1], lines[i]
    _, position, end = ingest_text(joined(lines), batch)
    assert position == end


@given(index=block_index, data=st.data(), batch=BATCHES, at_end=st.booleans())
@SETTINGS
def test_a_line_cut_mid_way_never_stops_ingestion(db, index, data, batch, at_end):
    lines = list(BLOCKS[index])
    i = len(lines) - 1 if at_end else data.draw(st.integers(0, len(lines) - 1))
    cut = data.draw(st.integers(1, max(len(lines[i]) - 1, 1)))
    lines[i] = lines[i][:cut]
    text = joined(lines, newline_at_end=not at_end)
    _, position, end = ingest_text(text, batch)
    assert position == end  # a last line without its newline waits for the rest


def rename_host(line: str, suffix: str) -> str:
    m = HEADER.match(line)
    if m is None:
        return line
    return line[: m.start("host")] + m["host"] + suffix + line[m.end("host") :]


@given(index=block_index, order=st.lists(st.booleans(), min_size=1), batch=BATCHES)
@SETTINGS
def test_two_relays_interleaved_count_what_each_counts_alone(db, index, order, batch):
    """The block and a copy of it from another relay, as central syslog mixes them: each
    relay's lines in their order, one a few lines ahead of the other now and then."""
    first = list(BLOCKS[index])
    second = [rename_host(line, "-b") for line in BLOCKS[index]]
    merged: list[str] = []
    i = j = 0
    choices = iter(order * (len(first) * 2 // len(order) + 1))
    while i < len(first) or j < len(second):
        take_first = next(choices)
        if j >= len(second) or (i < len(first) and (take_first or j - i >= 5) and i - j < 5):
            merged.append(first[i])
            i += 1
        else:
            merged.append(second[j])
            j += 1
    result, position, end = ingest_text(joined(merged), batch)
    assert position == end
    if in_time_order(index):  # (samples of many months: the year guessed differs by order)
        assert result == {key: 2 * n for key, n in alone(index).items()}
