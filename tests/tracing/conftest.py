"""The trace's world: three relays' logs of one morning, ingested for real, and staff users.

smtp1: alice's message through the content filter (4AA091855DA0 -> 776E41855DB2): bob
sent, carol deferred twice then bounced; a reject and a SASL failure of her client near
it and another reject hours later; then queue ID 4AA091855DA0 again, a new life: carol
of phys, one recipient refused by the relay and one still deferred (in the queue).
smtp2: the same queue ID once more, bob of ee, sent. smtp3: a message whose start is
before the log begins. Time stands at NOW (2026-11-20 10:00, Taipei).
"""

# ruff: noqa: E501 (real Postfix log lines, quoted whole)

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.utils import translation

from smtplog.ingest.run import ingest
from smtplog.models import Message
from tests.conftest import NOW
from tests.ingest.conftest import write_log

SMTP1 = """
Nov 19 10:30:00 smtp1 postfix/smtpd[9700]: NOQUEUE: reject: RCPT from pc.cs.nthu.edu.tw[140.114.63.228]: 554 5.7.1 <spam@example.net>: Relay access denied; from=<alice@cs.nthu.edu.tw> to=<spam@example.net> proto=ESMTP helo=<pc>
Nov 19 10:35:00 smtp1 postfix/submission/smtpd[9701]: warning: pc.cs.nthu.edu.tw[140.114.63.228]: SASL PLAIN authentication failed: authentication failure, sasl_username=alice
Nov 19 10:40:57 smtp1 postfix/submission/smtpd[9708]: 4AA091855DA0: client=pc.cs.nthu.edu.tw[140.114.63.228], sasl_method=PLAIN, sasl_username=alice
Nov 19 10:40:57 smtp1 postfix/cleanup[9709]: 4AA091855DA0: message-id=<ca10035e@cs.nthu.edu.tw>
Nov 19 10:40:57 smtp1 postfix/qmgr[1005]: 4AA091855DA0: from=<Alice@CS.nthu.edu.tw>, size=391, nrcpt=2 (queue active)
Nov 19 10:40:57 smtp1 postfix/smtpd[9715]: 776E41855DB2: client=localhost[127.0.0.1]
Nov 19 10:40:57 smtp1 postfix/cleanup[9709]: 776E41855DB2: message-id=<ca10035e@cs.nthu.edu.tw>
Nov 19 10:40:57 smtp1 postfix/qmgr[1005]: 776E41855DB2: from=<alice@cs.nthu.edu.tw>, size=888, nrcpt=2 (queue active)
Nov 19 10:40:57 smtp1 postfix/smtp[9710]: 4AA091855DA0: to=<bob@example.com>, relay=127.0.0.1[127.0.0.1]:10024, delay=0.23, delays=0.15/0/0/0.08, dsn=2.0.0, status=sent (250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as 776E41855DB2)
Nov 19 10:40:57 smtp1 postfix/smtp[9710]: 4AA091855DA0: to=<carol@example.org>, relay=127.0.0.1[127.0.0.1]:10024, delay=0.23, delays=0.15/0/0/0.08, dsn=2.0.0, status=sent (250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as 776E41855DB2)
Nov 19 10:40:57 smtp1 postfix/qmgr[1005]: 4AA091855DA0: removed
Nov 19 10:40:59 smtp1 postfix/smtp[9890]: 776E41855DB2: to=<bob@example.com>, relay=mx.example.com[192.0.2.25]:25, delay=1.9, delays=0/0/1.5/0.37, dsn=2.0.0, status=sent (250 2.0.0 OK  1608161352 c34si2363086pgm.445 - gsmtp)
Nov 19 10:40:59 smtp1 postfix/smtp[9891]: 776E41855DB2: to=<carol@example.org>, relay=mx.example.org[192.0.2.26]:25, delay=1.9, delays=0/0/1.5/0.37, dsn=4.2.2, status=deferred (host mx.example.org[192.0.2.26] said: 452 4.2.2 Mailbox full (in reply to RCPT TO command))
Nov 19 14:00:00 smtp1 postfix/smtpd[9702]: NOQUEUE: reject: RCPT from pc.cs.nthu.edu.tw[140.114.63.228]: 554 5.7.1 <far@example.net>: Relay access denied; from=<alice@cs.nthu.edu.tw> to=<far@example.net> proto=ESMTP helo=<pc>
Nov 19 23:50:00 smtp1 postfix/qmgr[1005]: 776E41855DB2: from=<alice@cs.nthu.edu.tw>, size=888, nrcpt=2 (queue active)
Nov 19 23:50:01 smtp1 postfix/smtp[9891]: 776E41855DB2: to=<carol@example.org>, relay=mx.example.org[192.0.2.26]:25, delay=47000, delays=46998/0/1.5/0.4, dsn=4.2.2, status=deferred (host mx.example.org[192.0.2.26] said: 452 4.2.2 Mailbox full (in reply to RCPT TO command))
Nov 20 00:20:01 smtp1 postfix/smtp[9891]: 776E41855DB2: to=<carol@example.org>, relay=mx.example.org[192.0.2.26]:25, delay=48800, delays=48798/0/1.5/0.4, dsn=5.1.1, status=bounced (host mx.example.org[192.0.2.26] said: 550 5.1.1 <carol@example.org> User unknown (in reply to RCPT TO command))
Nov 20 00:20:01 smtp1 postfix/qmgr[1005]: 776E41855DB2: removed
Nov 20 08:00:00 smtp1 postfix/smtpd[9800]: 4AA091855DA0: client=ws.phys.nthu.edu.tw[140.114.81.10]
Nov 20 08:00:00 smtp1 postfix/smtpd[9800]: 4AA091855DA0: reject: RCPT from ws.phys.nthu.edu.tw[140.114.81.10]: 550 5.1.1 <nobody@phys.nthu.edu.tw>: Recipient address rejected: User unknown in local recipient table; from=<carol@phys.nthu.edu.tw> to=<nobody@phys.nthu.edu.tw> proto=ESMTP helo=<ws>
Nov 20 08:00:01 smtp1 postfix/cleanup[9801]: 4AA091855DA0: message-id=<carol-2@phys.nthu.edu.tw>
Nov 20 08:00:01 smtp1 postfix/qmgr[1005]: 4AA091855DA0: from=<carol@phys.nthu.edu.tw>, size=5000, nrcpt=1 (queue active)
Nov 20 08:00:04 smtp1 postfix/smtp[9802]: 4AA091855DA0: to=<erin@slow.example>, relay=none, delay=3, delays=0/0/3/0, dsn=4.4.1, status=deferred (connect to mx.slow.example[192.0.2.40]:25: Connection timed out)
"""

SMTP2 = """
Nov 19 12:00:00 smtp2 postfix/smtpd[500]: 4AA091855DA0: client=lab.ee.nthu.edu.tw[140.114.24.10]
Nov 19 12:00:00 smtp2 postfix/cleanup[501]: 4AA091855DA0: message-id=<bob-1@ee.nthu.edu.tw>
Nov 19 12:00:00 smtp2 postfix/qmgr[502]: 4AA091855DA0: from=<bob@ee.nthu.edu.tw>, size=1200, nrcpt=1 (queue active)
Nov 19 12:00:01 smtp2 postfix/smtp[503]: 4AA091855DA0: to=<dave@example.net>, relay=mx.example.net[192.0.2.30]:25, delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 9F00)
Nov 19 12:00:01 smtp2 postfix/qmgr[502]: 4AA091855DA0: removed
"""

SMTP3 = """
Nov 19 11:00:00 smtp3 postfix/qmgr[700]: 1234ABCDE: from=<dan@cs.nthu.edu.tw>, size=900, nrcpt=1 (queue active)
Nov 19 11:00:02 smtp3 postfix/smtp[701]: 1234ABCDE: to=<frank@example.com>, relay=mx.example.com[192.0.2.25]:25, delay=3600, delays=3599/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 Ok)
Nov 19 11:00:02 smtp3 postfix/qmgr[700]: 1234ABCDE: removed
"""


@pytest.fixture(autouse=True)
def default_language():
    """Requests in the test client activate their language; keep it from leaking."""
    with translation.override(settings.LANGUAGE_CODE):
        yield


@pytest.fixture
def morning(db, tmp_path: Path, frozen) -> dict[str, Message]:
    """The three relays' logs ingested; the messages by a name."""
    paths = []
    for relay, text in (("smtp1", SMTP1), ("smtp2", SMTP2), ("smtp3", SMTP3)):
        (tmp_path / relay).mkdir()
        paths.append(str(write_log(tmp_path / relay / "mail.log", text, NOW)))
    summary = ingest(paths)
    assert not summary.errors
    lives = Message.objects.filter(queue_id="4AA091855DA0", relay="smtp1").order_by("first_seen")
    return {
        "filtered": lives[0],
        "requeued": Message.objects.get(queue_id="776E41855DB2"),
        "other relay": Message.objects.get(queue_id="4AA091855DA0", relay="smtp2"),
        "reused": lives[1],
        "middle": Message.objects.get(queue_id="1234ABCDE"),
    }


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("opr", password="pw", is_staff=True)


@pytest.fixture
def staff_client(staff) -> Client:
    client = Client(REMOTE_ADDR="140.114.1.2")
    client.force_login(staff)
    return client


@pytest.fixture
def superuser_client(django_user_model) -> Client:
    user = django_user_model.objects.create_superuser("root", password="pw")
    client = Client()
    client.force_login(user)
    return client
