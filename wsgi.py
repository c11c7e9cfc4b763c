"""WSGI entry point: `gunicorn --config gunicorn.conf.py wsgi:app`."""

from upgrade_server import create_app

app = create_app()
