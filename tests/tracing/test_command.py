"""manage.py trace: the same search for the command line, as text or JSON, audited."""

from __future__ import annotations

import getpass
import io
import json

import pytest
from django.core.management import CommandError, call_command

from tracing.models import Look


def trace(*args: str) -> str:
    out = io.StringIO()
    call_command("trace", *args, stdout=out)
    return out.getvalue()


def test_the_json_holds_each_message_with_its_hops_events_and_gaps(morning):
    data = json.loads(trace("--queue-id", "4AA091855DA0", "--format", "json"))
    assert data["criteria"]["queue_id"] == "4AA091855DA0"
    assert data["criteria"]["since"] == "2026-11-19T10:00:00+08:00"
    assert data["more"] is False
    carol, bob, alice = data["results"]
    assert (carol["relay"], bob["relay"], alice["relay"]) == ("smtp1", "smtp2", "smtp1")
    assert alice["queue_ids"] == ["4AA091855DA0", "776E41855DB2"]
    assert [h["requeued_as"] for h in alice["hops"]] == [["776E41855DB2"], []]
    assert [h["requeued_from"] for h in alice["hops"]] == [None, "4AA091855DA0"]
    assert alice["hops"][0]["message_id"] == "ca10035e@cs.nthu.edu.tw"
    assert alice["recipients"] == [
        {
            "address": "bob@example.com",
            "status": "sent",
            "attempts": 1,
            "last_time": "2026-11-19T10:40:59+08:00",
            "last_reply": "250 2.0.0 OK  1608161352 c34si2363086pgm.445 - gsmtp",
        },
        {
            "address": "carol@example.org",
            "status": "bounced",
            "attempts": 3,
            "last_time": "2026-11-20T00:20:01+08:00",
            "last_reply": "host mx.example.org[192.0.2.26] said: 550 5.1.1 "
            "<carol@example.org> User unknown (in reply to RCPT TO command)",
        },
    ]
    assert [(e["queue_id"], e["status"]) for e in alice["events"]] == [
        ("4AA091855DA0", "auth_rcv"),
        ("776E41855DB2", "sent"),
        ("776E41855DB2", "deferred"),
        ("776E41855DB2", "deferred"),
        ("776E41855DB2", "bounced"),
    ]
    assert alice["gaps"] == [] and [g["code"] for g in carol["gaps"]] == ["still_in_queue"]


def test_the_json_says_what_a_refusal_is(morning):
    data = json.loads(trace("--client-ip", "140.114.63.228", "--format", "json"))
    kinds = [(r["kind"], r["events"][0]["status"]) for r in data["results"]]
    assert kinds == [
        ("message", "auth_rcv"),
        ("event", "auth_blk"),
        ("event", "auth_blk"),
        ("event", "auth_blk"),
    ]


def test_the_text_lists_messages_recipients_and_gaps(morning):
    text = trace("--sender", "carol@phys.")
    assert "2026-11-20 08:00:00  smtp1  4AA091855DA0  carol@phys.nthu.edu.tw" in text
    assert "    erin@slow.example  deferred  1  connect to mx.slow.example" in text
    assert (
        "    ! erin@slow.example: still in the queue, last deferred at 2026-11-20 08:00:04." in text
    )


def test_the_range_and_limit_are_options(morning):
    data = json.loads(
        trace("--sender", "bob@ee.nthu.edu.tw", "--since", "2026-11-19 12:00", "--format", "json")
    )
    assert [r["relay"] for r in data["results"]] == ["smtp2"]
    data = json.loads(trace("--since", "2026-11-19", "--limit", "2", "--format", "json"))
    assert len(data["results"]) == 2 and data["more"] is True
    assert "No message matches." in trace("--sender", "nobody@nowhere.example")


def test_every_run_is_audited_under_the_system_account(morning):
    trace("--queue-id", "4AA091855DA0")
    look = Look.objects.get()
    assert (look.kind, look.user, look.client_ip, look.results) == ("command", None, None, 3)
    assert look.username == f"{getpass.getuser()} (command line)"
    assert look.criteria["queue_id"] == "4AA091855DA0"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--queue-id", "not a queue id"], "--queue-id: A queue ID is 5 to 32 letters"),
        (["--client-ip", "140.114"], "--client-ip: Enter a valid IPv4 or IPv6 address."),
        (["--since", "yesterday"], "--since: Enter a valid date/time."),
        (["--since", "2026-11-20", "--until", "2026-11-19"], "--until: The end of the range"),
        (["--limit", "0"], "--limit: give 1 to 10000"),
    ],
)
def test_bad_options_are_explained(morning, args, message):
    with pytest.raises(CommandError, match=message):
        trace(*args)
    assert not Look.objects.exists()
