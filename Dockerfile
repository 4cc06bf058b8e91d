# onsale: one image for the API (`onsale serve`), the writer and the sweeper.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    APP_ENV=production \
    DATA_DIR=/app/var \
    PORT=3000

WORKDIR /app

# Dependencies first (cached while only the code changes), then the code.
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY api ./api
COPY persistence ./persistence
COPY loadtest ./loadtest
COPY lua ./lua
RUN pip install .

# The Lua scripts are read from <repo>/lua next to the engine package, which a plain
# `pip install .` does not ship: import the code from /app, where lua/ sits beside it.
ENV PYTHONPATH=/app

RUN useradd --system --uid 10001 --home-dir /app onsale \
    && mkdir -p /app/var \
    && chown onsale /app/var
USER onsale

EXPOSE 3000
CMD ["onsale", "serve"]
