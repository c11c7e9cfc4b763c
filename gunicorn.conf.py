"""gunicorn settings for `gunicorn --config gunicorn.conf.py wsgi:app` in a checkout
or an image: those of the package (upgrade_server/gunicorn_conf.py, see the README)."""

from upgrade_server.gunicorn_conf import *  # noqa: F403
