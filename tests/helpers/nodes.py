"""Server nodes as in production: each a gunicorn of its own (master and
workers in one process group, so the whole node can be killed at once), on an
instance folder of its own, sharing what "Running at scale" (README) says
nodes share: the database, the S3 bucket, the secret key and the online
signing keys."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.faults import wait_until
from tests.moto_server import CREDENTIALS, free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Shared:
    """What every node of one deployment is configured with alike."""

    database_url: str
    s3_endpoint: str
    bucket: str
    keys: Path
    secret_key: str = "two-nodes-secret-key"

    def environment(self) -> dict[str, str]:
        return {
            "DATABASE_URL": self.database_url,
            "UPGRADE_SERVER_SECRET_KEY": self.secret_key,
            "UPGRADE_SERVER_KEYS_PATH": str(self.keys),
            "UPGRADE_SERVER_STORAGE_BACKEND": "s3",
            "S3_BUCKET": self.bucket,
            "S3_ENDPOINT_URL": self.s3_endpoint,
            "S3_REGION": CREDENTIALS["region_name"],
            "S3_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
            "S3_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
            "S3_PART_SIZE_MB": "5",
        }


class Node:
    """One gunicorn (master and workers in a process group of their own) on a
    loopback port, with its own instance folder and log."""

    def __init__(self, name: str, shared: Shared, instance: Path, workers: int, **env: str) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = instance / "gunicorn.log"
        instance.mkdir(parents=True, exist_ok=True)
        self._environment = {
            **os.environ,
            **shared.environment(),
            "UPGRADE_SERVER_INSTANCE_PATH": str(instance),
            "UPGRADE_SERVER_LOG_LEVEL": "INFO",
            "UPGRADE_SERVER_TUF_BIN_BITS": "4",
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "GUNICORN_WORKERS": str(workers),
            "GUNICORN_ACCESS_LOG": "/dev/null",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the node; `wait_ready` waits for it to answer."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "wsgi:app"],
                cwd=ROOT,
                env=self._environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill() takes the workers too
            )

    def wait_ready(self) -> None:
        wait_until(self._healthy, 60, f"node {self.name} answering /healthz")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL to master and workers at once, as a host that dies; returns
        once the master has exited and nothing answers on the node's port."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        wait_until(lambda: not _listening(self.port), 10, f"node {self.name} no longer listening")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _healthy(self) -> bool:
        if not self.running:
            raise AssertionError(f"node {self.name} exited:\n{self.log()}")
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False


@contextmanager
def running_nodes(
    shared: Shared, folder: Path, names: tuple[str, ...] = ("a", "b"), workers: int = 2, **env: str
) -> Iterator[list[Node]]:
    """Nodes started at once and handed over once each answers /healthz;
    killed afterwards (they keep nothing worth a graceful stop)."""
    nodes = [Node(name, shared, folder / name, workers, **env) for name in names]
    try:
        for node in nodes:
            node.start()
        for node in nodes:
            node.wait_ready()
        yield nodes
    finally:
        for node in nodes:
            if node.running:
                node.kill()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
