# listenloop's image: the server (`listenloop serve`) and, with another command, a Dask scheduler
# or worker for its learning rounds (compose.yaml runs all three beside PostgreSQL).
# Build: docker build -t listenloop:local .   (needs PyPI, or PIP_INDEX_URL / PIP_FIND_LINKS)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# An unprivileged user owns the data folder (audio, spectrograms, the feature cache).
RUN useradd --create-home --uid 1000 listenloop \
    && mkdir -p /data/cache \
    && chown -R listenloop:listenloop /data

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip install .

USER listenloop
# The settings' variables (settings.py): `serve` reads LISTENLOOP_DB, LISTENLOOP_DATA and
# LISTENLOOP_SCHEDULER when no option names them; LISTENLOOP_CACHE is the feature cache.
ENV LISTENLOOP_DATA=/data \
    LISTENLOOP_CACHE=/data/cache
VOLUME ["/data"]
EXPOSE 8000
CMD ["listenloop", "serve", "--host", "0.0.0.0", "--port", "8000"]
