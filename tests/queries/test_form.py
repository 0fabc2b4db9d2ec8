"""The form: defaults, the address rules, the dates, the captcha, the language."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from captcha.models import CaptchaStore

from queries.forms import QueryForm
from queries.models import Query
from tests.conftest import NOW
from tests.services import require_program

pytestmark = pytest.mark.django_db
TODAY = NOW.date()


def errors(data: dict) -> dict:
    form = QueryForm(data)
    form.is_valid()
    return form.errors


def test_the_form_defaults_to_the_last_31_days(campus_client, frozen):
    page = campus_client.get("/").content.decode()
    assert f'value="{TODAY - dt.timedelta(days=30):%Y-%m-%d}"' in page
    assert f'value="{TODAY:%Y-%m-%d}"' in page
    assert 'type="date"' in page
    assert "/captcha/image/" in page
    assert 'type="reset"' in page


def test_another_image_without_script_keeps_what_was_typed(campus_client, frozen):
    first = campus_client.get("/").content.decode()
    key = first.split('name="captcha_0" value="')[1][:40]
    typed = {
        "language": "zh-hant",
        "email": "Alice@CS.nthu.edu.tw",
        "begin": "2026-11-01",
        "end": "2026-11-05",
        "captcha_0": key,
        "captcha_1": "12",
        "token": "0123456789abcdef0123456789abcdef",
        "new-code": "1",
    }
    response = campus_client.post("/", typed)
    page = response.content.decode()
    assert response.status_code == 200
    assert 'value="Alice@CS.nthu.edu.tw"' in page
    assert 'value="2026-11-01"' in page and 'value="2026-11-05"' in page
    assert 'value="zh-hant" id="id_language_1" required checked' in page
    assert "已顯示新的圖片" in page  # said in the language chosen
    assert key not in page and CaptchaStore.objects.count() == 2  # a new challenge
    assert 'class="errorlist"' not in page and not Query.objects.exists()  # nothing checked
    assert "0123456789abcdef0123456789abcdef" not in page  # a page of its own


def test_the_captcha_is_six_digits_in_an_image_shown_at_its_real_size(campus_client):
    from io import BytesIO

    from PIL import Image

    page = campus_client.get("/").content.decode()
    key = page.split('name="captcha_0" value="')[1][:40]
    store = CaptchaStore.objects.get(hashkey=key)
    assert store.challenge == store.response and re.fullmatch(r"[0-9]{6}", store.response)
    assert 'width="180" height="56"' in page
    image = Image.open(BytesIO(campus_client.get(f"/captcha/image/{key}/").content))
    assert image.size == (180, 56)
    # Dark ink only where the digits are: no noise lines or dots across the image.
    ink = image.convert("L").point(lambda v: 255 if v < 128 else 0).getbbox()
    left, top, right, bottom = ink
    assert bottom - top >= 22  # digits drawn large
    assert left > 5 and right < 175  # and nothing reaching the image's edges


def test_the_code_can_be_heard(campus_client):
    require_program("flite")
    page = campus_client.get("/").content.decode()
    key = page.split('name="captcha_0" value="')[1][:40]
    assert f'href="/captcha/audio/{key}.wav"' in page
    response = campus_client.get(f"/captcha/audio/{key}.wav")
    assert response.status_code == 200 and response["Content-Type"] == "audio/wav"
    audio = b"".join(response.streaming_content)
    assert audio[:4] == b"RIFF" and audio[8:12] == b"WAVE"
    assert len(audio) > 16000  # some seconds of speech: six digits read one by one


@pytest.mark.parametrize(
    "typed, stored",
    [
        ("alice@cs.nthu.edu.tw", "alice@cs.nthu.edu.tw"),
        ("  Alice@CS.NTHU.edu.tw ", "alice@cs.nthu.edu.tw"),
        ("ａｌｉｃｅ＠ｃｓ．ｎｔｈｕ．ｅｄｕ．ｔｗ", "alice@cs.nthu.edu.tw"),  # full-width, NFKC
        ("alice@nthu.edu.tw", "alice@nthu.edu.tw"),
        ("alice@cs.nthu.edu.tw\r\n", "alice@cs.nthu.edu.tw"),  # trimmed
        ("a.b+tag@mx.ee.nthu.edu.tw", "a.b+tag@mx.ee.nthu.edu.tw"),
    ],
)
def test_it_normalizes_good_addresses(typed, stored, form_data, frozen):
    form = QueryForm(form_data(email=typed))
    assert form.is_valid(), form.errors
    assert form.cleaned_data["email"] == stored


@pytest.mark.parametrize(
    "address",
    [
        "alice@cs.nthu.edu.tw\r\nBcc: victim@example.com",
        "alice@cs.nthu.edu.tw\nbob@cs.nthu.edu.tw",
        "alice@cs.nthu.edu.tw\x00",
        "ali\rce@cs.nthu.edu.tw",
        "ali ce@cs.nthu.edu.tw",
        '"alice"@cs.nthu.edu.tw',
        '"a@b"@cs.nthu.edu.tw',
        "victim%example.com@cs.nthu.edu.tw",
        "example.com!victim@cs.nthu.edu.tw",
        "alice@[140.114.63.1]",
        "alice@cs.nthu.edu.tw.evil.org",
        "alice@evilnthu.edu.tw",
        "alice@nthu.edu.tw.",
        "alice@nthu.edu.tw@evil.org",
        "alice@evil.org",
        "alice@nthu.еdu.tw",  # a Cyrillic е
        "alice@-cs.nthu.edu.tw",
        "alice@cs..nthu.edu.tw",
        ".alice@cs.nthu.edu.tw",
        "alice.@cs.nthu.edu.tw",
        "al..ice@cs.nthu.edu.tw",
        "@cs.nthu.edu.tw",
        "alice@",
        "alice",
        "a" * 65 + "@cs.nthu.edu.tw",
        "alice@" + "a" * 64 + ".nthu.edu.tw",
        "alice@" + ".".join(["a" * 60] * 4) + ".nthu.edu.tw",
        "<alice@cs.nthu.edu.tw>",
        "alice@cs.nthu.edu.tw,bob@cs.nthu.edu.tw",
        "<>",
    ],
)
def test_it_refuses_hostile_addresses(address, form_data, frozen):
    assert "email" in errors(form_data(email=address))


def test_each_refusal_is_a_clear_field_error(form_data, frozen):
    assert "only for addresses of the university" in str(
        errors(form_data(email="a@cs.nthu.edu.tw.evil.org"))["email"]
    )
    assert "no quotes" in str(errors(form_data(email='"a"@cs.nthu.edu.tw'))["email"])


@pytest.mark.parametrize(
    "begin, end, field",
    [
        (TODAY - dt.timedelta(days=31), TODAY, "begin"),  # before the retention window
        (TODAY, TODAY + dt.timedelta(days=1), "end"),  # the future
        (TODAY, TODAY - dt.timedelta(days=1), "end"),  # end before begin
    ],
)
def test_dates_stay_in_the_retention_window_and_in_order(begin, end, field, form_data, frozen):
    assert field in errors(form_data(begin=begin.isoformat(), end=end.isoformat()))


def test_one_day_ranges_and_the_window_edges_pass(form_data, frozen):
    first = TODAY - dt.timedelta(days=30)
    assert not errors(form_data(begin=first.isoformat(), end=first.isoformat()))
    assert not errors(form_data(begin=TODAY.isoformat(), end=TODAY.isoformat()))


def test_a_wrong_captcha_is_refused_and_burnt(campus_client, form_data, settings, frozen):
    from captcha.conf import settings as captcha_settings

    captcha_settings.CAPTCHA_TEST_MODE = False
    try:
        key = CaptchaStore.generate_key()
        answer = CaptchaStore.objects.get(hashkey=key).response
        response = campus_client.post("/", form_data(captcha_0=key, captcha_1="wrong"))
        assert response.status_code == 200
        assert "verification code was wrong" in response.content.decode()
        assert not CaptchaStore.objects.filter(hashkey=key).exists()
        # the right answer is no good any more: the challenge is gone
        again = campus_client.post("/", form_data(captcha_0=key, captcha_1=answer))
        assert "verification code was wrong" in again.content.decode()
        assert not Query.objects.exists()
        # a fresh challenge answered right passes, once
        key = CaptchaStore.generate_key()
        answer = CaptchaStore.objects.get(hashkey=key).response
        ok = campus_client.post("/", form_data(captcha_0=key, captcha_1=answer), follow=True)
        assert "Report requested" in ok.content.decode()
        reused = campus_client.post(
            "/", form_data(captcha_0=key, captcha_1=answer, email="bob@cs.nthu.edu.tw")
        )
        assert "verification code was wrong" in reused.content.decode()
        assert Query.objects.count() == 1
    finally:
        captcha_settings.CAPTCHA_TEST_MODE = True


def test_errors_follow_the_language_chosen_in_the_form(campus_client, form_data, frozen):
    page = campus_client.post("/", form_data(language="zh-hant", email="a@evil.org"))
    html = page.content.decode()
    assert 'lang="zh-hant"' in html
    assert "僅限" in html


def test_an_expired_challenge_is_refused_and_burnt(campus_client, form_data):
    """OnceCaptchaField's one statement keeps the library's rule on expiry."""
    from captcha.conf import settings as captcha_settings
    from django.utils import timezone

    captcha_settings.CAPTCHA_TEST_MODE = False
    try:
        key = CaptchaStore.generate_key()
        store = CaptchaStore.objects.get(hashkey=key)
        CaptchaStore.objects.filter(hashkey=key).update(expiration=timezone.now())
        response = campus_client.post(
            "/", form_data(captcha_0=key, captcha_1=f"  {store.response} ")
        )
        assert "verification code was wrong or has expired" in response.content.decode()
        assert not CaptchaStore.objects.filter(hashkey=key).exists()
        assert not Query.objects.exists()
    finally:
        captcha_settings.CAPTCHA_TEST_MODE = True
