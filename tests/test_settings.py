"""Settings: the defaults run, every setting parses, bad values stop start-up clearly.

Settings are read once, at import, so most of these tests load them in a fresh
Python process with an environment they control completely.
"""

from __future__ import annotations

import email
import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMessage, get_connection

from smtplog import conf

BASE_DIR = Path(__file__).resolve().parent.parent
VAR = BASE_DIR / "var"
# A key Django's deploy check accepts: 50+ characters, 5+ different ones, no prefix.
STRONG_SECRET = "k3X9#vQ2!mZ7@pL5$wR8^tY4&uJ6*nB1(cD0)fG3-hK7_sE9+aW2=oI5"

DUMP = """
import json, django
django.setup()
from django.conf import settings
names = [n for n in dir(settings) if n.isupper()]
print(json.dumps({n: getattr(settings, n) for n in names}, default=str))
"""


def clean_env(**variables: str) -> dict[str, str]:
    """Only what a process needs to start, plus the variables under test."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/"),
        "DJANGO_SETTINGS_MODULE": "smtplog.settings",
    }
    env.update(variables)
    return env


def load_settings(**variables: str) -> dict:
    """The settings as a fresh process started with exactly these variables sees them."""
    done = subprocess.run(
        [sys.executable, "-c", DUMP],
        cwd=BASE_DIR,
        env=clean_env(**variables),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def manage(*args: str, **variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=clean_env(**variables),
        capture_output=True,
        text=True,
        timeout=60,
    )


# Every SMTPLOG_* setting and its default. A new setting needs a line here, so its
# default is decided, documented in the README and tested.
SMTPLOG_DEFAULTS = {
    "SMTPLOG_CAMPUS_DOMAINS": ["nthu.edu.tw"],
    "SMTPLOG_CAMPUS_NETWORKS": ["140.114.0.0/16", "127.0.0.0/8", "::1/128"],
    "SMTPLOG_STAFF_NETWORKS": ["140.114.0.0/16", "127.0.0.0/8", "::1/128"],
    "SMTPLOG_TRUSTED_PROXY_COUNT": 0,
    "SMTPLOG_RETENTION_DAYS": 31,
    "SMTPLOG_LIMIT_PER_ADDRESS": 3,
    "SMTPLOG_LIMIT_PER_IP": 20,
    "SMTPLOG_REPORT_BODY_ROWS": 150,
    "SMTPLOG_SEND_TIME_LIMIT": 90,
    "SMTPLOG_SEND_RETRY_BACKOFF": 30,
    "SMTPLOG_ALERT_SUM_THRESHOLD": 250,
    "SMTPLOG_ALERT_BOUNCE_THRESHOLD": 10,
    "SMTPLOG_ALERT_TIME": [1, 0],
    "SMTPLOG_ALERT_CATCHUP_DAYS": 7,
    "SMTPLOG_CONTACT_EMAIL": "opr@net.nthu.edu.tw",
    "SMTPLOG_VPN_URL": "https://net.nthu.edu.tw/netsys/service:sslvpn",
    "SMTPLOG_MAILLOG_GLOBS": [str(VAR / "maillog" / "*" / "mail.log*")],
    "SMTPLOG_INTERNAL_NEXT_HOPS": ["127.0.0.1", "::1", "localhost"],
    "SMTPLOG_INGEST_BATCH_LINES": 50000,
    "SMTPLOG_INGEST_WORKERS": 4,
    "SMTPLOG_INGEST_PARALLEL_BYTES": 16 * 2**20,
    "SMTPLOG_HEALTH_LOG_LAG": 1800,
}


@pytest.fixture(scope="module")
def defaults() -> dict:
    return load_settings()


@pytest.fixture(scope="module")
def loaded() -> dict:
    """The settings with every variable set as in production."""
    return load_settings(**PRODUCTION)


class TestDefaults:
    def test_the_database_is_sqlite_under_var(self, defaults):
        db = defaults["DATABASES"]["default"]
        assert db["ENGINE"] == "django.db.backends.sqlite3"
        assert Path(db["NAME"]) == VAR / "smtplog.sqlite3"

    def test_celery_runs_tasks_eagerly_without_a_broker(self, defaults):
        assert defaults["CELERY_BROKER_URL"] == ""
        assert defaults["CELERY_TASK_ALWAYS_EAGER"] is True

    def test_mail_is_written_as_eml_files_under_var(self, defaults):
        assert defaults["EMAIL_BACKEND"] == "smtplog.mail.EmlFileBackend"
        assert Path(defaults["EMAIL_FILE_PATH"]) == VAR / "mail"

    def test_debug_is_on_and_the_site_is_local_and_taipei(self, defaults):
        assert defaults["DEBUG"] is True
        assert defaults["TIME_ZONE"] == "Asia/Taipei"
        assert defaults["ALLOWED_HOSTS"] == ["127.0.0.1", "localhost", "[::1]"]
        assert defaults["SECURE_SSL_REDIRECT"] is False

    def test_every_smtplog_setting_has_its_documented_default(self, defaults):
        smtplog = {name: value for name, value in defaults.items() if name.startswith("SMTPLOG_")}
        new = sorted(smtplog.keys() - SMTPLOG_DEFAULTS.keys())
        assert not new, f"add the default of {new} to SMTPLOG_DEFAULTS (and PRODUCTION) here"
        assert smtplog == SMTPLOG_DEFAULTS


class TestHelpers:
    """Each helper of smtplog/conf.py: good values parse, bad ones name the variable."""

    @pytest.mark.parametrize(
        ("raw", "value"),
        [
            ("1", True),
            ("true", True),
            (" YES ", True),
            ("on", True),
            ("0", False),
            ("false", False),
            ("No", False),
            ("off", False),
            ("", False),
        ],
    )
    def test_env_bool_reads_the_usual_spellings(self, raw, value):
        assert conf.env_bool("X", not value, environ={"X": raw}) is value

    def test_env_bool_falls_back_to_its_default(self):
        assert conf.env_bool("X", True, environ={}) is True
        assert conf.env_bool("X", False, environ={}) is False

    def test_env_int_reads_numbers_within_bounds(self):
        assert conf.env_int("X", 5, environ={"X": " 42 "}) == 42
        assert conf.env_int("X", 5, environ={}) == 5
        assert conf.env_int("X", 5, minimum=0, maximum=10, environ={"X": "10"}) == 10

    @pytest.mark.parametrize(
        ("raw", "message"),
        [
            ("abc", "X: expected a whole number, got 'abc'"),
            ("1.5", "X: expected a whole number"),
            ("-1", "X: must be at least 0, got -1"),
            ("11", "X: must be at most 10, got 11"),
        ],
    )
    def test_env_int_refuses_bad_numbers(self, raw, message):
        with pytest.raises(ImproperlyConfigured, match=message.replace(".", r"\.")):
            conf.env_int("X", 5, minimum=0, maximum=10, environ={"X": raw})

    def test_env_list_splits_on_commas_and_whitespace(self):
        environ = {"X": "a.example, b.example\n c.example,,"}
        assert conf.env_list("X", [], environ=environ) == ["a.example", "b.example", "c.example"]
        assert conf.env_list("X", ["d"], environ={}) == ["d"]
        assert conf.env_list("X", ["d"], environ={"X": ""}) == []

    def test_env_str_strips_and_defaults(self):
        assert conf.env_str("X", "d", environ={"X": "  value "}) == "value"
        assert conf.env_str("X", "d", environ={}) == "d"

    def test_env_domains_lowercases_and_drops_the_trailing_dot(self):
        environ = {"X": "NTHU.edu.tw., cs.nthu.edu.tw"}
        assert conf.env_domains("X", [], environ=environ) == ["nthu.edu.tw", "cs.nthu.edu.tw"]

    @pytest.mark.parametrize("raw", ["", "not_a_domain", "localhost", "-bad.example", "a..b"])
    def test_env_domains_refuses_what_is_not_a_mail_domain(self, raw):
        with pytest.raises(ImproperlyConfigured, match="^X: "):
            conf.env_domains("X", [], environ={"X": raw})

    def test_env_networks_reads_ipv4_and_ipv6_cidrs(self):
        environ = {"X": "140.114.0.0/16 2001:288:1001::/48, 127.0.0.1"}
        assert conf.env_networks("X", [], environ=environ) == [
            ipaddress.ip_network("140.114.0.0/16"),
            ipaddress.ip_network("2001:288:1001::/48"),
            ipaddress.ip_network("127.0.0.1/32"),
        ]

    @pytest.mark.parametrize("raw", ["140.114.0.1/16", "140.114.0.0/33", "campus", "::1/129"])
    def test_env_networks_refuses_host_bits_and_nonsense(self, raw):
        with pytest.raises(ImproperlyConfigured, match=f"^X: '{raw}' is not a CIDR network"):
            conf.env_networks("X", [], environ={"X": raw})

    def test_env_timezone_accepts_iana_names(self):
        assert conf.env_timezone("X", "UTC", environ={"X": "Europe/Paris"}) == "Europe/Paris"
        assert conf.env_timezone("X", "Asia/Taipei", environ={}) == "Asia/Taipei"

    @pytest.mark.parametrize("raw", ["Mars/Base", "", "../etc/passwd"])
    def test_env_timezone_refuses_unknown_zones(self, raw):
        with pytest.raises(ImproperlyConfigured, match="^X: .* is not a known time zone"):
            conf.env_timezone("X", "UTC", environ={"X": raw})

    def test_env_hour_minute_reads_a_clock_time(self):
        assert conf.env_hour_minute("X", "01:00", environ={"X": "23:59"}) == (23, 59)
        assert conf.env_hour_minute("X", "01:00", environ={"X": "7:05"}) == (7, 5)
        assert conf.env_hour_minute("X", "01:00", environ={}) == (1, 0)

    @pytest.mark.parametrize("raw", ["24:00", "12:60", "noon", "1:5", ""])
    def test_env_hour_minute_refuses_other_text(self, raw):
        with pytest.raises(ImproperlyConfigured, match="^X: expected a time as HH:MM"):
            conf.env_hour_minute("X", "01:00", environ={"X": raw})

    def test_env_email_accepts_an_address(self):
        assert conf.env_email("X", "a@b.example", environ={"X": "opr@net.nthu.edu.tw"}) == (
            "opr@net.nthu.edu.tw"
        )

    @pytest.mark.parametrize("raw", ["nobody", "a@b", "<a@b.example>", "a b@c.example", ""])
    def test_env_email_refuses_what_is_not_an_address(self, raw):
        with pytest.raises(ImproperlyConfigured, match="^X: .* is not an email address"):
            conf.env_email("X", "a@b.example", environ={"X": raw})

    @pytest.mark.parametrize("raw", ["https://vpn.example.edu/", "http://a.example/x?y=1", ""])
    def test_env_url_accepts_http_urls_and_empty(self, raw):
        assert conf.env_url("X", "https://d.example/", environ={"X": raw}) == raw

    @pytest.mark.parametrize(
        "raw", ["vpn.example.edu", "javascript:alert(1)", "https://", "ftp://a.b/"]
    )
    def test_env_url_refuses_other_text(self, raw):
        with pytest.raises(ImproperlyConfigured, match="^X: expected an http:// or https:// URL"):
            conf.env_url("X", "https://d.example/", environ={"X": raw})


PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": STRONG_SECRET,
    "ALLOWED_HOSTS": "smtplog.net.nthu.edu.tw",
    "SITE_URL": "https://smtplog.net.nthu.edu.tw/",
    "CSRF_TRUSTED_ORIGINS": "https://smtplog.net.nthu.edu.tw",
    "SECURE_PROXY_SSL_HEADER": "1",
    "DATABASE_URL": "postgres://smtplog:s%40cret@db.net.nthu.edu.tw:5432/smtplog",
    "DB_CONN_MAX_AGE": "60",
    "CELERY_BROKER_URL": "redis://redis.net.nthu.edu.tw:6379/0",
    "CELERY_TASK_SOFT_TIME_LIMIT": "300",
    "EMAIL_HOST": "smtp.net.nthu.edu.tw",
    "EMAIL_PORT": "587",
    "EMAIL_HOST_USER": "smtplog",
    "EMAIL_HOST_PASSWORD": "mail-secret",
    "EMAIL_USE_TLS": "yes",
    "DEFAULT_FROM_EMAIL": "smtp-log-query@net.nthu.edu.tw",
    "TIME_ZONE": "Asia/Taipei",
    "SMTPLOG_VAR_DIR": "/srv/smtplog",
    "SMTPLOG_CAMPUS_DOMAINS": "nthu.edu.tw, NTHU.org.tw.",
    "SMTPLOG_CAMPUS_NETWORKS": "140.114.0.0/16,2001:288:1001::/48",
    "SMTPLOG_STAFF_NETWORKS": "140.114.63.0/24",
    "SMTPLOG_TRUSTED_PROXY_COUNT": "1",
    "SMTPLOG_RETENTION_DAYS": "62",
    "SMTPLOG_LIMIT_PER_ADDRESS": "5",
    "SMTPLOG_LIMIT_PER_IP": "50",
    "SMTPLOG_REPORT_BODY_ROWS": "200",
    "SMTPLOG_SEND_TIME_LIMIT": "120",
    "SMTPLOG_SEND_RETRY_BACKOFF": "60",
    "EMAIL_SEND_DEADLINE": "90",
    "CELERY_BROKER_VISIBILITY_TIMEOUT": "7200",
    "SMTPLOG_ALERT_SUM_THRESHOLD": "500",
    "SMTPLOG_ALERT_BOUNCE_THRESHOLD": "20",
    "SMTPLOG_ALERT_TIME": "02:30",
    "SMTPLOG_ALERT_CATCHUP_DAYS": "3",
    "SMTPLOG_CONTACT_EMAIL": "noc@net.nthu.edu.tw",
    "SMTPLOG_VPN_URL": "https://vpn.nthu.edu.tw/",
    "SMTPLOG_MAILLOG_GLOBS": "/var/log/relays/*/mail.log* /var/log/mail.log",
    "SMTPLOG_INTERNAL_NEXT_HOPS": "127.0.0.1:10025 [::1]:10025",
    "SMTPLOG_INGEST_BATCH_LINES": "30000",
    "SMTPLOG_INGEST_WORKERS": "2",
    "SMTPLOG_INGEST_PARALLEL_BYTES": "0",
    "SMTPLOG_HEALTH_LOG_LAG": "600",
}


class TestProductionValues:
    def test_database_url_selects_postgresql(self, loaded):
        db = loaded["DATABASES"]["default"]
        assert db["ENGINE"] == "django.db.backends.postgresql"
        assert (db["NAME"], db["USER"], db["PASSWORD"]) == ("smtplog", "smtplog", "s@cret")
        assert (db["HOST"], db["PORT"], db["CONN_MAX_AGE"]) == ("db.net.nthu.edu.tw", 5432, 60)

    def test_a_broker_turns_eager_celery_off(self, loaded):
        assert loaded["CELERY_BROKER_URL"] == "redis://redis.net.nthu.edu.tw:6379/0"
        assert loaded["CELERY_TASK_ALWAYS_EAGER"] is False
        assert loaded["CELERY_TASK_SOFT_TIME_LIMIT"] == 300
        assert loaded["CELERY_TASK_TIME_LIMIT"] == 360
        assert loaded["CELERY_BROKER_TRANSPORT_OPTIONS"]["visibility_timeout"] == 7200

    def test_email_host_selects_smtp(self, loaded):
        assert loaded["EMAIL_BACKEND"] == "smtplog.mail.SMTPBackend"  # with a deadline
        assert loaded["EMAIL_SEND_DEADLINE"] == 90
        assert (loaded["EMAIL_HOST"], loaded["EMAIL_PORT"]) == ("smtp.net.nthu.edu.tw", 587)
        assert (loaded["EMAIL_USE_TLS"], loaded["EMAIL_USE_SSL"]) == (True, False)
        assert loaded["DEFAULT_FROM_EMAIL"] == "smtp-log-query@net.nthu.edu.tw"

    def test_debug_off_turns_the_https_settings_on(self, loaded):
        assert loaded["DEBUG"] is False
        assert loaded["SECURE_SSL_REDIRECT"] is True
        assert loaded["SESSION_COOKIE_SECURE"] is True
        assert loaded["CSRF_COOKIE_SECURE"] is True
        assert loaded["SECURE_HSTS_SECONDS"] == 31536000
        assert loaded["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
        assert loaded["ALLOWED_HOSTS"] == ["smtplog.net.nthu.edu.tw"]
        assert loaded["SITE_URL"] == "https://smtplog.net.nthu.edu.tw"

    def test_every_smtplog_setting_takes_its_variable(self, loaded):
        assert Path(loaded["EMAIL_FILE_PATH"]) == Path("/srv/smtplog/mail")
        assert loaded["SMTPLOG_CAMPUS_DOMAINS"] == ["nthu.edu.tw", "nthu.org.tw"]
        assert loaded["SMTPLOG_CAMPUS_NETWORKS"] == ["140.114.0.0/16", "2001:288:1001::/48"]
        assert loaded["SMTPLOG_STAFF_NETWORKS"] == ["140.114.63.0/24"]
        assert loaded["SMTPLOG_TRUSTED_PROXY_COUNT"] == 1
        assert loaded["SMTPLOG_RETENTION_DAYS"] == 62
        assert loaded["SMTPLOG_LIMIT_PER_ADDRESS"] == 5
        assert loaded["SMTPLOG_LIMIT_PER_IP"] == 50
        assert loaded["SMTPLOG_REPORT_BODY_ROWS"] == 200
        assert loaded["SMTPLOG_SEND_TIME_LIMIT"] == 120
        assert loaded["SMTPLOG_SEND_RETRY_BACKOFF"] == 60
        assert loaded["SMTPLOG_ALERT_SUM_THRESHOLD"] == 500
        assert loaded["SMTPLOG_ALERT_BOUNCE_THRESHOLD"] == 20
        assert loaded["SMTPLOG_ALERT_TIME"] == [2, 30]
        assert loaded["SMTPLOG_ALERT_CATCHUP_DAYS"] == 3
        assert loaded["SMTPLOG_CONTACT_EMAIL"] == "noc@net.nthu.edu.tw"
        assert loaded["SMTPLOG_VPN_URL"] == "https://vpn.nthu.edu.tw/"
        assert loaded["SMTPLOG_MAILLOG_GLOBS"] == [
            "/var/log/relays/*/mail.log*",
            "/var/log/mail.log",
        ]
        assert loaded["SMTPLOG_INTERNAL_NEXT_HOPS"] == ["127.0.0.1:10025", "[::1]:10025"]
        assert loaded["SMTPLOG_INGEST_BATCH_LINES"] == 30000
        assert loaded["SMTPLOG_INGEST_WORKERS"] == 2
        assert loaded["SMTPLOG_INGEST_PARALLEL_BYTES"] == 0
        assert loaded["SMTPLOG_HEALTH_LOG_LAG"] == 600
        # A setting added to SMTPLOG_DEFAULTS needs a production value here too.
        unchanged = [n for n, default in SMTPLOG_DEFAULTS.items() if loaded[n] == default]
        assert unchanged == []

    def test_the_beat_schedule_follows_the_alert_time(self, loaded):
        schedule = loaded["CELERY_BEAT_SCHEDULE"]["send-daily-alerts"]["schedule"]
        assert "<crontab: 30 2 " in schedule


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"SMTPLOG_CAMPUS_NETWORKS": "140.114.0.1/16"}, "SMTPLOG_CAMPUS_NETWORKS"),
        ({"SMTPLOG_CAMPUS_NETWORKS": " "}, "SMTPLOG_CAMPUS_NETWORKS"),
        ({"SMTPLOG_RETENTION_DAYS": "abc"}, "SMTPLOG_RETENTION_DAYS"),
        ({"TIME_ZONE": "Mars/Base"}, "TIME_ZONE"),
        ({"DEBUG": "maybe"}, "DEBUG"),
        ({"DEBUG": "0"}, "SECRET_KEY"),
        ({"DEBUG": "0", "SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"SMTPLOG_CAMPUS_DOMAINS": "not_a_domain"}, "SMTPLOG_CAMPUS_DOMAINS"),
        ({"SMTPLOG_ALERT_TIME": "25:00"}, "SMTPLOG_ALERT_TIME"),
        ({"SMTPLOG_CONTACT_EMAIL": "nobody"}, "SMTPLOG_CONTACT_EMAIL"),
        ({"SMTPLOG_VPN_URL": "vpn.nthu.edu.tw"}, "SMTPLOG_VPN_URL"),
        ({"SMTPLOG_REPORT_BODY_ROWS": "1001"}, "SMTPLOG_REPORT_BODY_ROWS"),
        ({"SMTPLOG_ALERT_CATCHUP_DAYS": "40"}, "SMTPLOG_ALERT_CATCHUP_DAYS"),
        ({"SMTPLOG_TRUSTED_PROXY_COUNT": "-1"}, "SMTPLOG_TRUSTED_PROXY_COUNT"),
        ({"EMAIL_PORT": "70000"}, "EMAIL_PORT"),
        ({"EMAIL_USE_TLS": "1", "EMAIL_USE_SSL": "1"}, "EMAIL_USE_TLS"),
        ({"DATABASE_URL": "foo://db.example/smtplog"}, "DATABASE_URL"),
        ({"EMAIL_SEND_DEADLINE": "90"}, "EMAIL_SEND_DEADLINE"),
        ({"SMTPLOG_STAFF_NETWORKS": "10.0.0.1/8"}, "SMTPLOG_STAFF_NETWORKS"),
        ({"CELERY_BROKER_VISIBILITY_TIMEOUT": "600"}, "CELERY_BROKER_VISIBILITY_TIMEOUT"),
    ],
    ids=lambda v: "+".join(v) if isinstance(v, dict) else None,
)
def test_a_bad_value_stops_start_up_with_an_error_naming_the_variable(variables, named):
    done = manage("check", **variables)
    assert done.returncode != 0
    assert f"Configuration error: {named}" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_empty_database_url_is_the_default_sqlite_database(tmp_path):
    show = "from django.conf import settings; print(settings.DATABASES['default']['NAME'])"
    done = manage(
        "shell", "--no-imports", "-c", show, DATABASE_URL="", SMTPLOG_VAR_DIR=str(tmp_path)
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "smtplog.sqlite3")


def test_check_deploy_with_production_variables_reports_no_errors():
    done = manage("check", "--deploy", "--fail-level", "ERROR", **PRODUCTION)
    assert done.returncode == 0, done.stderr
    assert "ERRORS:" not in done.stderr
    # HSTS covers the service's subdomains by default; preload (W021) is silenced as a
    # decision for the whole university domain. No security warning may appear.
    warnings = {
        line.split(")")[0].split("(")[-1]
        for line in done.stderr.splitlines()
        if "(security." in line
    }
    assert warnings == set()


def test_check_deploy_with_hsts_for_subdomains_and_preload_reports_nothing():
    done = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        **PRODUCTION,
        SECURE_HSTS_INCLUDE_SUBDOMAINS="1",
        SECURE_HSTS_PRELOAD="1",
    )
    assert done.returncode == 0, done.stderr
    assert "System check identified no issues" in done.stdout


def test_the_eml_file_backend_writes_one_file_per_message(tmp_path):
    messages = [
        EmailMessage(
            f"Report {n}", f"Body {n}", "smtp-log-query@nthu.edu.tw", ["alice@cs.nthu.edu.tw"]
        )
        for n in range(3)
    ]
    backend = get_connection("smtplog.mail.EmlFileBackend", file_path=str(tmp_path / "mail"))
    assert backend.send_messages(messages) == 3

    files = sorted((tmp_path / "mail").glob("*.eml"))
    assert len(files) == 3
    parsed = [email.message_from_bytes(f.read_bytes()) for f in files]
    assert sorted(m["Subject"] for m in parsed) == ["Report 0", "Report 1", "Report 2"]
    assert {m["To"] for m in parsed} == {"alice@cs.nthu.edu.tw"}


def test_the_readme_documents_every_setting_port_and_the_staff_password():
    readme = (BASE_DIR / "README.md").read_text()
    undocumented = [name for name in SMTPLOG_DEFAULTS if f"| `{name}` |" not in readme]
    assert undocumented == []
    assert "PORT=8080 SITE_URL=http://127.0.0.1:8080 scripts/run" in readme
    assert "port=${PORT:-8000}" in (BASE_DIR / "scripts" / "run").read_text()
    assert "manage.py changepassword admin" in readme
    assert manage("changepassword", "--help").returncode == 0
