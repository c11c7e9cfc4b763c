"""RAUC's hawkBit client (rauc-hawkbit, from PyPI) run for real against the
server, as a device running RAUC does: a private D-Bus daemon standing in for
the system bus, a stand-in for RAUC's D-Bus service on it
(tests/ddi/rauc_service.py), and `rauc-hawkbit-client` as its own process.

The client runs in `.venv-rauc-hawkbit` (Debian's /usr/bin/python3 with its
python3-gi; scripts/bootstrap.sh requirements-dev.txt makes it from
tests/ddi/rauc-hawkbit-requirements.txt). docs/ddi-clients.md says how the
client behaves.

Every wait here is on a condition (a file, the database), with a deadline.
"""

from __future__ import annotations

import ast
import itertools
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tests.faults import wait_for

ROOT = Path(__file__).resolve().parent.parent.parent
CLIENT = ROOT / ".venv-rauc-hawkbit" / "bin" / "rauc-hawkbit-client"
SERVICE = ROOT / "tests" / "ddi" / "rauc_service.py"
# Debian's Python: the one with python3-gi (the service, the client's venv).
SYSTEM_PYTHON = "/usr/bin/python3"
DEADLINE = 30.0
# What rauc-hawkbit logs when its polling failed (any error: it retries after 60 s).
RETRY = "Retry will happen in"

T = TypeVar("T")


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def _environment(bus: str) -> dict[str, str]:
    """This environment, on `bus` as the system bus, without what points
    Python at the project's tree or venv (these processes run Debian's Python)."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }
    return {**environment, "DBUS_SYSTEM_BUS_ADDRESS": bus, "PYTHONUNBUFFERED": "1"}


def _tail(path: Path, lines: int = 60) -> str:
    if not path.exists():
        return f"({path.name}: nothing written)"
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return f"--- {path.name} (last {lines} lines)\n" + "\n".join(text[-lines:])


@contextmanager
def private_bus(folder: Path) -> Iterator[str]:
    """A dbus-daemon of its own (session rules: any name may be owned), to be
    the client's system bus; yields its address."""
    folder.mkdir(parents=True, exist_ok=True)
    socket = folder / "bus"
    errors = (folder / "dbus-daemon.log").open("wb")
    process = subprocess.Popen(
        [
            "dbus-daemon",
            "--session",
            "--nofork",
            "--nopidfile",
            f"--address=unix:path={socket}",
            "--print-address=1",
        ],
        stdout=subprocess.PIPE,
        stderr=errors,
    )
    try:
        assert process.stdout is not None
        address = process.stdout.readline().decode().strip()
        assert address.startswith("unix:"), f"dbus-daemon said {address!r}\n" + _tail(
            folder / "dbus-daemon.log"
        )
        yield address
    finally:
        _stop(process)
        if process.stdout is not None:
            process.stdout.close()
        errors.close()


@dataclass
class RaucService:
    """The stand-in for RAUC's D-Bus service, steered through its state folder."""

    state: Path
    log: Path

    def hold(self) -> None:
        """Installs from now on wait, before they complete, for `release()`."""
        (self.state / "hold").touch()

    def release(self) -> None:
        (self.state / "hold").unlink(missing_ok=True)

    def results_in(self, result: int) -> None:
        """Installs from now on complete with `result` (0: success)."""
        (self.state / "result").write_text(f"{result}\n")

    def journal(self) -> list[list[str]]:
        path = self.state / "journal"
        if not path.exists():
            return []
        return [line.split(" ", 2) for line in path.read_text(encoding="utf-8").splitlines()]

    def installs(self) -> int:
        return sum(1 for step in self.journal() if step[0] == "install")

    def completed(self) -> list[int]:
        """The results of the installs completed so far."""
        return [int(step[2]) for step in self.journal() if step[0] == "completed"]

    def bundle(self, n: int) -> bytes:
        """The bundle handed over by the n-th install (from 1)."""
        return (self.state / "bundles" / f"{n}.raucb").read_bytes()

    def describe(self) -> str:
        return _tail(self.state / "journal") + "\n" + _tail(self.log)


@contextmanager
def rauc_service(bus: str, folder: Path) -> Iterator[RaucService]:
    """The stand-in, run by Debian's Python on `bus`; yields once it owns
    `de.pengutronix.rauc` (the client fails at start without it)."""
    state = folder / "rauc-service"
    state.mkdir(parents=True, exist_ok=True)
    log = folder / "rauc-service.log"
    output = log.open("wb")
    process = subprocess.Popen(
        [SYSTEM_PYTHON, str(SERVICE), str(state)],
        env=_environment(bus),
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    service = RaucService(state, log)
    try:
        wait_for(
            lambda: (state / "ready").exists() or process.poll() is not None,
            "the RAUC stand-in to own de.pengutronix.rauc",
            explain=service.describe,
        )
        assert process.poll() is None, "the RAUC stand-in stopped\n" + service.describe()
        yield service
    finally:
        _stop(process)
        output.close()


def write_client_config(
    folder: Path, server_url: str, tenant: str, serial: str, token: str
) -> Path:
    """rauc-hawkbit's INI config for a device; the bundle is downloaded to
    `folder`/bundle.raucb."""
    folder.mkdir(parents=True, exist_ok=True)
    host = server_url.removeprefix("http://").rstrip("/")
    config = folder / "rauc-hawkbit.cfg"
    config.write_text(
        "[client]\n"
        f"hawkbit_server = {host}\n"
        "ssl = false\n"
        f"tenant_id = {tenant}\n"
        f"target_name = {serial}\n"
        f"auth_token = {token}\n"
        "mac_address = 02:00:00:00:00:01\n"
        f"bundle_download_location = {folder / 'bundle.raucb'}\n"
        "log_level = debug\n",
        encoding="utf-8",
    )
    return config


@dataclass
class RaucClient:
    """A running rauc-hawkbit-client; its log (stdout and stderr) for assertions."""

    process: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def answers(self, path: str) -> list[Any]:
        """The server's JSON answers to the client's GETs of URLs ending in
        `path`, oldest first, as its debug log prints them (Python reprs)."""
        found = []
        lines = self.text().splitlines()
        for line, following in itertools.pairwise(lines):
            _, _, get = line.partition(" DEBUG    GET ")
            if get.endswith(path) and not get.startswith("binary "):
                _, _, answer = following.partition(" DEBUG    ")
                found.append(ast.literal_eval(answer))
        return found

    def polls(self) -> int:
        """Base polls answered so far (each ends in the sleep the server asked for)."""
        return self.text().count("Will sleep for ")

    def describe(self) -> str:
        return _tail(self.log)

    def trouble(self) -> str | None:
        """Why the client will do nothing more in a test's time, if it will
        not: it stopped, or its polling failed (it retries after 60 s)."""
        if self.process.poll() is not None:
            return f"rauc-hawkbit-client stopped ({self.process.returncode})"
        if RETRY in self.text():
            return "rauc-hawkbit-client's polling failed"
        return None

    def wait(
        self,
        condition: Callable[[], T | None],
        what: str,
        describe: Callable[[], str] | None = None,
        timeout: float = DEADLINE,
    ) -> T:
        """`wait_for(condition)`, failing at once if the client is in trouble."""
        described = describe or self.describe

        def met() -> T | None:
            found = condition()
            if not found and (trouble := self.trouble()):
                raise AssertionError(f"{trouble} while waiting for {what}\n{described()}")
            return found

        return wait_for(met, what, timeout, described)

    def wait_for_polls(self, count: int, timeout: float = DEADLINE) -> None:
        """Until the client has had `count` base polls answered in all."""
        self.wait(lambda: self.polls() >= count, f"{count} base polls", timeout=timeout)


@contextmanager
def rauc_hawkbit_client(config: Path, bus: str, log: Path) -> Iterator[RaucClient]:
    """`rauc-hawkbit-client -c config`, on `bus` as its system bus, stopped
    with SIGTERM (it polls until then); its output goes to `log`."""
    assert CLIENT.exists(), (
        f"{CLIENT} is missing: run `bash scripts/bootstrap.sh requirements-dev.txt`"
    )
    output = log.open("wb")
    process = subprocess.Popen(
        [str(CLIENT), "-c", str(config)],
        env=_environment(bus),
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    try:
        yield RaucClient(process, log)
    finally:
        _stop(process)
        output.close()
