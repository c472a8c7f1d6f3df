# syntax=docker/dockerfile:1.7
# One image for every role: api, controller, worker, migrate, maintenance.
# The role is chosen by the command Kubernetes runs (see k8s/base); the default is the API.

# ---- assets: the explorer's chart and Swagger UI from the npm registry (no CDN at run time) ----
FROM node:20.19.5-bookworm-slim AS assets

WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error \
    && mkdir vendor \
    && cp node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.js vendor/ \
    && cp node_modules/swagger-ui-dist/swagger-ui-bundle.js node_modules/swagger-ui-dist/swagger-ui.css vendor/

# ---- build: resolve the locked runtime dependencies into a venv, then the project itself ----
# Base pinned by exact tag; bump build and runtime together.
FROM python:3.11.14-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src

# Dependencies first, so a code change does not re-download the lock.
COPY requirements/lock.txt requirements/lock.txt
RUN python -m venv /opt/stockdata \
    && /opt/stockdata/bin/pip install --no-cache-dir --only-binary=:all: -r requirements/lock.txt

# The project, without touching the locked dependencies. The DuckDB delta/azure extensions
# are the duckdb-extension-* wheels already installed above: nothing is fetched at run time.
COPY pyproject.toml README.md ./
COPY stockdata/ stockdata/
COPY lake/ lake/
COPY loaders/ loaders/
COPY catalog/ catalog/
COPY query_api/ query_api/
COPY migrations/ migrations/
COPY --from=assets /src/vendor/ query_api/static/vendor/
RUN /opt/stockdata/bin/pip install --no-cache-dir --no-deps . \
    && /opt/stockdata/bin/stockdata --help >/dev/null

# ---- runtime: the same slim base, the venv, a non-root user; no compilers, no pip cache ----
FROM python:3.11.14-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="stockdata" \
      org.opencontainers.image.description="End-of-day stock data lakehouse: API, ingestion and maintenance roles" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid 10001 stockdata \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /tmp --shell /usr/sbin/nologin stockdata

COPY --from=build /opt/stockdata /opt/stockdata

# The root filesystem is read-only in Kubernetes: everything writable lives under /tmp
# (an emptyDir there). PROFILE=prod refuses the shipped development secrets.
ENV PATH=/opt/stockdata/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    STOCKDATA_HOME=/tmp/stockdata \
    STOCKDATA_PROFILE=prod

WORKDIR /tmp
USER 10001:10001
EXPOSE 8000

# Health is per role and belongs to Kubernetes (probes on /health/live and /health/ready for
# the API; queue visibility renewal for the worker), so the image declares none of its own.
HEALTHCHECK NONE

ENTRYPOINT ["stockdata"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
