"""The shipped deployment, started for a test: Debian's nginx with deploy/nginx/smtplog.conf
in front of gunicorn (deploy/gunicorn.conf.py) on its unix socket.

The site file is used as shipped, with only its site-specific values swapped for test
ones (each swap must find its text, so the file cannot drift from what is tested):
loopback addresses and ports, a test certificate, paths under a temporary prefix, and
127.0.0.2 as the one campus and staff address (127.0.0.3 is off campus).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path

from tests.services import free_port, missing

BASE_DIR = Path(__file__).resolve().parent.parent.parent
SITE = BASE_DIR / "deploy" / "nginx" / "smtplog.conf"
HOST = "smtplog.test"
CAMPUS = "127.0.0.2"
OFF_CAMPUS = "127.0.0.3"
SECRET = "test-only-9Kx2#mQ7!vB4@zL8$wN3^pR6&tY1*hJ5(cD0)fG2-sE4_aW7+"
NGINX = os.environ.get("SMTPLOG_NGINX", "/usr/sbin/nginx")


def require_nginx() -> str:
    if not Path(NGINX).exists():
        missing(f"nginx at {NGINX} (apt-get install nginx)")
    if not shutil.which("openssl"):
        missing("the openssl program (for a test certificate)")
    return NGINX


def make_certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", f"/CN={HOST}", "-addext", f"subjectAltName=DNS:{HOST}"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


def site_env(database_url: str, broker_url: str, static_root: Path) -> dict[str, str]:
    """The production settings, as deploy/smtplog.env sets them, for this test's site."""
    return {
        "DJANGO_SETTINGS_MODULE": "smtplog.settings",
        "DEBUG": "false",
        "SECRET_KEY": SECRET,
        "ALLOWED_HOSTS": HOST,
        "SITE_URL": f"https://{HOST}",
        "CSRF_TRUSTED_ORIGINS": f"https://{HOST}",
        "DATABASE_URL": database_url,
        "DB_CONN_MAX_AGE": "60",
        "CELERY_BROKER_URL": broker_url,
        "SMTPLOG_TRUSTED_PROXY_COUNT": "1",
        "SECURE_PROXY_SSL_HEADER": "true",
        "SMTPLOG_CAMPUS_NETWORKS": f"{CAMPUS}/32",
        "SMTPLOG_STAFF_NETWORKS": f"{CAMPUS}/32",
        "STATIC_ROOT": str(static_root),
        "SMTPLOG_VAR_DIR": str(static_root.parent / "var"),
        "PYTHONUNBUFFERED": "1",
    }


def collectstatic(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=BASE_DIR,
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )


def swap(text: str, old: str, new: str) -> str:
    assert old in text, f"deploy/nginx/smtplog.conf no longer has {old!r}: update the test"
    return text.replace(old, new)


def site_config(prefix: Path, socket: Path, static_root: Path, ports: dict[str, int]) -> str:
    cert, key = make_certificate(prefix)
    text = SITE.read_text()
    for old, new in [
        ("server unix:/run/smtplog-web.sock", f"server unix:{socket}"),
        ("listen 80;", f"listen 127.0.0.1:{ports['http']};"),
        ("listen [::]:80;", ""),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{ports['https']} ssl http2;"),
        ("listen [::]:443 ssl http2;", ""),
        ("server_name smtplog.example.edu;", f"server_name {HOST};"),
        ("/etc/ssl/smtplog/fullchain.pem", str(cert)),
        ("/etc/ssl/smtplog/privkey.pem", str(key)),
        ("root /srv/smtplog/deploy/nginx;", f"root {BASE_DIR / 'deploy' / 'nginx'};"),
        ("alias /var/lib/smtplog/static/;", f"alias {static_root}/;"),
        ("allow 140.114.0.0/16;", f"allow {CAMPUS};"),
    ]:
        text = swap(text, old, new)
    return text


def main_config(prefix: Path) -> str:
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "user root root;\n" if os.geteuid() == 0 else ""  # workers read the temp prefix
    return (
        f"{user}worker_processes 1;\npid {prefix / 'nginx.pid'};\n"
        f"error_log {prefix / 'error.log'} info;\n"
        "events { worker_connections 256; }\n"
        "http {\n    include /etc/nginx/mime.types;\n    default_type application/octet-stream;\n"
        f"    access_log {prefix / 'access.log'};\n{temp}\n"
        f"    include {prefix / 'smtplog.conf'};\n}}\n"
    )


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: str

    def cookies(self) -> dict[str, str]:
        jar = SimpleCookie()
        for value in self.headers.get_all("Set-Cookie") or []:
            jar.load(value)
        return {name: morsel.value for name, morsel in jar.items()}


class Stack:
    def __init__(self, prefix: Path, ports: dict[str, int]) -> None:
        self.prefix = prefix
        self.ports = ports
        self.tls = ssl.create_default_context(cafile=str(prefix / "cert.pem"))
        self.tls.check_hostname = False  # connecting to 127.0.0.1; the chain is still verified
        self.gunicorn: subprocess.Popen | None = None

    def request(
        self,
        method: str,
        path: str,
        source: str = CAMPUS,
        headers: list[tuple[str, str]] = (),
        body: bytes | None = None,
        tls: bool = True,
    ) -> Response:
        """One request on a new connection (a TLS handshake each) from `source`."""
        if tls:
            conn = http.client.HTTPSConnection(
                "127.0.0.1",
                self.ports["https"],
                context=self.tls,
                source_address=(source, 0),
                timeout=30,
            )
        else:
            conn = http.client.HTTPConnection(
                "127.0.0.1", self.ports["http"], source_address=(source, 0), timeout=30
            )
        with contextlib.closing(conn):
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", HOST)
            for name, value in headers:
                conn.putheader(name, value)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            response = conn.getresponse()
            return Response(
                response.status, response.headers, response.read().decode("utf-8", "replace")
            )

    def log(self, name: str) -> str:
        path = self.prefix / name
        return path.read_text(errors="replace") if path.exists() else ""


def _stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def running_stack(
    prefix: Path, env: dict[str, str], static_root: Path, workers: int | None = 2
) -> Iterator[Stack]:
    """gunicorn on prefix/web.sock with the shipped config, nginx with the shipped site.

    `workers` overrides the config's number of gunicorn workers (None: as shipped).
    """
    nginx = require_nginx()
    ports = {"http": free_port(), "https": free_port()}
    socket = prefix / "web.sock"
    (prefix / "smtplog.conf").write_text(site_config(prefix, socket, static_root, ports))
    (prefix / "nginx.conf").write_text(main_config(prefix))
    nginx_args = [
        nginx,
        "-p",
        str(prefix),
        "-e",
        str(prefix / "error.log"),
        "-c",
        str(prefix / "nginx.conf"),
    ]
    checked = subprocess.run([*nginx_args, "-t"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    stack = Stack(prefix, ports)
    with (prefix / "gunicorn.log").open("ab") as log:
        stack.gunicorn = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                str(BASE_DIR / "deploy" / "gunicorn.conf.py"),
            ]
            + ["--bind", f"unix:{socket}"]
            + ([] if workers is None else ["--workers", str(workers)]),
            cwd=BASE_DIR,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    with (prefix / "nginx.out").open("ab") as log:
        server = subprocess.Popen(
            [*nginx_args, "-g", "daemon off;"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError, http.client.HTTPException):
                if stack.request("GET", "/help/").status == 200:
                    break
            for name, process in (("gunicorn", stack.gunicorn), ("nginx", server)):
                if process.poll() is not None:
                    logs = stack.log("gunicorn.log")[-3000:] + stack.log("error.log")[-3000:]
                    raise RuntimeError(f"{name} exited:\n{logs}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the stack did not answer:\n{stack.log('gunicorn.log')[-3000:]}"
                )
            time.sleep(0.2)
        yield stack
    finally:
        _stop(server)
        _stop(stack.gunicorn)
