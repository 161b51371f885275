# The Tickwatch image behind docker-compose.yml's init, worker, deliveries, bridge, api and bot services.
# Reproducible: the dependencies are exactly uv.lock's (uv sync --frozen), in a layer of their own that a
# source change does not rebuild; the base images are pinned.

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM python:3.11.14-slim-bookworm AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PROJECT_ENVIRONMENT=/opt/venv UV_PYTHON_DOWNLOADS=never
WORKDIR /app
# The `charts` extra (matplotlib): the image also runs the Slack bot, whose /price --chart draws.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --extra charts --no-install-project
COPY README.md ./
COPY pipeline pipeline
COPY tickwatch tickwatch
COPY bot bot
COPY api api
COPY stack stack
COPY templates templates
COPY scenarios scenarios
RUN uv sync --frozen --no-dev --extra charts --no-editable

FROM python:3.11.14-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
# Celery warns against running as root, and nothing here needs it; the state volume holds the secret key.
RUN useradd --system --uid 10001 --home-dir /app tickwatch \
    && mkdir -p /var/tmp/tickwatch && chown tickwatch /var/tmp/tickwatch && chmod 0700 /var/tmp/tickwatch
USER tickwatch
CMD ["tickwatch", "--help"]
