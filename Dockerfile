# One image for every applyq process: worker, dispatcher, flower, metrics, migrate, sandbox.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY worker ./worker
# Migrations and Lua scripts ship inside the package, so a plain install can migrate.
RUN pip install . && useradd --create-home --uid 10001 applyq
USER applyq

ENTRYPOINT ["applyq"]
CMD ["--help"]
