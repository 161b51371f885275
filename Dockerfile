# The Tickwatch image behind docker-compose.yml's init, worker, bridge, api and bot services.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY . .
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /app tickwatch \
    && mkdir -p /var/tmp/tickwatch && chown tickwatch /var/tmp/tickwatch  # the shared state volume (secret key)

# Celery warns against running as root, and nothing here needs it.
USER tickwatch
CMD ["tickwatch", "--help"]
