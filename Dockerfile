# The provider under gunicorn. Build: docker build -t member-idp .
# Runs as an unprivileged user; signing keys live on the /app/keys volume.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    # create_app() finds templates/ and config/ next to the idp package, so the
    # code runs from /app (ahead of the copy pip puts in site-packages).
    PYTHONPATH=/app \
    IDP_KEYS_DIR=/app/keys \
    IDP_TENANTS_DIR=/app/config/tenants

WORKDIR /app

RUN groupadd --system --gid 10001 idp \
    && useradd --system --uid 10001 --gid idp --home-dir /app --no-create-home --shell /usr/sbin/nologin idp

# pyproject.toml names README.md as the package's readme: the build needs both.
COPY pyproject.toml README.md ./
COPY idp/ idp/
RUN pip install .

COPY templates/ templates/
COPY config/ config/

# The keys directory belongs to the service user; a new named volume mounted
# here starts with this ownership. Private keys are written 0600.
RUN mkdir -p /app/keys && chown idp:idp /app/keys && chmod 0700 /app/keys
VOLUME ["/app/keys"]

USER idp
EXPOSE 8000

# Migrate, create the first signing keys if the volume is empty (one key that
# signs at once, one published as next), then serve. `exec` makes gunicorn
# PID 1 so that `docker stop` reaches it and it shuts down gracefully.
ENTRYPOINT ["/bin/sh", "-c", "set -e; idp db upgrade; if [ ! -e \"$IDP_KEYS_DIR/keys.json\" ]; then idp keys generate; idp keys rotate --force; fi; exec gunicorn -c config/gunicorn.conf.py 'idp:create_app()'"]
