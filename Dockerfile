# upgrade_server: gunicorn on a slim Python base, as a non-root user.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    UPGRADE_SERVER_INSTANCE_PATH=/var/lib/upgrade-server \
    GUNICORN_BIND=0.0.0.0:8000

# CJK fonts: the server renders Chinese release notes to PDF.
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-noto-cjk libpango-1.0-0 libpangoft2-1.0-0 \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --system --create-home --uid 10001 upgrade \
    && install -d -o upgrade -g upgrade -m 0750 /var/lib/upgrade-server

WORKDIR /srv/upgrade-server
COPY pyproject.toml requirements.txt README.md ./
COPY upgrade_server ./upgrade_server
COPY migrations ./migrations
RUN pip install -r requirements.txt
COPY keys ./keys
COPY wsgi.py gunicorn.conf.py ./

USER upgrade
VOLUME ["/var/lib/upgrade-server"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"

# Migrate (a no-op when current), then serve.
CMD ["sh", "-c", "upgrade-server db upgrade && exec gunicorn --config gunicorn.conf.py wsgi:app"]
