"""Failures that are not about the data (issue 9): a missing file, the database down or
refusing a write, a disk error. One clear line and a non-zero exit, no traceback; the
error on the file's row (the dashboard shows it) and in the every-minute task's log; and
the next run goes on from the last commit and counts everything exactly once."""

from __future__ import annotations

import errno
import io
import logging
import subprocess
import sys

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection

from smtplog.ingest import files
from smtplog.models import LogFile
from smtplog.tasks import ingest_configured_logs
from tests import services
from tests.ingest.conftest import counts, run
from tests.ingest.scratch import REPO, env
from tests.ingest.test_rotation import append, message_lines


def manage(database_url: str, tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "manage.py"), *args],
        env=env(database_url, tmp_path),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


def test_a_file_that_does_not_exist_is_refused_with_a_clear_message(tmp_path):
    done = manage(
        f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path, "ingest_maillog", "/no/such/file"
    )
    assert done.returncode == 1
    assert done.stderr == "CommandError: no such file: /no/such/file\n"


def test_the_database_down_stops_the_run_with_one_line_and_no_traceback(tmp_path):
    log = tmp_path / "mail.log"
    append(log, message_lines(3))
    if services.uses_postgres():
        url = "postgres://postgres@127.0.0.1:9/smtplog"  # nothing listens there
    else:
        url = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'db.sqlite3'}"
    done = manage(url, tmp_path, "ingest_maillog", "--no-progress", str(log))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("CommandError: ingestion stopped: the database failed: OperationalError")
    assert line.endswith("(what was committed stays, and the next run goes on from there)")


FULL = "full@example.com"  # the recipient whose event the database refuses below


@pytest.fixture
def refusing_database():
    """A trigger makes the database refuse to store one event, as a full disk would."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION refuse_event() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.recipient = '{FULL}' THEN RAISE EXCEPTION "
                "'could not extend file: No space left on device' USING ERRCODE = 'disk_full'; "
                "END IF; RETURN NEW; END $$"
            )
            cursor.execute(
                "CREATE TRIGGER refuse_event BEFORE INSERT ON smtplog_event "
                "FOR EACH ROW EXECUTE FUNCTION refuse_event()"
            )
        else:
            cursor.execute(
                "CREATE TRIGGER refuse_event BEFORE INSERT ON smtplog_event "
                f"WHEN NEW.recipient = '{FULL}' BEGIN "
                "SELECT RAISE(ABORT, 'database or disk is full'); END"
            )

    def back_to_normal():
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("DROP TRIGGER refuse_event ON smtplog_event")
                cursor.execute("DROP FUNCTION refuse_event()")
            else:
                cursor.execute("DROP TRIGGER refuse_event")

    return back_to_normal


def refused_message(i: int) -> list[str]:
    t = f"Jun  3 11:00:{i:02d}"
    return [
        f"{t} smtp1 postfix/qmgr[1]: BAD{i:03d}: from=<g@nthu.edu.tw>, size=1, nrcpt=1 (queue active)",
        f"{t} smtp1 postfix/smtp[2]: BAD{i:03d}: to=<{FULL}>, relay=mx[192.0.2.1]:25, "
        "delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)",
        f"{t} smtp1 postfix/qmgr[1]: BAD{i:03d}: removed",
    ]


@pytest.mark.django_db(transaction=True)  # each batch commits for real, as in a run
def test_a_refused_write_stops_the_run_shows_on_the_file_and_the_next_run_resumes(
    tmp_path, settings, refusing_database, caplog, client
):
    settings.SMTPLOG_INGEST_BATCH_LINES = 6
    log = tmp_path / "mail.log"
    append(log, message_lines(4) + refused_message(1) + message_lines(3, start=4))
    with pytest.raises(CommandError) as stopped:
        call_command("ingest_maillog", "--no-progress", str(log))
    message = str(stopped.value)
    assert message.startswith(f"ingestion stopped: {log}: the database failed: ")
    assert "\n" not in message
    row = LogFile.objects.get()
    assert 0 < row.position < log.stat().st_size  # the batches before it are committed
    assert row.last_error.startswith(f"{log}: the database failed: ")

    client.force_login(User.objects.create_user("opr", is_staff=True))
    assert row.last_error in client.get("/admin/dashboard/").content.decode()

    settings.SMTPLOG_MAILLOG_GLOBS = [str(log)]
    with caplog.at_level(logging.ERROR, logger="smtplog.tasks"):
        assert ingest_configured_logs.delay().get().startswith("stopped: ")
    assert f"ingestion stopped: {log}: the database failed" in caplog.text

    refusing_database()
    run(log)
    row.refresh_from_db()
    assert (row.position, row.last_error) == (log.stat().st_size, "")
    assert counts() == {("g@nthu.edu.tw", "2026-06-03", "sent"): 8}


class FailingDisk:
    """files.open_stream, but the stream of one path fails with EIO past its first bytes."""

    def __init__(self, path, good: int):
        self.path, self.good = str(path), good
        self.real = files.open_stream

    def __call__(self, path, compressed):
        stream = self.real(path, compressed)
        return BadSectors(stream, self.good) if path == self.path else stream


class BadSectors:
    def __init__(self, stream, good: int):
        self.stream, self.good = stream, good

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stream.close()

    def seek(self, offset: int) -> None:
        self.stream.seek(offset)

    def read(self, n: int) -> bytes:
        left = self.good - self.stream.tell()
        if left <= 0:
            raise OSError(errno.EIO, "Input/output error")
        return self.stream.read(min(n, left))


def test_an_unreadable_file_is_an_error_on_its_row_and_its_log_waits_for_it(
    db, tmp_path, monkeypatch, settings, caplog
):
    settings.SMTPLOG_INGEST_BATCH_LINES = 6
    one, two = tmp_path / "smtp1", tmp_path / "smtp2"
    one.mkdir(), two.mkdir()
    append(one / "mail.log.1", message_lines(10))
    append(one / "mail.log", message_lines(5, start=10))
    append(two / "mail.log", message_lines(4, start=20))
    run(one / "mail.log.1")
    append(one / "mail.log.1", message_lines(3, start=30))  # written before the rotation
    monkeypatch.setattr(files, "open_stream", FailingDisk(one / "mail.log.1", 1500))
    pattern = str(tmp_path / "*" / "mail.log*")

    out = io.StringIO()
    with pytest.raises(CommandError) as stopped:
        call_command("ingest_maillog", "--no-progress", pattern, stdout=out)
    assert str(stopped.value) == (
        f"{one / 'mail.log.1'}: cannot read it: Input/output error "
        "(what was committed stays, and the next run goes on from there)"
    )
    assert f"{one / 'mail.log'}: waits for an older file of its log" in out.getvalue()
    rows = {row.path: row for row in LogFile.objects.all()}
    assert rows[str(one / "mail.log.1")].last_error == (
        f"{one / 'mail.log.1'}: cannot read it: Input/output error"
    )
    assert str(one / "mail.log") not in rows  # it waits for its older file
    assert rows[str(two / "mail.log")].position == (two / "mail.log").stat().st_size

    settings.SMTPLOG_MAILLOG_GLOBS = [pattern]
    with caplog.at_level(logging.ERROR, logger="smtplog.tasks"):
        assert ingest_configured_logs.delay().get() == "0 lines, 0 events, 1 errors"
    assert f"{one / 'mail.log.1'}: cannot read it: Input/output error" in caplog.text

    monkeypatch.undo()  # the disk is back
    summary = run(pattern)
    assert summary.errors == []
    assert all(not row.last_error for row in LogFile.objects.all())
    assert counts() == {("g@nthu.edu.tw", "2026-06-03", "sent"): 22}
