"""Settings of the SMTP log query service.

Every value comes from an environment variable with a default that runs, so one
can check out the code, run `scripts/run`, and it works: SQLite under var/,
Celery tasks run eagerly in-process, outgoing mail written as .eml files under
var/mail/. Production sets DATABASE_URL, CELERY_BROKER_URL, EMAIL_* and the
deployment switches documented in the README. A bad value stops start-up with
ImproperlyConfigured naming the variable.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from smtplog.conf import (
    env_bool,
    env_domains,
    env_email,
    env_hour_minute,
    env_int,
    env_list,
    env_networks,
    env_str,
    env_timezone,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("SMTPLOG_VAR_DIR", str(BASE_DIR / "var")))

# Core
DEBUG = env_bool("DEBUG", True)
_DEV_SECRET = "dev-only-secret-key-do-not-use-in-production"
SECRET_KEY = env_str("SECRET_KEY", _DEV_SECRET)
if not DEBUG and (SECRET_KEY == _DEV_SECRET or len(SECRET_KEY) < 50):
    raise ImproperlyConfigured("SECRET_KEY: set a random value of 50+ characters when DEBUG is off")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "captcha",
    "axes",
    "smtplog",
    "queries",
    "alerts",
    "tracing",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files without a separate server
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "smtplog.middleware.StaffNetworkMiddleware",  # before anything of the admin runs
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks
]

# Staff sign-in: django-axes records every failed login (and logs it) and locks a client
# address out after AXES_FAILURE_LIMIT failures for AXES_COOLOFF_TIME.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "queries.campus.client_ip_text"  # the proxy-aware address
AXES_LOCKOUT_TEMPLATE = "admin/locked_out.html"
# Logged failures show the client address, not what was typed as the user name (people
# type passwords there); both are kept in the admin's list of access attempts.
AXES_SENSITIVE_PARAMETERS = ["username"]
AXES_VERBOSE = False  # no start-up banner on every command's output; failures still logged

ROOT_URLCONF = "smtplog.urls"
WSGI_APPLICATION = "smtplog.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "queries.context_processors.contact",
            ],
        },
    },
]

# Database: SQLite under var/ unless DATABASE_URL names another (postgres://user@host:5432/name);
# an empty DATABASE_URL is the default, as an empty CELERY_BROKER_URL or EMAIL_HOST is.
# A kept connection (DB_CONN_MAX_AGE) is checked before each request reuses it: one the
# server dropped (a restart, pg_terminate_backend) is replaced instead of failing.
try:
    DATABASES = {
        "default": dj_database_url.parse(
            env_str("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'smtplog.sqlite3'}",
            conn_max_age=env_int("DB_CONN_MAX_AGE", 0, minimum=0),
            conn_health_checks=True,
        )
    }
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL: {exc}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while an ingest run writes.
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # synchronous=NORMAL: with WAL, a power cut may lose the last commits but never corrupts;
    # ingestion commits rows with their file position, so lost commits are read again.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "timeout": 30,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Internationalization: English and Traditional Chinese; days are local days of TIME_ZONE.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hant", _("Traditional Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_timezone("TIME_ZONE", "Asia/Taipei")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")))
# collectstatic names each file by its content's hash (site.3f2a9c.css): nginx and
# browsers may then keep them for a year.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# HTTPS and deployment: on by default whenever DEBUG is off.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
# Covers only names under the service's own host name, never its parent domain.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Preload lists take whole registrable domains (nthu.edu.tw): the university's call, not ours.
SILENCED_SYSTEM_CHECKS = ["security.W021"]
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    # Only behind a reverse proxy that sets X-Forwarded-Proto itself.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# A monitor may ask the web process itself, over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

# What pages may load and do: only our own scripts, styles, images and sounds (no inline
# script or style anywhere), no frames, no plugins; and no camera, microphone, etc.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [NONE],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF],
        "media-src": [SELF],
        "font-src": [SELF],
        "connect-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [NONE],
        "object-src": [NONE],
    }
}
PERMISSIONS_POLICY = {
    feature: []
    for feature in (
        "accelerometer",
        "camera",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "payment",
        "usb",
    )
}

# Celery: with no broker configured, tasks run eagerly in-process (laptop default).
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
# Eager tasks run inside the web request: a task that fails (an SMTP server answering 4xx,
# say) is recorded on its row and must not turn the user's answer page into an error.
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True  # a task a worker dies in is redelivered; every task is idempotent
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 600, minimum=1)
CELERY_TASK_TIME_LIMIT = CELERY_TASK_SOFT_TIME_LIMIT + 60
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis hands a task a worker took but never acknowledged (the worker died: tasks are
# acknowledged late) to another worker after this many seconds. It must exceed the
# longest retry countdown (15 minutes), or a task waiting for its retry would be handed
# out twice. A killed worker's report is normally re-enqueued by the sweeper long before.
CELERY_BROKER_VISIBILITY_TIMEOUT = env_int("CELERY_BROKER_VISIBILITY_TIMEOUT", 3600, minimum=960)
# Give up quickly when the broker is down at submit time, so the user sees the delay page.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_BROKER_VISIBILITY_TIMEOUT,
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
}
CELERY_TIMEZONE = TIME_ZONE

# Email: .eml files under var/mail/ unless EMAIL_BACKEND / EMAIL_HOST say otherwise.
EMAIL_HOST = env_str("EMAIL_HOST", "")
# (Empty, as in deploy/smtplog.env, means the default too.)
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "") or (
    "smtplog.mail.SMTPBackend" if EMAIL_HOST else "smtplog.mail.EmlFileBackend"
)
EMAIL_FILE_PATH = Path(env_str("EMAIL_FILE_PATH", str(VAR_DIR / "mail")))
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS, EMAIL_USE_SSL: set at most one of them")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30, minimum=1)  # each socket read or write
# The whole SMTP conversation, connect to QUIT: a server dripping a byte at a time never
# trips EMAIL_TIMEOUT (smtplog.mail.SMTPBackend). Running out is a transient failure.
EMAIL_SEND_DEADLINE = env_int("EMAIL_SEND_DEADLINE", 60, minimum=1)
DEFAULT_FROM_EMAIL = env_email("DEFAULT_FROM_EMAIL", "smtp-log-query@nthu.edu.tw")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Campus mail domains and networks
# Addresses of these domains or any subdomain of them may ask for reports.
SMTPLOG_CAMPUS_DOMAINS = env_domains("SMTPLOG_CAMPUS_DOMAINS", ["nthu.edu.tw"])
# Clients allowed to use the form. Loopback is in the default so it works on a laptop.
SMTPLOG_CAMPUS_NETWORKS = env_networks(
    "SMTPLOG_CAMPUS_NETWORKS", ["140.114.0.0/16", "127.0.0.0/8", "::1/128"]
)
# Clients allowed into the admin (nginx refuses others too). Default: the campus networks.
SMTPLOG_STAFF_NETWORKS = env_networks(
    "SMTPLOG_STAFF_NETWORKS", [str(network) for network in SMTPLOG_CAMPUS_NETWORKS]
)
# Reverse proxies in front of the web process that append to X-Forwarded-For (0: none,
# the TCP peer is the client). Anything a client puts in the header beyond them is ignored.
SMTPLOG_TRUSTED_PROXY_COUNT = env_int("SMTPLOG_TRUSTED_PROXY_COUNT", 0, minimum=0, maximum=10)

# Retention: events, messages, counters, queries, alerts and the trace audit older than
# this are purged (smtplog.retention).
SMTPLOG_RETENTION_DAYS = env_int("SMTPLOG_RETENTION_DAYS", 31, minimum=1, maximum=3660)

# Query form abuse limits
SMTPLOG_LIMIT_PER_ADDRESS = env_int("SMTPLOG_LIMIT_PER_ADDRESS", 3, minimum=1)  # reports per 24 h
# Queries per hour from one client IP (IPv6: per /64).
SMTPLOG_LIMIT_PER_IP = env_int("SMTPLOG_LIMIT_PER_IP", 20, minimum=1)
# Detail rows in the report's mail body, the most recent; the CSV attached has them all.
# Fewer are shown when their replies are long: the body stays under 100 KB, as Gmail
# cuts off longer messages (queries/report.py, BODY_BUDGET).
SMTPLOG_REPORT_BODY_ROWS = env_int("SMTPLOG_REPORT_BODY_ROWS", 150, minimum=1, maximum=1000)

# Sending reports and alerts (smtplog/delivery.py)
# Seconds a report or an alert may take, built and sent; a worker killed while sending
# one holds it this long plus 20 s (the claim's lease) before the sweeper takes it over.
SMTPLOG_SEND_TIME_LIMIT = env_int("SMTPLOG_SEND_TIME_LIMIT", 90, minimum=5)
# The first retry of a send the SMTP server refused for now (4xx, timeout, connection
# error) comes any time within this many seconds (full jitter); each further retry's
# window is twice as long, at most 15 minutes.
SMTPLOG_SEND_RETRY_BACKOFF = env_int("SMTPLOG_SEND_RETRY_BACKOFF", 30, minimum=1)
if EMAIL_SEND_DEADLINE >= SMTPLOG_SEND_TIME_LIMIT:
    raise ImproperlyConfigured(
        "EMAIL_SEND_DEADLINE: must be below SMTPLOG_SEND_TIME_LIMIT "
        f"({EMAIL_SEND_DEADLINE} >= {SMTPLOG_SEND_TIME_LIMIT})"
    )

# Alerts
SMTPLOG_ALERT_SUM_THRESHOLD = env_int("SMTPLOG_ALERT_SUM_THRESHOLD", 250, minimum=1)
SMTPLOG_ALERT_BOUNCE_THRESHOLD = env_int("SMTPLOG_ALERT_BOUNCE_THRESHOLD", 10, minimum=1)
SMTPLOG_ALERT_TIME = env_hour_minute("SMTPLOG_ALERT_TIME", "01:00")  # local time of the nightly run
SMTPLOG_ALERT_CATCHUP_DAYS = env_int("SMTPLOG_ALERT_CATCHUP_DAYS", 7, minimum=1)
SMTPLOG_CONTACT_EMAIL = env_email("SMTPLOG_CONTACT_EMAIL", "opr@net.nthu.edu.tw")
# The campus VPN's page, linked from the page off-campus visitors get (empty: no link).
SMTPLOG_VPN_URL = env_url("SMTPLOG_VPN_URL", "https://net.nthu.edu.tw/netsys/service:sslvpn")
if SMTPLOG_ALERT_CATCHUP_DAYS > SMTPLOG_RETENTION_DAYS:
    raise ImproperlyConfigured(
        "SMTPLOG_ALERT_CATCHUP_DAYS: must not exceed SMTPLOG_RETENTION_DAYS "
        f"({SMTPLOG_ALERT_CATCHUP_DAYS} > {SMTPLOG_RETENTION_DAYS})"
    )

# Ingestion
# Log files the beat task ingests every minute (globs; rotated and .gz copies included).
# The default is where make_sample_maillog writes (var/maillog/<relay>/mail.log*).
SMTPLOG_MAILLOG_GLOBS = env_list(
    "SMTPLOG_MAILLOG_GLOBS", [str(VAR_DIR / "maillog" / "*" / "mail.log*")]
)
# Next hops of the relays' own content filter: a status=sent to one of them is an internal
# hand-off ("queued as NEWID"), not a delivery. Hosts or IPs, optionally with :port.
SMTPLOG_INTERNAL_NEXT_HOPS = env_list(
    "SMTPLOG_INTERNAL_NEXT_HOPS", ["127.0.0.1", "::1", "localhost"]
)
# Lines per ingestion transaction. bench/ingest.py's campus month logs 48,000 lines a day
# in its central file (26,000 for its largest relay): 50,000 reads a daily file in one
# batch where 20,000 split a central day in three, each paying a batch's fixed work
# (positions, counters, a commit). A month's central ingestion then used 0.3-0.7 s less
# CPU of about 12.5, ours and the database server's (fewer commits and counter updates);
# its wall time moved less than the machine's noise; peak PSS 117 -> 142-146 MB
# (bench/ingest.py and interleaved runs, 2026-12-04).
SMTPLOG_INGEST_BATCH_LINES = env_int("SMTPLOG_INGEST_BATCH_LINES", 50000, minimum=100)
# PostgreSQL: processes that ingest different relays' files side by side (1: one process),
# once there are at least SMTPLOG_INGEST_PARALLEL_BYTES new bytes to read.
SMTPLOG_INGEST_WORKERS = env_int("SMTPLOG_INGEST_WORKERS", 4, minimum=1)
SMTPLOG_INGEST_PARALLEL_BYTES = env_int("SMTPLOG_INGEST_PARALLEL_BYTES", 16 * 2**20, minimum=0)

# Health (/healthz, manage.py healthcheck): a live log file whose newest line is older
# than this many seconds is reported (a relay silent that long is likely not logging).
SMTPLOG_HEALTH_LOG_LAG = env_int("SMTPLOG_HEALTH_LOG_LAG", 1800, minimum=60)

# Scheduled work (celery beat); `expires` drops a run the workers could not start in time.
CELERY_BEAT_SCHEDULE = {
    "heartbeat": {
        "task": "smtplog.tasks.heartbeat",
        "schedule": timedelta(minutes=1),
        "options": {"expires": 55},
    },
    "ingest-maillogs": {
        "task": "smtplog.tasks.ingest_configured_logs",
        "schedule": timedelta(minutes=1),
        "options": {"expires": 55},
    },
    "send-daily-alerts": {
        "task": "alerts.tasks.send_daily_alerts",
        "schedule": crontab(hour=SMTPLOG_ALERT_TIME[0], minute=SMTPLOG_ALERT_TIME[1]),
        "options": {"expires": 3 * 3600},
    },
    "purge-expired-data": {
        "task": "smtplog.tasks.purge_expired_data",
        "schedule": crontab(hour=3, minute=30),
        "options": {"expires": 3 * 3600},
    },
    "sweep-pending-queries": {
        "task": "queries.tasks.sweep_pending_queries",
        "schedule": timedelta(minutes=1),
        "options": {"expires": 55},
    },
    "cleanup-captchas": {
        "task": "queries.tasks.cleanup_captchas",
        "schedule": timedelta(minutes=10),
        "options": {"expires": 540},
    },
}

# Captcha (django-simple-captcha): six plain digits, as the original service showed, drawn
# large on a fixed-size image shown at its real size (no scaling blur), without the noise
# arcs and smoothing that made them hard to read; read aloud by Debian's flite when it is
# installed (the library's audio view).
CAPTCHA_LENGTH = 6
CAPTCHA_TIMEOUT = 10  # minutes a challenge stays valid
CAPTCHA_CHALLENGE_FUNCT = "queries.challenge.digits_challenge"
CAPTCHA_IMAGE_SIZE = (180, 56)
CAPTCHA_FONT_SIZE = 34
CAPTCHA_LETTER_ROTATION = (-8, 8)
CAPTCHA_FOREGROUND_COLOR = "#1d2733"
CAPTCHA_NOISE_FUNCTIONS = ()
CAPTCHA_FILTER_FUNCTIONS = ()
CAPTCHA_2X_IMAGE = False  # with a fixed size the library would crop the double-size image
CAPTCHA_FLITE_PATH = shutil.which("flite")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO").upper()},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
