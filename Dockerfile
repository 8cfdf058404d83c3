# Keystile: a small image that runs as a non-root user (uid 10001), with a health check.
#
# BASE is any image with python3 (3.11 or later) and its venv module; the default is
# the official Python image. docs/container.md builds one from Debian's packages.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
# Settings for pip in this stage only (a private index, a CA bundle mounted for the
# build: docs/container.md); unset, pip uses its defaults. Nothing of them is kept.
ARG PIP_INDEX_URL
ARG PIP_CERT
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sidecar ./sidecar
COPY admin ./admin
# A virtual environment: the same layout on every base, and no clash with a
# distribution's own Python packages (PEP 668).
RUN python3 -m venv /opt/keystile \
 && /opt/keystile/bin/pip install --no-cache-dir --disable-pip-version-check . \
 && find /opt/keystile -name __pycache__ -prune -exec rm -rf {} +

FROM ${BASE}
# The data directory exists in the image, owned by the user, so a fresh named
# volume mounted on it starts out writable.
RUN groupadd --system --gid 10001 keystile \
 && useradd --system --uid 10001 --gid keystile --home-dir /var/lib/keystile --create-home keystile \
 && install -d -m 0700 -o keystile -g keystile /var/lib/keystile/data
COPY --from=build /opt/keystile /opt/keystile
COPY config.example.toml /etc/keystile/config.toml
USER 10001:10001
WORKDIR /var/lib/keystile
ENV PATH=/opt/keystile/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    KEYSTILE_PROXY_LISTEN=0.0.0.0:8080 \
    KEYSTILE_REDIS_DATA_DIR=/var/lib/keystile/data
EXPOSE 8080 8081
# The port is read from KEYSTILE_PROXY_LISTEN, so moving the proxy keeps the check right.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python3", "-c", "import os, sys, urllib.request as u; port = os.environ.get('KEYSTILE_PROXY_LISTEN', ':8080').rpartition(':')[2]; sys.exit(u.urlopen(f'http://127.0.0.1:{port}/_keystile/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["keystile"]
CMD ["serve", "--config", "/etc/keystile/config.toml"]
