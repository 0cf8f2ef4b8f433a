# The provider under its production server (granian, idp.web.server). Build: docker build -t member-idp .
# Runs as an unprivileged user; signing keys live on the /app/keys volume.
# The image never changes the database by itself: `idp db upgrade` runs in its own
# container (compose's "migrate" service, or `docker run --rm member-idp idp db upgrade`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    IDP_KEYS_DIR=/app/keys \
    IDP_TENANTS_DIR=/app/config/tenants

WORKDIR /app

RUN groupadd --system --gid 10001 idp \
    && useradd --system --uid 10001 --gid idp --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin idp

# Dependencies first, from the lock file (exact versions, checked by their hashes): this
# layer is rebuilt only when requirements/main.txt changes, not at every edit of the code.
COPY requirements/main.txt requirements/main.txt
RUN pip install --require-hashes --no-deps -r requirements/main.txt

# Then the code, installed once, where it runs: create_app() finds templates/ and config/
# next to the idp package, so the package stays in /app (an editable install, without
# dependencies: they are all above).
COPY pyproject.toml README.md ./
COPY idp/ idp/
COPY templates/ templates/
COPY config/ config/
RUN pip install --no-deps -e . && rm -rf build

# The keys directory belongs to the service user; a new named volume mounted
# here starts with this ownership. Private keys are written 0600.
RUN mkdir -p /app/keys && chown idp:idp /app/keys && chmod 0700 /app/keys
VOLUME ["/app/keys"]

USER idp
EXPOSE 8000

# The web node's liveness (/healthz answers without the database; /readyz checks it).
# Containers of this image that run another command (the worker, the catcher, an
# operator command) disable or replace it (docker-compose.yml).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=6 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=3)"]

# exec form: the server is PID 1, so `docker stop` (SIGTERM) shuts it down gracefully and
# SIGHUP (`docker kill -s HUP`) replaces its workers one by one (README, "Running in production").
CMD ["python", "-m", "idp.web.server"]
