# syntax=docker/dockerfile:1
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends openssh-client git postgresql-client \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 ocore

WORKDIR /app
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock
COPY pyproject.toml README.md alembic.ini ./
COPY migrations ./migrations
COPY src ./src
RUN pip install --no-cache-dir --no-deps -e .

USER ocore
ENV OCORE_DATA_DIR=/home/ocore/data
EXPOSE 8000
CMD ["ocore", "serve", "--host", "0.0.0.0", "--port", "8000"]
