"""Exactly once: reruns, appends, half-written lines and every kind of rotation."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import shutil
import zoneinfo
from pathlib import Path

from smtplog.models import Event, LogFile
from tests.ingest.conftest import counts, event_rows, run

TZ = zoneinfo.ZoneInfo("Asia/Taipei")
MTIME = dt.datetime(2026, 6, 30, 12, 0, tzinfo=TZ)


def message_lines(n: int, start: int = 0, day: int = 3) -> list[str]:
    """n one-recipient messages of g@nthu.edu.tw, each sent, on June `day`."""
    lines = []
    for i in range(start, start + n):
        qid = f"{0xA0000 + i:X}"
        t = f"Jun {day:>2} 10:{i // 60 % 60:02d}:{i % 60:02d}"
        lines += [
            f"{t} smtp1 postfix/qmgr[1]: {qid}: from=<g@nthu.edu.tw>, size=1, nrcpt=1 (queue active)",
            f"{t} smtp1 postfix/smtp[2]: {qid}: to=<r{i}@example.com>, relay=mx[192.0.2.1]:25, "
            f"delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok {i})",
            f"{t} smtp1 postfix/qmgr[1]: {qid}: removed",
        ]
    return lines


def append(path: Path, lines: list[str], newline_at_end: bool = True) -> None:
    with open(path, "a") as f:
        f.write("\n".join(lines) + ("\n" if newline_at_end else ""))
    os.utime(path, (MTIME.timestamp(), MTIME.timestamp()))


def sent() -> int:
    return counts().get(("g@nthu.edu.tw", "2026-06-03", "sent"), 0)


def test_running_twice_over_the_same_file_counts_nothing_twice(db, logdir):
    log = logdir / "mail.log"
    append(log, message_lines(10))
    run(log)
    before = event_rows()
    run(log)
    assert event_rows() == before
    assert sent() == 10


def test_appended_lines_are_read_from_where_the_last_run_stopped(db, logdir):
    log = logdir / "mail.log"
    append(log, message_lines(5))
    run(log)
    append(log, message_lines(7, start=5))
    run(log)
    assert sent() == 12
    assert LogFile.objects.get().position == log.stat().st_size


def test_a_half_written_last_line_becomes_one_event_when_completed(db, logdir):
    log = logdir / "mail.log"
    lines = message_lines(2)
    append(log, lines[:4])
    head, tail = lines[4][:30], lines[4][30:]
    with open(log, "a") as f:
        f.write(head)
    run(log)
    assert sent() == 1
    with open(log, "a") as f:
        f.write(tail + "\n" + lines[5] + "\n")
    run(log)
    assert sent() == 2
    assert Event.objects.filter(recipient="r1@example.com").count() == 1


def test_rename_rotation_loses_and_doubles_nothing(db, logdir):
    log = logdir / "mail.log"
    append(log, message_lines(5))
    run(log)
    append(log, message_lines(3, start=5))  # written after our last read...
    log.rename(logdir / "mail.log.1")  # ...then rotated away
    append(log, message_lines(4, start=8))
    run(logdir / "mail.log*")
    assert sent() == 12
    assert LogFile.objects.count() == 2


def test_copytruncate_loses_and_doubles_nothing(db, logdir):
    log = logdir / "mail.log"
    append(log, message_lines(5))
    run(log)
    append(log, message_lines(3, start=5))
    shutil.copy2(log, logdir / "mail.log.1")
    with open(log, "r+") as f:
        f.truncate(0)
    run(logdir / "mail.log*")  # the truncated file has no first line yet: it waits
    append(log, message_lines(4, start=8))
    run(logdir / "mail.log*")
    assert sent() == 12


def test_a_rotated_gz_copy_is_recognised_and_not_read_again(db, logdir):
    log = logdir / "mail.log"
    append(log, message_lines(6))
    run(log)
    with open(log, "rb") as src, gzip.open(logdir / "mail.log.1.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    log.unlink()
    append(log, message_lines(2, start=6))
    summary = run(logdir / "mail.log*")
    assert sent() == 8
    assert summary.lines == 6  # only the new file's lines were read


def test_two_rotations_while_stopped_lose_and_double_nothing(db, logdir):
    log = logdir / "mail.log"
    append(log, message_lines(4))
    run(log)
    append(log, message_lines(2, start=4))  # not read before the first rotation
    log.rename(logdir / "mail.log.1")
    append(log, message_lines(3, start=6))
    # second rotation: .1 compressed to .2.gz, live file renamed to .1
    with open(logdir / "mail.log.1", "rb") as src, gzip.open(logdir / "mail.log.2.gz", "wb") as d:
        shutil.copyfileobj(src, d)
    (logdir / "mail.log.1").unlink()
    log.rename(logdir / "mail.log.1")
    append(log, message_lines(5, start=9))
    run(str(logdir / "mail.log"), str(logdir / "mail.log.1"), str(logdir / "mail.log.2.gz"))
    assert sent() == 14
    assert Event.objects.filter(status="sent").values("recipient").distinct().count() == 14


def test_rotated_files_are_read_oldest_first_whatever_the_order_given(db, logdir):
    from smtplog.ingest.files import expand

    for name in ("mail.log", "mail.log.1", "mail.log.2.gz", "mail.log.10.gz"):
        (logdir / name).write_bytes(b"")
    names = [Path(p).name for p in expand([str(logdir / "mail.log*")])]
    assert names == ["mail.log.10.gz", "mail.log.2.gz", "mail.log.1", "mail.log"]


def test_the_file_size_is_kept_for_the_dashboard_lag(db, logdir):
    log = logdir / "mail.log"
    append(log, message_lines(2))
    run(log)
    logfile = LogFile.objects.get()
    assert logfile.size == logfile.position == log.stat().st_size
    with open(log, "a") as f:
        f.write("Jun  3 10:59:59 smtp1 postfix/qmgr[1]: half a li")
    run(log)
    logfile.refresh_from_db()
    assert logfile.size - logfile.position == len(
        "Jun  3 10:59:59 smtp1 postfix/qmgr[1]: half a li"
    )
