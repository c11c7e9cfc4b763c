"""SWUpdate's hawkBit client (suricatta, Debian's `swupdate`) as a separate
process, for tests of the DDI API (see docs/ddi-clients.md).

A `Device` is a folder the client may write (its TMPDIR, config and the
`rootfs` its updates write into), owned by `nobody` when the tests run as
root: the client runs unprivileged, never as root. `build_swu` makes a
CMS-signed .swu whose one file goes into that rootfs; `Device.running()`
starts the client and stops it (SIGTERM) on leaving, keeping its log for
assertion messages; its requests carry the run's number (`RUN_HEADER`).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

SWUPDATE = "/usr/bin/swupdate"
# The header each request of a run carries, with the run's number: a server's
# access log lists a request once answered, so one the last run sent as it was
# stopped can be listed among the next run's.
RUN_HEADER = "X-Swupdate-Run"
# What swupdate logs at every start, of no help in an assertion's message.
_NOISE = re.compile(r"\[(print_registered_handlers|lua_report_exception)\]")


def _run(*command: str | Path, cwd: Path | None = None, stdin: bytes | None = None) -> bytes:
    done = subprocess.run(
        [str(part) for part in command], cwd=cwd, input=stdin, capture_output=True, check=False
    )
    assert done.returncode == 0, f"{command[0]} failed: {done.stderr.decode(errors='replace')}"
    return done.stdout


@dataclass(frozen=True)
class Signer:
    """A self-signed key for .swu images: `cert` is what the device trusts."""

    key: Path
    cert: Path

    @classmethod
    def make(cls, folder: Path, name: str = "ci-swu-signer") -> Signer:
        folder.mkdir(parents=True, exist_ok=True)
        key, cert = folder / f"{name}.key", folder / f"{name}.crt"
        _run(
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-keyout", key, "-out", cert, "-days", "30", "-subj", f"/CN={name}",
            "-addext", "keyUsage=digitalSignature",
            "-addext", "extendedKeyUsage=emailProtection",
        )  # fmt: skip
        return cls(key, cert)


def build_swu(
    out: Path, signer: Signer, version: str, payload: bytes, install_to: Path, hardware: str
) -> Path:
    """A .swu at `out`: sw-description (version, `hardware-compatibility`
    [hardware], one file written to `install_to` by the file handler), its
    CMS signature by `signer`, and the file."""
    with tempfile.TemporaryDirectory(prefix="swu-build-") as folder:
        work = Path(folder)
        (work / "payload.bin").write_bytes(payload)
        (work / "sw-description").write_text(
            "software = {\n"
            f'  version = "{version}";\n'
            f'  hardware-compatibility: [ "{hardware}" ];\n'
            "  files: (\n"
            "    {\n"
            '      filename = "payload.bin";\n'
            f'      path = "{install_to}";\n'
            f'      sha256 = "{hashlib.sha256(payload).hexdigest()}";\n'
            "    }\n"
            "  );\n"
            "};\n"
        )
        _run(
            "openssl", "cms", "-sign", "-in", "sw-description", "-out", "sw-description.sig",
            "-signer", signer.cert, "-inkey", signer.key, "-outform", "DER",
            "-nosmimecap", "-binary", cwd=work,
        )  # fmt: skip
        # sw-description first, its signature next: the order SWUpdate reads them in.
        names = b"sw-description\nsw-description.sig\npayload.bin\n"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(_run("cpio", "-o", "--quiet", "-H", "crc", cwd=work, stdin=names))
    return out


def _unprivileged() -> tuple[list[str], int | None, int | None]:
    """The prefix that drops root (setpriv to nobody), and nobody's uid and gid;
    nothing when the tests do not run as root."""
    if os.geteuid() != 0:
        return [], None, None
    nobody = pwd.getpwnam("nobody")
    prefix = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"]
    return prefix, nobody.pw_uid, nobody.pw_gid


@dataclass
class Device:
    """A device that runs SWUpdate's suricatta against a hawkBit DDI server.

    `hardware` is `board:revision` (`-H`); an update's sw-description must list
    the revision in `hardware-compatibility`."""

    home: Path
    server: str
    tenant: str
    controller_id: str
    token: str = field(repr=False)
    public_key: Path
    hardware: str = "gw:rev-a"
    poll_seconds: int = 1
    logs: list[Path] = field(default_factory=list, repr=False)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @classmethod
    @contextmanager
    def made(
        cls, server: str, tenant: str, controller_id: str, token: str, public_key: Path
    ) -> Iterator[Device]:
        """A Device in a folder of its own under the system's temporary folder
        (pytest's is private to root), readable and writable by the client;
        removed afterwards."""
        home = Path(tempfile.mkdtemp(prefix="swupdate-device-"))
        try:
            yield cls(home, server, tenant, controller_id, token, public_key)
        finally:
            shutil.rmtree(home, ignore_errors=True)

    def __post_init__(self) -> None:
        _, uid, gid = _unprivileged()
        for folder in (self.home, self.rootfs, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)
            if uid is not None and gid is not None:
                os.chown(folder, uid, gid)
        # A copy the client can read wherever the tests keep the certificate.
        shutil.copyfile(self.public_key, self.home / "trusted.crt")
        os.chmod(self.home / "trusted.crt", 0o644)

    @property
    def rootfs(self) -> Path:
        """Where this device's updates write their files."""
        return self.home / "rootfs"

    @property
    def tmp(self) -> Path:
        """The client's TMPDIR: its control sockets and downloads, away from /tmp."""
        return self.home / "tmp"

    @property
    def revision(self) -> str:
        return self.hardware.split(":", 1)[1]

    @property
    def run(self) -> int:
        """The number of the last run started (1 for the first)."""
        return len(self.logs)

    def log(self, lines: int = 40) -> str:
        """The last `lines` lines of each run's log so far, for an assertion's message."""
        runs = []
        for n, path in enumerate(self.logs, 1):
            text = path.read_text(errors="replace").splitlines() if path.exists() else []
            text = [line for line in text if not _NOISE.search(line)]
            runs.append(f"--- swupdate run {n} ---\n" + "\n".join(text[-lines:]))
        if self.process is not None and self.process.poll() is not None:
            runs.append(f"--- swupdate exited with {self.process.returncode} ---")
        return "\n".join(runs)

    def _config(self) -> Path:
        config = self.home / "swupdate.cfg"
        config.write_text(
            "globals : {\n"
            "  verbose = true;\n"
            "  loglevel = 6;\n"
            f'  public-key-file = "{self.home / "trusted.crt"}";\n'
            "};\n"
            "suricatta : {\n"
            f'  tenant = "{self.tenant}";\n'
            f'  id = "{self.controller_id}";\n'
            f'  url = "{self.server}";\n'
            f"  polldelay = {self.poll_seconds};\n"
            "  retry = 2;\n"
            "  retrywait = 1;\n"
            f'  targettoken = "{self.token}";\n'
            "  connection-timeout = 10;\n"
            "};\n"
        )
        os.chmod(config, 0o644)
        return config

    @contextmanager
    def running(self, confirm: int | None = None) -> Iterator[subprocess.Popen[bytes]]:
        """swupdate polling the server until the block ends (then SIGTERM).
        `confirm=2` first reports the pending update a success, as after the
        reboot into it (`-u "-c 2"`)."""
        prefix, _, _ = _unprivileged()
        command = [*prefix, SWUPDATE, "-f", str(self._config()), "-H", self.hardware]
        run = len(self.logs) + 1
        # Suricatta runs only when -u is given, its settings coming from the
        # config; every request it sends names the run (-a), for the server's log.
        suricatta = f"-e -a {RUN_HEADER} {run}" + ("" if confirm is None else f" -c {confirm}")
        command += ["-u", suricatta]
        log_path = self.home / f"swupdate-{run}.log"
        self.logs.append(log_path)
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TMPDIR": str(self.tmp)},
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            yield self.process
        finally:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
