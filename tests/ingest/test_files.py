"""What ingestion does with the files it is given (issue 9 §4, issue 12 §14): the default
glob finds the sample month and nothing else, what is not a log is refused by name, a file
truncated or rewritten in place is read on from its first new line, a gzip copy beside its
live file raises no false alarm, and the progress bar counts bytes."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import logging
import os
import re
import shutil
import zoneinfo
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from tqdm import tqdm

from smtplog.ingest import files
from smtplog.models import Event, LogFile
from smtplog.sample import generate
from smtplog.tasks import ingest_configured_logs
from tests.ingest.conftest import run
from tests.ingest.test_rotation import append, message_lines, sent

TZ = zoneinfo.ZoneInfo("Asia/Taipei")


# -- what the every-minute task reads ------------------------------------------------------
def test_the_default_glob_is_the_sample_layout_and_nothing_else(db, tmp_path, settings, caplog):
    default = django_settings.SMTPLOG_MAILLOG_GLOBS
    assert [Path(p).relative_to(django_settings.VAR_DIR) for p in default] == [
        Path("maillog/*/mail.log*")
    ]
    out = tmp_path / "maillog"
    expected = generate(out, days=2, end=dt.date(2025, 5, 7), relays=2, messages_per_day=20)
    settings.SMTPLOG_MAILLOG_GLOBS = [
        p.replace(str(django_settings.VAR_DIR), str(tmp_path)) for p in default
    ]
    assert sorted(
        Path(p).relative_to(out).as_posix() for p in files.expand(settings.SMTPLOG_MAILLOG_GLOBS)
    ) == sorted(expected.files)
    with caplog.at_level(logging.WARNING, logger="smtplog.tasks"):
        result = ingest_configured_logs.delay().get()
    assert result.endswith(" 0 errors")
    assert [r.getMessage() for r in caplog.records if r.name.startswith("smtplog")] == []


def test_what_is_not_a_log_is_refused_by_name_with_the_reason(db, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    append(logs / "mail.log", message_lines(2))
    (logs / "expected.json").write_text(json.dumps({"counts": {"a": 1}}, indent=1))
    (logs / "core.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    (logs / "old.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"\xff" * 200)  # gzip's magic, then junk
    (logs / "archive").mkdir()
    out = io.StringIO()
    call_command("ingest_maillog", "--no-progress", str(logs / "*"), stdout=out)
    text = out.getvalue()
    for name, reason in [
        ("archive", "it is a directory"),
        ("core.png", "not a syslog file: none of its first lines starts with a syslog timestamp"),
        ("expected.json", "not a syslog file"),
        ("old.gz", "a damaged gzip file"),
    ]:
        assert f"{logs / name}: not read: {reason}" in text
    assert "done" in text  # refusals are not errors
    assert sent() == 2
    assert [row.path for row in LogFile.objects.all()] == [str(logs / "mail.log")]


def test_a_log_whose_first_line_is_a_header_is_still_a_log(db, tmp_path):
    log = tmp_path / "journal.log"
    with open(log, "w") as f:
        f.write("-- Journal begins at Mon 2026-06-01 00:00:01 CST. --\n")
    append(log, message_lines(2))
    run(log)
    assert sent() == 2


# -- files changed in place ----------------------------------------------------------------
def later(n: int, start: int) -> list[str]:
    """Messages logged after those of message_lines (June 3, 11:00 on)."""
    return [line.replace("Jun  3 10:", "Jun  3 11:") for line in message_lines(n, start)]


def test_a_file_truncated_in_place_is_read_on_from_what_is_new(db, tmp_path):
    log = tmp_path / "mail.log"
    append(log, message_lines(20))
    run(log)
    with open(log, "r+b") as f:
        f.truncate(log.stat().st_size // 2 + 17)  # mid-line, as truncate -s cuts
    summary = run(log)
    row = LogFile.objects.get()
    assert row.position <= log.stat().st_size  # never beyond the end
    assert any("changed before the read position" in note for note in summary.notes)
    with open(log, "a") as f:
        f.write("\n")  # the writer goes on after the cut line
    append(log, later(15, 100))
    run(log)
    assert sent() == 35
    assert Event.objects.filter(status="sent").values("recipient").distinct().count() == 35
    assert LogFile.objects.get().position == log.stat().st_size


def test_a_file_truncated_and_grown_past_the_old_position_is_noticed(db, tmp_path):
    log = tmp_path / "mail.log"
    append(log, message_lines(10))
    run(log)
    size = log.stat().st_size
    with open(log, "r+b") as f:
        f.truncate(size // 3)
    with open(log, "a") as f:
        f.write("\n")
    append(log, later(20, 100))  # more than was cut: the file is longer than before
    assert log.stat().st_size > size
    summary = run(log)
    assert any("changed before the read position" in note for note in summary.notes)
    assert sent() == 30
    assert Event.objects.filter(status="sent").values("recipient").distinct().count() == 30
    assert run(log).lines == 0


def test_an_older_copy_sharing_the_first_line_is_not_read_again(db, tmp_path):
    log = tmp_path / "mail.log"
    append(log, message_lines(5))
    shutil.copy2(log, tmp_path / "mail.log.bak")  # a copy, taken early
    append(log, message_lines(5, start=5))
    run(log)
    run(tmp_path / "mail.log*")
    run(tmp_path / "mail.log*")
    assert sent() == 10
    assert LogFile.objects.get().position == log.stat().st_size


@pytest.mark.django_db(transaction=True)  # batches commit for real, as in a run
def test_a_gzip_copy_beside_its_growing_file_raises_no_false_alarm(tmp_path, settings):
    """`gzip -c mail.log > mail.log.1.gz`, then more lines in mail.log: the copy and the file
    share their first line (one row). The copy's last batch must be committed before the
    file's row is read, or the file is read from a stale position and its commit refused
    ("its position moved under us"), though no other ingester runs."""
    settings.SMTPLOG_INGEST_BATCH_LINES = 5
    log = tmp_path / "mail.log"
    append(log, message_lines(10))
    run(log)
    append(log, message_lines(10, start=10))
    with open(log, "rb") as src, gzip.open(tmp_path / "mail.log.1.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    append(log, message_lines(10, start=20))
    summary = run(tmp_path / "mail.log*")
    assert summary.errors == []
    assert sent() == 30
    assert LogFile.objects.get().position == log.stat().st_size


# -- the progress bar ----------------------------------------------------------------------
def test_the_progress_shows_bytes_of_bytes_to_read_a_percentage_and_the_time_left(db, tmp_path):
    log = tmp_path / "mail.log"
    append(log, message_lines(30))
    err = io.StringIO()
    call_command("ingest_maillog", str(log), stdout=io.StringIO(), stderr=err)
    shown = tqdm.format_sizeof(log.stat().st_size, divisor=1024)
    final = err.getvalue().split("\r")[-1]
    assert re.search(
        rf"100%\|#+\| {re.escape(shown)}/{re.escape(shown)} \[\d\d:\d\d<\d\d:\d\d", final
    ), final
    assert "B/s" in final
    # Nothing to read: no bar at all.
    err = io.StringIO()
    call_command("ingest_maillog", str(log), stdout=io.StringIO(), stderr=err)
    assert err.getvalue() == ""


def test_the_progress_counts_what_is_left_to_read(db, tmp_path):
    log = tmp_path / "mail.log"
    append(log, message_lines(30))
    run(log)
    before = log.stat().st_size
    append(log, message_lines(30, start=30))
    err = io.StringIO()
    call_command("ingest_maillog", str(log), stdout=io.StringIO(), stderr=err)
    left = tqdm.format_sizeof(log.stat().st_size - before, divisor=1024)
    assert f"| {left}/{left} [" in err.getvalue().split("\r")[-1]
    assert os.path.getsize(log) == LogFile.objects.get().position
