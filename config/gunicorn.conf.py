"""Gunicorn settings for the provider in production (the Docker image uses this file).

    gunicorn -c config/gunicorn.conf.py "idp:create_app()"

Nodes are stateless (state lives in PostgreSQL and Redis), so any number of
workers and nodes can serve any step of a sign-in.
"""

import json
import os

from gunicorn import glogging

# Inside the container; publish the port or put a reverse proxy in front.
bind = "0.0.0.0:8000"
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
# Worker heartbeat files (made with mkstemp) on tmpfs: a container's overlay
# filesystem can stall them.
worker_tmp_dir = "/dev/shm"  # noqa: S108
# No management socket: nothing uses it, and the service user's home is read-only.
control_socket_disable = True

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


class JsonAtoms(glogging.SafeAtoms):
    """Escapes every value for a JSON string (gunicorn's own wrapper escapes only quotes)."""

    def __init__(self, atoms):
        super().__init__(atoms)
        for name, value in atoms.items():
            if isinstance(value, str):
                self[name] = json.dumps(value)[1:-1]


class JsonAccessLogger(glogging.Logger):
    atoms_wrapper_class = JsonAtoms


logger_class = JsonAccessLogger
