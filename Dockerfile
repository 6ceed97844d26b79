# syntax=docker/dockerfile:1
# One image runs `serve`, `worker` and `migrate`:  docker run IMAGE serve --no-worker
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
RUN python -m venv /opt/letterbox && /opt/letterbox/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/letterbox --create-home letterbox
COPY --from=build /opt/letterbox /opt/letterbox
# The SQL is read from beside the installed package (service/db/pool.py looks two levels up).
COPY sql /opt/letterbox/lib/python3.11/site-packages/sql
ENV PATH=/opt/letterbox/bin:$PATH \
    LETTERBOX_HOST=0.0.0.0 \
    LETTERBOX_VAR_DIR=/var/lib/letterbox \
    LETTERBOX_LOG_FORMAT=json
USER letterbox
WORKDIR /var/lib/letterbox
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"
ENTRYPOINT ["letterbox"]
CMD ["serve"]
