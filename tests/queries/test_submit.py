"""Submitting: every query recorded, limits from the database, one report per submit."""

from __future__ import annotations

import datetime as dt
import re
from unittest import mock

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from kombu.exceptions import OperationalError

from queries.models import Query
from tests.conftest import CAMPUS_IP, NOW

pytestmark = pytest.mark.django_db


def submit(client: Client, data: dict, capture) -> object:
    """POST the form and follow its redirect to the answer page, as a browser does."""
    with capture(execute=True):
        return client.post("/", data, follow=True)


def test_a_query_is_recorded_and_its_report_sent_to_that_address_only(
    campus_client, form_data, django_capture_on_commit_callbacks, mail_events, frozen
):
    response = submit(campus_client, form_data(), django_capture_on_commit_callbacks)
    assert response.status_code == 200
    assert "Report requested" in response.content.decode()
    query = Query.objects.get()
    assert (query.address, query.client_ip, query.client_net, query.language) == (
        "alice@cs.nthu.edu.tw",
        CAMPUS_IP,
        CAMPUS_IP,
        "en",
    )
    assert query.begin == NOW.date() - dt.timedelta(days=30) and query.end == NOW.date()
    assert query.created == NOW
    assert query.outcome == Query.Outcome.SENT and query.sent_at == NOW
    assert query.attempts == 1
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["alice@cs.nthu.edu.tw"] and not message.cc and not message.bcc


def test_the_task_gets_the_query_id_only(
    campus_client, form_data, django_capture_on_commit_callbacks, frozen
):
    with (
        mock.patch("queries.views.enqueue_report") as enqueue,
        django_capture_on_commit_callbacks(execute=True),
    ):
        campus_client.post("/", form_data())
    enqueue.assert_called_once_with(Query.objects.get().id)


def test_the_answer_is_the_same_with_and_without_records(
    campus_client, form_data, django_capture_on_commit_callbacks, mail_events, frozen
):
    def page(address: str) -> str:
        with CaptureQueriesContext(connection) as sql, django_capture_on_commit_callbacks():
            html = campus_client.post("/", form_data(email=address), follow=True)
            html = html.content.decode()
        assert not [
            q
            for q in sql.captured_queries
            if "smtplog_event" in q["sql"] or "smtplog_dailycounter" in q["sql"]
        ]
        html = re.sub(r'name="csrfmiddlewaretoken" value="\w+"', "", html)
        html = re.sub(r"/answer/\w+/", "/answer/TOKEN/", html)
        return html.replace(address, "ADDRESS")

    assert page("alice@cs.nthu.edu.tw") == page("nobody@cs.nthu.edu.tw")


def test_a_double_submit_sends_one_report(
    campus_client, form_data, django_capture_on_commit_callbacks, frozen
):
    data = form_data(token="0123456789abcdef0123456789abcdef")
    first = submit(campus_client, data, django_capture_on_commit_callbacks)
    second = submit(campus_client, data, django_capture_on_commit_callbacks)
    assert first.status_code == second.status_code == 200
    assert "Report requested" in second.content.decode()
    assert Query.objects.count() == 1
    assert len(mail.outbox) == 1


def test_the_same_page_sent_again_from_another_network_gets_the_first_answer(
    form_data, django_capture_on_commit_callbacks, frozen
):
    # The client moved (a new DHCP address, IPv4 to IPv6) and sent the page again with a
    # fresh captcha: it used to fail with an IntegrityError (a 500).
    data = form_data(token="0123456789abcdef0123456789abcdef")
    first = submit(Client(REMOTE_ADDR="140.114.1.1"), data, django_capture_on_commit_callbacks)
    again = submit(Client(REMOTE_ADDR="140.114.200.7"), data, django_capture_on_commit_callbacks)
    assert first.status_code == again.status_code == 200
    assert "Report requested" in again.content.decode()
    assert Query.objects.get().client_ip == "140.114.1.1"
    assert len(mail.outbox) == 1


def test_the_same_page_sent_from_another_network_for_another_address_is_a_new_query(
    form_data, django_capture_on_commit_callbacks, frozen
):
    data = form_data(token="0123456789abcdef0123456789abcdef")
    submit(Client(REMOTE_ADDR="140.114.1.1"), data, django_capture_on_commit_callbacks)
    other = data | {"email": "bob@cs.nthu.edu.tw"}
    again = submit(Client(REMOTE_ADDR="140.114.200.7"), other, django_capture_on_commit_callbacks)
    assert again.status_code == 200 and "bob@cs.nthu.edu.tw" in again.content.decode()
    assert sorted(Query.objects.values_list("address", "client_ip")) == [
        ("alice@cs.nthu.edu.tw", "140.114.1.1"),
        ("bob@cs.nthu.edu.tw", "140.114.200.7"),
    ]
    assert sorted(m.to[0] for m in mail.outbox) == ["alice@cs.nthu.edu.tw", "bob@cs.nthu.edu.tw"]


def test_a_parallel_double_submit_records_one_query(
    campus_client, form_data, django_capture_on_commit_callbacks, frozen
):
    token = "0123456789abcdef0123456789abcdef"
    first = Query.objects.create(
        address="alice@cs.nthu.edu.tw",
        begin=NOW.date(),
        end=NOW.date(),
        language="en",
        created=NOW,
        client_net=CAMPUS_IP,
        form_token=token,
    )
    # Both submits passed the first check before either inserted: the unique token decides.
    with (
        mock.patch("queries.views.first_query_of", side_effect=[None, first]),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = campus_client.post("/", form_data(token=token))
    assert response.status_code == 303 and response["Location"] == f"/answer/{token}/"
    assert "Report requested" in campus_client.get(response["Location"]).content.decode()
    assert Query.objects.count() == 1 and not mail.outbox


def test_an_address_gets_at_most_three_reports_a_day(
    campus_client, form_data, django_capture_on_commit_callbacks, frozen, settings
):
    for n in range(3):
        ok = submit(
            Client(REMOTE_ADDR=f"140.114.1.{n}"), form_data(), django_capture_on_commit_callbacks
        )
        assert ok.status_code == 200
    refused = submit(campus_client, form_data(), django_capture_on_commit_callbacks)
    assert refused.status_code == 429
    assert "Too many requests" in refused.content.decode()
    assert len(mail.outbox) == 3
    assert Query.objects.filter(outcome=Query.Outcome.LIMITED).count() == 1
    # other addresses are not affected; a day later this one is free again
    assert (
        submit(
            campus_client, form_data(email="bob@cs.nthu.edu.tw"), django_capture_on_commit_callbacks
        ).status_code
        == 200
    )
    frozen.shift(dt.timedelta(hours=24, seconds=1))
    assert submit(campus_client, form_data(), django_capture_on_commit_callbacks).status_code == 200


def test_plus_tags_of_one_mailbox_share_its_limit_and_each_gets_its_mail(
    form_data, django_capture_on_commit_callbacks, frozen
):
    def ask(n: int, address: str):
        client = Client(REMOTE_ADDR=f"140.114.2.{n}")
        return submit(client, form_data(email=address), django_capture_on_commit_callbacks)

    assert ask(1, "alice+1@cs.nthu.edu.tw").status_code == 200
    assert ask(2, "alice@cs.nthu.edu.tw").status_code == 200
    assert ask(3, "alice+x.y@cs.nthu.edu.tw").status_code == 200
    assert ask(4, "alice+4@cs.nthu.edu.tw").status_code == 429
    assert ask(5, "alice@cs.nthu.edu.tw").status_code == 429
    assert [m.to for m in mail.outbox] == [
        ["alice+1@cs.nthu.edu.tw"],
        ["alice@cs.nthu.edu.tw"],
        ["alice+x.y@cs.nthu.edu.tw"],
    ]
    # Another mailbox of the same name elsewhere is another mailbox.
    assert ask(6, "alice+1@ee.nthu.edu.tw").status_code == 200


def test_a_client_ip_asks_at_most_twenty_an_hour(
    form_data, django_capture_on_commit_callbacks, frozen
):
    client = Client(REMOTE_ADDR=CAMPUS_IP)
    for n in range(20):
        assert (
            submit(
                client, form_data(email=f"u{n}@cs.nthu.edu.tw"), django_capture_on_commit_callbacks
            ).status_code
            == 200
        )
    assert (
        submit(
            client, form_data(email="u99@cs.nthu.edu.tw"), django_capture_on_commit_callbacks
        ).status_code
        == 429
    )
    assert (
        submit(
            Client(REMOTE_ADDR="140.114.9.9"),
            form_data(email="u99@cs.nthu.edu.tw"),
            django_capture_on_commit_callbacks,
        ).status_code
        == 200
    )
    frozen.shift(dt.timedelta(hours=1, seconds=1))
    assert (
        submit(
            client, form_data(email="u98@cs.nthu.edu.tw"), django_capture_on_commit_callbacks
        ).status_code
        == 200
    )


def test_ipv6_clients_are_limited_per_64(
    form_data, django_capture_on_commit_callbacks, frozen, settings
):
    import ipaddress

    settings.SMTPLOG_CAMPUS_NETWORKS = [ipaddress.ip_network("2001:288:1001::/48")]
    settings.SMTPLOG_LIMIT_PER_IP = 2
    for n in (1, 2):
        client = Client(REMOTE_ADDR=f"2001:288:1001:7::{n}")
        assert (
            submit(
                client, form_data(email=f"u{n}@cs.nthu.edu.tw"), django_capture_on_commit_callbacks
            ).status_code
            == 200
        )
    same_64 = Client(REMOTE_ADDR="2001:288:1001:7:ffff::3")
    assert (
        submit(
            same_64, form_data(email="u3@cs.nthu.edu.tw"), django_capture_on_commit_callbacks
        ).status_code
        == 429
    )
    other_64 = Client(REMOTE_ADDR="2001:288:1001:8::3")
    assert (
        submit(
            other_64, form_data(email="u3@cs.nthu.edu.tw"), django_capture_on_commit_callbacks
        ).status_code
        == 200
    )
    assert Query.objects.filter(client_net="2001:288:1001:7::/64").count() == 3


def test_the_limited_page_is_localized(
    campus_client, form_data, django_capture_on_commit_callbacks, frozen, settings
):
    settings.SMTPLOG_LIMIT_PER_ADDRESS = 1
    submit(campus_client, form_data(), django_capture_on_commit_callbacks)
    refused = submit(
        campus_client, form_data(language="zh-hant"), django_capture_on_commit_callbacks
    )
    assert refused.status_code == 429
    assert "請求次數過多" in refused.content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_broker_outage_shows_the_delay_page_and_keeps_the_query(campus_client, form_data, frozen):
    with mock.patch(
        "queries.tasks.send_report.apply_async",
        side_effect=OperationalError("Error 111 connecting to 127.0.0.1:1"),
    ):
        response = campus_client.post("/", form_data(language="zh-hant"), follow=True)
    assert response.status_code == 200
    assert "延遲" in response.content.decode()
    query = Query.objects.get()
    assert query.outcome == Query.Outcome.PENDING and query.attempts == 0
    assert not mail.outbox


def test_the_language_chosen_in_the_form_sticks(
    campus_client, form_data, django_capture_on_commit_callbacks, frozen
):
    response = submit(
        campus_client, form_data(language="zh-hant"), django_capture_on_commit_callbacks
    )
    assert response.redirect_chain[0][1] == 303
    assert campus_client.cookies["django_language"].value == "zh-hant"
    assert Query.objects.get().language == "zh-hant"
    assert "[SMTP" not in mail.outbox[0].subject
    assert "寄信紀錄" in mail.outbox[0].subject


def test_a_submit_redirects_to_its_answer_and_reloading_it_sends_nothing_more(
    campus_client, form_data, django_capture_on_commit_callbacks, frozen
):
    token = "0123456789abcdef0123456789abcdef"
    with django_capture_on_commit_callbacks(execute=True):
        response = campus_client.post("/", form_data(token=token))
    assert response.status_code == 303
    assert response["Location"] == f"/answer/{token}/"
    for _reload in range(3):
        page = campus_client.get(f"/answer/{token}/")
        assert page.status_code == 200
        assert "Report requested" in page.content.decode()
    assert Query.objects.count() == 1 and len(mail.outbox) == 1


def test_the_answer_shows_what_the_form_had_and_nothing_more(
    campus_client, form_data, django_capture_on_commit_callbacks, frozen
):
    response = submit(
        campus_client, form_data(email="Alice@CS.nthu.edu.tw"), django_capture_on_commit_callbacks
    )
    text = re.sub(r"<[^>]+>", " ", response.content.decode())
    assert "alice@cs.nthu.edu.tw" in text  # the address as the form normalized it
    assert (
        f"{NOW.date() - dt.timedelta(days=30):%Y/%m/%d}" in text
        and f"{NOW.date():%Y/%m/%d}" in text
    )
    assert CAMPUS_IP not in text  # the client IP is recorded for staff, not shown


def test_an_answer_is_for_the_network_that_asked(
    campus_client, outside_client, form_data, django_capture_on_commit_callbacks, frozen
):
    token = "0123456789abcdef0123456789abcdef"
    submit(campus_client, form_data(token=token), django_capture_on_commit_callbacks)
    other = Client(REMOTE_ADDR="140.114.9.9").get(f"/answer/{token}/")
    assert other.status_code == 404 and "alice@" not in other.content.decode()
    assert "Nothing to show here" in other.content.decode()
    assert outside_client.get(f"/answer/{token}/").status_code == 403
    assert campus_client.get("/answer/ffffffffffffffffffffffffffffffff/").status_code == 404


def test_a_page_without_a_token_still_gets_an_answer_page(
    campus_client, form_data, django_capture_on_commit_callbacks, frozen
):
    response = submit(
        campus_client, form_data(token="not-a-token"), django_capture_on_commit_callbacks
    )
    assert response.status_code == 200 and "Report requested" in response.content.decode()
    assert re.fullmatch(r"/answer/[0-9a-f]{32}/", response.redirect_chain[0][0])
