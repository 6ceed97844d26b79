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
# The project itself goes in as a built wheel, as users install it: migrations, queries
# and templates are package data inside it, so nothing is read from the source tree.
COPY service ./service
COPY deploy/healthcheck.py ./deploy/healthcheck.py
RUN pip wheel --no-deps --wheel-dir /tmp/wheels . \
 && pip install --no-deps /tmp/wheels/letterbox-*.whl \
 && python -m compileall -q /app/deploy \
 && cd / \
 && python -c "from service.db.sql_files import MIGRATIONS_DIR, QUERIES_DIR, sql_files; assert sql_files(MIGRATIONS_DIR) and sql_files(QUERIES_DIR), MIGRATIONS_DIR" \
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
# Same path as in the build stage: the scripts' #! lines point there. Owned by root and
# read-only to the service user: the running service cannot change its own code.
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app/deploy/healthcheck.py /app/deploy/healthcheck.py
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
