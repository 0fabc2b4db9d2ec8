"""Smoke tests of the Traditional Chinese catalogue: the pages and the report."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import translation

from queries.report import build_report, report_message
from tests.conftest import NOW

pytestmark = pytest.mark.django_db


def test_the_form_renders_in_traditional_chinese(campus_client):
    campus_client.cookies["django_language"] = "zh-hant"
    html = campus_client.get("/").content.decode()
    for text in (
        "SMTP 寄信紀錄查詢系統",
        "電子信箱",
        "開始日期",
        "結束日期",
        "驗證碼",
        "換一張圖片",
        "送出",
        "重填",
        "繁體中文",
    ):
        assert text in html


def test_the_help_page_renders_in_both_languages(campus_client):
    assert "Statuses" in campus_client.get("/help/").content.decode()
    campus_client.cookies["django_language"] = "zh-hant"
    html = campus_client.get("/help/").content.decode()
    assert "如何確認信件是否寄達" in html and "狀態說明" in html and "退回" in html


def test_the_report_renders_in_traditional_chinese(mail_events, frozen):
    report = build_report(
        "alice@cs.nthu.edu.tw",
        NOW.date() - dt.timedelta(days=30),
        NOW.date(),
        client_ip="140.114.63.228",
        language="zh-hant",
    )
    message = report_message(report)
    html = message.alternatives[0][0]
    for part in (message.body, html):
        for text in (
            "查詢者 IP",
            "統計摘要",
            "詳細紀錄",
            "總計",
            "回應訊息說明",
            "收件人地址不存在",
        ):
            assert text in part
    assert message.subject.startswith("SMTP 寄信紀錄報表")
    assert translation.get_language() == "en"  # nothing leaked out of the override


def test_the_form_chooses_the_pages_language_by_default(campus_client):
    campus_client.cookies["django_language"] = "zh-hant"
    html = campus_client.get("/").content.decode()
    assert 'value="zh-hant" id="id_language_1" required checked' in html
