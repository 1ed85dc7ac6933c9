# One image for every applyq process: worker, dispatcher, flower, metrics, migrate, sandbox.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
# The runtime dependencies exactly as locked (versions and hashes), in a layer of their own that is rebuilt only
# when the lock changes; then applyq itself, with --no-deps and the locked setuptools, so nothing unpinned enters.
COPY requirements.lock ./
RUN pip install --no-deps --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY worker ./worker
# Migrations and Lua scripts ship inside the package, so a plain install can migrate.
RUN pip install --no-deps --no-build-isolation . && pip check && useradd --create-home --uid 10001 applyq
USER applyq

ENTRYPOINT ["applyq"]
CMD ["--help"]
