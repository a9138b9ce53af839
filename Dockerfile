# One image for every service (python:3.11-slim, uvicorn; docs/operations.md); the command picks it.

# The web dashboard (gateway/web), built from the committed lock file; the gateway serves
# the result at / (gateway/dashboard.py). Only the built files reach the image.
FROM node:20-slim AS web
WORKDIR /web
COPY gateway/web/package.json gateway/web/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY gateway/web/index.html gateway/web/tsconfig.json gateway/web/vite.config.ts ./
COPY gateway/web/src ./src
RUN npm run build

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    NUMBA_CACHE_DIR=/tmp/numba-cache
WORKDIR /app

COPY pyproject.toml README.md alembic.ini ./
COPY shared ./shared
COPY migrations ./migrations
COPY gateway ./gateway
COPY --from=web /web/dist ./gateway/web/dist
COPY market_service ./market_service
COPY user_service ./user_service
COPY trading_engine ./trading_engine
COPY analysis_service ./analysis_service
COPY notification_service ./notification_service
COPY tradebot ./tradebot
# No extras: the embedded servers (`local`) are for `tradebot up` only, and have no arm64 wheels.
RUN pip install . && useradd --create-home --uid 10001 tradebot
USER tradebot

# `tradebot serve <service> --host 0.0.0.0` in compose; the gateway by default.
CMD ["tradebot", "serve", "gateway", "--host", "0.0.0.0"]
