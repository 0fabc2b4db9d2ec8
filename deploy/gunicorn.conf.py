"""gunicorn's settings for the web service (deploy/systemd/smtplog-web.service).

The listening socket comes from systemd (smtplog-web.socket), so nothing but nginx, which
may connect to it, reaches gunicorn; a restart queues requests instead of dropping them.
"""

import os

wsgi_app = "smtplog.wsgi:application"
# Sync workers: each request is short (the report is built by a Celery worker). The
# default suits a 2-core machine next to PostgreSQL (measured: bench/load.py, README).
workers = int(os.environ.get("GUNICORN_WORKERS", "4"))
timeout = 30
graceful_timeout = 30
# Recycle workers now and then: memory a long-lived process gathers is given back.
max_requests = 5000
max_requests_jitter = 500
# nginx logs each request (with the client address); gunicorn only its own errors.
accesslog = None
errorlog = "-"
# No control socket (it would go under a home directory the service may not have).
control_socket_disable = True
