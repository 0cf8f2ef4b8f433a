"""Gunicorn settings for the provider in production (the Docker image uses this file).

    gunicorn -c config/gunicorn.conf.py "idp:create_app()"

Nodes are stateless (state lives in PostgreSQL and Redis), so any number of
workers and nodes can serve any step of a sign-in.
"""

import ctypes
import ctypes.util
import os

from idp import logs

# Inside the container; publish the port or put a reverse proxy in front.
bind = "0.0.0.0:8000"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Argon2id hashing holds a worker for tens of milliseconds; sync workers are
# simplest and enough behind a proxy that buffers slow clients. This one is
# gunicorn's sync worker whose own refusals (below) carry the security headers.
worker_class = "idp.web.server.ProviderWorker"
# What gunicorn refuses itself, before the provider sees a request. Each limit sits
# at or above what the proxy lets through (config/nginx/nginx.conf: a request line or
# a header field of 8 190 bytes, fewer than a thousand header fields), so that behind
# it a request is refused by the proxy or answered by the provider, whose input gate
# takes at most 100 header fields of 8 KiB (431). Reached directly, gunicorn answers
# 414 or 431 itself, with the same headers.
limit_request_line = 8190  # bytes, without the line break: gunicorn's maximum
limit_request_fields = 2000
limit_request_field_size = 8192  # bytes of one field, its line break included
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

# Every log line is one JSON object on stdout, for the container runtime to
# collect (idp.logs): the provider logs each request once, when answered, with
# its request id, tenant, method, path (never the query string: /authorize
# queries can carry a login_hint), status and duration; gunicorn's own
# messages take the same form. Gunicorn's access log would say the same
# without the request id: it is off.
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
accesslog = None
logconfig_dict = logs.dict_config(loglevel.upper(), stream="ext://sys.stdout")
logconfig_dict["loggers"] |= {
    "gunicorn.error": {"level": loglevel.upper(), "handlers": ["json"], "propagate": False},
    "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
}


# With several workers, PROMETHEUS_MULTIPROC_DIR names a directory where each
# worker keeps its counters, so that a scrape of any worker adds them all up
# (idp.metrics). Files of a previous run would add old counts: start empty.
def on_starting(_server):
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            if name.endswith(".db"):
                os.remove(os.path.join(directory, name))


# Argon2id allocates its whole memory cost (19 MiB) for each hash and frees it after. glibc then
# serves the next block of that size from the heap (its mmap threshold rises to the largest block
# freed), and the heap does not give it back: every worker would keep ~20 MiB it uses for 30 ms
# per sign-in. A fixed threshold keeps such blocks in their own mappings, returned at each free.
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 128 * 1024


def post_fork(_server, _worker):
    libc = ctypes.util.find_library("c")
    if libc:
        mallopt = getattr(ctypes.CDLL(libc), "mallopt", None)  # glibc's; absent elsewhere
        if mallopt is not None:
            mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
