"""Test settings: the real settings with only test switches flipped."""

from smtplog.settings import *  # noqa: F403

CAPTCHA_TEST_MODE = True  # django-simple-captcha reads it at import: "PASSED" always passes
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast test users
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = True  # unit tests run tasks in-process; worker tests start real ones
CELERY_TASK_EAGER_PROPAGATES = True  # a failing task fails its test
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_AUTOREFRESH = True  # tests run without collectstatic: no var/static to scan
