# One image for every Deltaflow process: `deltaflow migrate | api | worker` (see docker-compose.yml).

# The dashboard's front-end packages (Plotly's cartesian bundle), installed from the npm
# registry by the lock file, never committed; only node_modules/ goes into the image.
FROM node:20-slim AS dashboard
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DELTAFLOW_DATA_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY migrations ./migrations
COPY service ./service
COPY worker ./worker
COPY deltaflow_client ./deltaflow_client
# service.dashboard looks for node_modules/ beside service/ (else it serves the plotly
# package's full 4.8 MB bundle and says so in the log).
COPY --from=dashboard /build/node_modules ./node_modules
# Editable, so `deltaflow migrate` finds the Alembic scripts in /app/migrations.
RUN pip install -e .

RUN useradd --create-home --uid 10001 deltaflow \
    && mkdir -p /data && chown deltaflow /data
USER deltaflow

EXPOSE 8000
CMD ["deltaflow", "api", "--host", "0.0.0.0", "--port", "8000"]
