# One image for every applyq process: worker, dispatcher, flower, metrics, migrate, sandbox.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY worker ./worker
COPY migrations ./migrations
# Editable, so `applyq migrate` finds migrations/ next to the package (worker/db/engine.py looks there).
RUN pip install -e . && useradd --create-home --uid 10001 applyq
USER applyq

ENTRYPOINT ["applyq"]
CMD ["--help"]
