# The provider under gunicorn. Build: docker build -t member-idp .
# Runs as an unprivileged user; signing keys live on the /app/keys volume.
FROM python:3.11-slim

# create_app() finds templates/ and config/ next to the idp package, so the
# code runs from /app: PYTHONPATH puts it ahead of the copy pip installs.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONPATH=/app \
    IDP_KEYS_DIR=/app/keys \
    IDP_TENANTS_DIR=/app/config/tenants

WORKDIR /app

RUN groupadd --system --gid 10001 idp \
    && useradd --system --uid 10001 --gid idp --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin idp

# pyproject.toml names README.md as the package's readme: the build needs both.
COPY pyproject.toml README.md ./
COPY idp/ idp/
RUN pip install . && rm -rf build ./*.egg-info

COPY templates/ templates/
COPY config/ config/

# The keys directory belongs to the service user; a new named volume mounted
# here starts with this ownership. Private keys are written 0600.
RUN mkdir -p /app/keys && chown idp:idp /app/keys && chmod 0700 /app/keys
VOLUME ["/app/keys"]

USER idp
EXPOSE 8000

# Before the command: migrate the database, and on an empty keys volume create
# the first keys (one that signs at once, one published as next). Then exec the
# command, so that gunicorn is PID 1 and `docker stop` shuts it down gracefully.
# `docker compose run --rm idp idp keys list` runs an operator command instead.
ENTRYPOINT ["/bin/sh", "-c", "set -e; idp db upgrade; if [ ! -e \"$IDP_KEYS_DIR/keys.json\" ]; then idp keys generate; idp keys rotate --force; fi; exec \"$@\"", "idp-entrypoint"]
CMD ["gunicorn", "-c", "config/gunicorn.conf.py", "idp:create_app()"]
