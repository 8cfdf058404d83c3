# Keystile: a small image that runs as a non-root user, with a health check.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sidecar ./sidecar
COPY admin ./admin
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/keystile --create-home keystile
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY config.example.toml /etc/keystile/config.toml
USER keystile
WORKDIR /var/lib/keystile
ENV KEYSTILE_PROXY_LISTEN=0.0.0.0:8080 \
    KEYSTILE_REDIS_DATA_DIR=/var/lib/keystile/data
EXPOSE 8080 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/_keystile/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["keystile"]
CMD ["serve", "--config", "/etc/keystile/config.toml"]
