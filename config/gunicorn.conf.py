"""Gunicorn settings for the provider in production (the Docker image uses this file).

    gunicorn -c config/gunicorn.conf.py "idp:create_app()"

Nodes are stateless (state lives in PostgreSQL and Redis), so any number of
workers and nodes can serve any step of a sign-in.
"""

import json
import os

from gunicorn import glogging

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")  # noqa: S104 - inside a container
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Argon2id hashing holds a worker for tens of milliseconds; sync workers are
# simplest and enough behind a proxy that buffers slow clients.
worker_class = "sync"
# A request taking longer than this is killed; argon2 and database calls are far below it.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# On SIGTERM (docker stop, a rolling deploy) workers finish the requests they
# have for up to this long before they are killed.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
# The heartbeat file on tmpfs: a container's overlay filesystem can stall it.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None

# Logs go to stdout (access) and stderr (errors) for the container runtime to collect.
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")

# One JSON object per request. The path is logged without its query string:
# /authorize queries can carry a login_hint (an email or a member number), and
# nothing personal or secret belongs in logs.
access_log_format = (
    '{"time": "%(t)s", "remote": "%(h)s", "forwarded_for": "%({x-forwarded-for}i)s", '
    '"method": "%(m)s", "path": "%(U)s", "status": %(s)s, "bytes": "%(b)s", '
    '"duration_ms": %(M)s, "user_agent": "%(a)s"}'
)


def _json_escape(value):
    if isinstance(value, str):
        return json.dumps(value)[1:-1]
    return value


class JsonAccessLogger(glogging.Logger):
    """Escapes every value for a JSON string, so a quote in a header cannot break the line."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        return {name: _json_escape(value) for name, value in atoms.items()}


logger_class = JsonAccessLogger
