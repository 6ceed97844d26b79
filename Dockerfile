# syntax=docker/dockerfile:1
#
# One image for every role:
#   docker run IMAGE migrate             apply pending migrations and exit
#   docker run IMAGE serve --no-worker   the HTTP API alone
#   docker run IMAGE worker              a delivery worker (run as many as you like)
#   docker run IMAGE bounce-receiver     bounce mail by SMTP on LETTERBOX_BOUNCE_SMTP_PORT, alone
#   docker run IMAGE serve               API and worker in one process (the default)
# Production sets LETTERBOX_DATABASE_URL, LETTERBOX_SMTP_URL and LETTERBOX_SECRET_KEYS
# (deploy/README.md); without them the container falls back to the embedded
# PostgreSQL and Maildir under /var/lib/letterbox, which is for trying it out only.

ARG PYTHON_IMAGE=python:3.11-slim

# ---- build: a virtualenv with the dependencies and the project ------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /app
# Dependencies first, read from pyproject.toml alone: a change to the source then
# reuses this layer instead of reinstalling every wheel.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt
# The source lives in /app, with sql/ beside service/: service/db/pool.py reads the
# migrations and queries from Path(__file__).parents[2] / "sql", i.e. /app/sql.  An
# editable install keeps it that way (a regular install would move service/ into
# site-packages, away from sql/) and still provides the `letterbox` command.
COPY service ./service
COPY sql ./sql
COPY deploy/healthcheck.py ./deploy/healthcheck.py
RUN pip install --no-deps -e . \
 && python -m compileall -q /app/service /app/deploy \
 && cd / \
 && python -c "from service.db.pool import MIGRATIONS_DIR, QUERIES_DIR; assert MIGRATIONS_DIR.is_dir() and QUERIES_DIR.is_dir(), MIGRATIONS_DIR" \
 && letterbox --help > /dev/null

# ---- runtime: the virtualenv and the source, no pip cache, no build files ------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="Letterbox" \
      org.opencontainers.image.description="Subscriber and mailing-list microservice" \
      org.opencontainers.image.licenses="MIT"
# A fixed numeric UID/GID so Kubernetes can verify runAsNonRoot and volumes can be chowned to it.
RUN groupadd --system --gid 10001 letterbox \
 && useradd --system --uid 10001 --gid 10001 --no-log-init \
        --home-dir /var/lib/letterbox --create-home --shell /usr/sbin/nologin letterbox
# Same paths as in the build stage: the editable install and the scripts' #! lines point there.
# Owned by root and read-only to the service user: the running service cannot change its own code.
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LETTERBOX_HOST=0.0.0.0 \
    LETTERBOX_PORT=8000 \
    LETTERBOX_VAR_DIR=/var/lib/letterbox \
    LETTERBOX_LOG_FORMAT=json
WORKDIR /var/lib/letterbox
USER 10001:10001
EXPOSE 8000
# Liveness only (/healthz): readiness (/readyz, the database) is for orchestrators to ask.
# For the commands that serve no HTTP (worker, bounce-receiver, migrate) it reports the running process healthy.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/app/deploy/healthcheck.py", "--path", "/healthz"]
# uvicorn and the worker stop gracefully on SIGTERM (finish in-flight work, give leases back).
STOPSIGNAL SIGTERM
ENTRYPOINT ["letterbox"]
CMD ["serve"]
