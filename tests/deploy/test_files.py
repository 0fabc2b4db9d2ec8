"""The files of deploy/: systemd units that systemd accepts, an environment file listing
every setting, and those settings passing Django's deployment checks."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.services import missing

BASE_DIR = Path(__file__).resolve().parent.parent.parent
DEPLOY = BASE_DIR / "deploy"
ENV_FILE = DEPLOY / "smtplog.env"
STRONG_SECRET = "k3X9#vQ2!mZ7@pL5$wR8^tY4&uJ6*nB1(cD0)fG3-hK7_sE9+aW2=oI5"


def settings_read() -> set[str]:
    """Every environment variable smtplog/settings.py reads, found in its source."""
    source = (BASE_DIR / "smtplog" / "settings.py").read_text()
    names = set(re.findall(r'\benv_\w+\(\s*"([A-Z][A-Z0-9_]+)"', source))
    names |= set(re.findall(r'\benv="([A-Z][A-Z0-9_]+)"', source))
    return names


def env_file() -> dict[str, str]:
    """The file's settings as sh reads them: the README's installation sources it
    (`set -a; . /etc/smtplog/smtplog.env`), systemd reads it as EnvironmentFile=, which
    takes the same double quotes. A value with unquoted spaces would be lost (sh runs
    its second word as a command), and every line must give its variable."""
    names = [
        line.split("=", 1)[0]
        for line in ENV_FILE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    done = subprocess.run(
        ["sh", "-c", 'set -a; . "$0"; env -0', str(ENV_FILE)],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        check=True,
        timeout=30,
    )
    assert done.stderr == b"", done.stderr
    read = dict(item.split("=", 1) for item in done.stdout.decode().split("\0") if item)
    assert set(names) <= read.keys(), set(names) - read.keys()
    return {name: read[name] for name in names}


def test_the_environment_file_lists_every_setting_and_nothing_else():
    read = settings_read()
    assert {"DATABASE_URL", "SECRET_KEY", "SMTPLOG_STAFF_NETWORKS", "EMAIL_BACKEND"} <= read
    listed = env_file()
    assert set(listed) == read | {"GUNICORN_WORKERS"}


def test_the_readme_documents_every_setting():
    readme = (BASE_DIR / "README.md").read_text()
    undocumented = sorted(name for name in settings_read() if f"`{name}`" not in readme)
    assert undocumented == []


def test_the_shipped_settings_pass_the_deployment_checks(tmp_path):
    env = {**env_file(), "SECRET_KEY": STRONG_SECRET, "SMTPLOG_VAR_DIR": str(tmp_path)}
    env.update(STATIC_ROOT=str(tmp_path / "static"), EMAIL_FILE_PATH=str(tmp_path / "mail"))
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "smtplog.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "System check identified no issues" in done.stdout


def test_the_systemd_units_pass_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        missing("systemd-analyze (apt-get install systemd)")
    units = sorted((DEPLOY / "systemd").iterdir())
    assert {u.name for u in units} >= {
        "smtplog-web.socket",
        "smtplog-web.service",
        "smtplog-worker.service",
        "smtplog-beat.service",
        "smtplog-ingest.service",
    }
    # The checkout's paths instead of /srv/smtplog, so the programs they start exist here.
    for unit in units:
        (tmp_path / unit.name).write_text(unit.read_text().replace("/srv/smtplog", str(BASE_DIR)))
    done = subprocess.run(
        [analyze, "verify", "--man=no", *sorted(p.name for p in tmp_path.iterdir())],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr  # not even a warning (an unknown key, say)


def test_every_service_runs_hardened_as_its_own_user():
    for unit in (DEPLOY / "systemd").glob("smtplog-*.service"):
        text = unit.read_text()
        assert "NoNewPrivileges=yes" in text and "ProtectSystem=strict" in text, unit.name
        if unit.name != "smtplog-backup.service":  # pg_dump runs as postgres
            assert "User=smtplog" in text and "ProtectHome=yes" in text, unit.name
            assert "EnvironmentFile=/etc/smtplog/smtplog.env" in text, unit.name
    beat = (DEPLOY / "systemd" / "smtplog-beat.service").read_text()
    assert "--schedule /var/lib/smtplog/celerybeat-schedule" in beat
    assert env_file()["SMTPLOG_VAR_DIR"] == "/var/lib/smtplog"
