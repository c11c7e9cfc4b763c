"""This process's id, kept current across forks without a system call per
request (os.getpid is one; gunicorn forks its workers after the app is
built, so what is kept per process is checked against this)."""

from __future__ import annotations

import os

_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def pid() -> int:
    """The id of the process running now (os.getpid, read once per fork)."""
    return _pid
