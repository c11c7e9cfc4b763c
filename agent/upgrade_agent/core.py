"""What the agent does: check, download, verify, install, report."""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import urllib3
from semver import Version
from tuf.api.exceptions import LengthOrHashMismatchError, RepositoryError
from tuf.ngclient import Updater

from upgrade_agent.config import AgentConfig
from upgrade_agent.fetcher import EnvironmentProxies, TokenFetcher

try:
    USER_AGENT = f"upgrade-agent/{package_version('upgrade-agent')}"
except PackageNotFoundError:  # run from a source tree
    USER_AGENT = "upgrade-agent"

_CHUNK = 1024 * 1024


class AgentError(Exception):
    """A step failed; `code` is what the agent reports to the server."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class WaitingForOperatorError(AgentError):
    """The update changes parameters that need the operator's action, and the
    operator has not acknowledged it on the device yet."""

    def __init__(self, offer: Offer) -> None:
        names = ", ".join(p["name"] for p in offer.operator_actions)
        super().__init__(
            "E_NOT_ACKNOWLEDGED",
            f"{offer.version} waits for the operator ({names}): "
            f"run `upgrade-agent acknowledge {offer.version}` once done",
        )
        self.offer = offer


@dataclass
class Offer:
    release_id: int
    version: str
    target_path: str
    length: int
    sha256: str
    download_url: str
    poll_seconds: int
    parameters: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Offer:
        return cls(
            release_id=int(data["release_id"]),
            version=str(data["version"]),
            target_path=str(data["target_path"]),
            length=int(data["length"]),
            sha256=str(data["hashes"]["sha256"]),
            download_url=str(data["download_url"]),
            poll_seconds=int(data.get("poll_seconds", 1800)),
            parameters=[p for p in data.get("parameters") or [] if isinstance(p, dict)],
        )

    @property
    def operator_actions(self) -> list[dict[str, Any]]:
        """The parameter changes the operator must act on before the install."""
        return [p for p in self.parameters if p.get("operator_action")]


def _text(value: Any, language: str) -> str:
    """A text that may be given per language ({"zh-CN": ..., "en": ...})."""
    if isinstance(value, dict):
        chosen = value.get(language) or value.get(language.split("-")[0]) or value.get("en")
        if chosen is None and value:
            chosen = next(iter(value.values()))
        return str(chosen or "")
    return "" if value is None or isinstance(value, bool) else str(value)


def describe_actions(offer: Offer, language: str = "en") -> list[str]:
    """One line per parameter change the operator must act on, in their terms:
    the parameter, its default before and after, and what to do."""
    lines = []
    for parameter in offer.operator_actions:
        unit = f" {parameter['unit']}" if parameter.get("unit") else ""
        change = ""
        if "old_default" in parameter or "new_default" in parameter:
            old = parameter.get("old_default", "?")
            new = parameter.get("new_default", "?")
            change = f": default {old}{unit} -> {new}{unit}"
        # `operator_action` is a flag, or the action itself as text.
        action = _text(parameter.get("action"), language) or _text(
            parameter.get("operator_action"), language
        )
        lines.append(
            f"{parameter.get('name', '?')}{change}; action: {action or 'see the release notes'}"
        )
    return lines


# An install step (event_id) and an alarm (alarm_id) carry an id the server
# counts once, so they may be sent again when a proxy answers 502-504 (its node
# went down) or the answer is lost; urllib3 retries no POST unless told.
_IDEMPOTENT_POST_RETRIES = urllib3.Retry(
    total=3, backoff_factor=0.5, status_forcelist=(502, 503, 504), allowed_methods=None
)


class Agent:
    def __init__(self, config: AgentConfig, log: Callable[[str], None] = print) -> None:
        self.config = config
        self.log = log
        # Every request (check, download, reports, alarms) through the
        # environment's proxy, as the TUF client's metadata fetches.
        self.http = EnvironmentProxies(
            timeout=urllib3.Timeout(connect=10.0, read=config.timeout_seconds),
            retries=urllib3.Retry(total=3, backoff_factor=0.5, status_forcelist=(502, 503, 504)),
        )
        self.state_file = config.state_dir / "state.json"
        self.downloads = config.state_dir / "downloads"
        self.tuf_dir = config.state_dir / "tuf"
        for folder in (self.downloads, self.tuf_dir):
            folder.mkdir(parents=True, exist_ok=True)

    # --- state -----------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        if self.state_file.exists():
            data: dict[str, Any] = json.loads(self.state_file.read_text())
            return data
        # None: not known here; the server is asked (known_version()).
        return {"current_version": self.config.initial_version}

    def save(self, **changes: Any) -> None:
        state = {**self.state(), **changes}
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.state_file)

    @property
    def current_version(self) -> str | None:
        version = self.state().get("current_version")
        return str(version) if version else None

    def known_version(self) -> str:
        """This device's version: its own record, else the one the server
        knows (then kept as its own). Never a made-up one: when neither knows,
        AgentError E_VERSION_UNKNOWN, and nothing is reported."""
        version = self.current_version
        if version is not None:
            return version
        try:
            response = self.http.request(
                "GET", self._url("/api/device/v1/device"), headers=self._headers()
            )
        except urllib3.exceptions.HTTPError as exc:
            raise AgentError("E_CHECK", f"cannot ask the server for this device: {exc}") from exc
        if response.status != 200:
            raise AgentError("E_CHECK", f"the server's device record answered {response.status}")
        version = json.loads(response.data).get("current_version")
        if not version:
            raise AgentError(
                "E_VERSION_UNKNOWN",
                "neither this device nor the server knows its installed version: set"
                " `initial_version` in the agent's config",
            )
        self.save(current_version=version)
        self.log(f"installed version {version}, as the server knows it")
        return str(version)

    def acknowledged(self, offer: Offer) -> bool:
        """May this offer be installed: no operator action needed, or the
        operator acknowledged it here (or the site allows it unattended)."""
        if not offer.operator_actions or self.config.auto_acknowledge:
            return True
        return offer.version in (self.state().get("acknowledged") or {})

    def acknowledge(self, version: str) -> Offer:
        """The operator has done what the offered update's parameter changes
        need: the next run installs it. Raises AgentError unless `version` is
        the update offered now."""
        offer = self.offer()
        if offer is None or offer.version != version:
            offer = self.check()
        if offer is None or offer.version != version:
            now = offer.version if offer else "nothing"
            raise AgentError("E_ACKNOWLEDGE", f"{version} is not the update offered now ({now})")
        acknowledged = dict(self.state().get("acknowledged") or {})
        acknowledged[version] = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "parameters": [p.get("name") for p in offer.operator_actions],
        }
        self.save(acknowledged=acknowledged)
        return offer

    def offer(self) -> Offer | None:
        data = self.state().get("offer")
        return Offer.from_json(data) if data and "version" in data else None

    def waiting(self) -> dict[str, Any] | None:
        """Set when the last check said to wait (outside the maintenance window):
        the reason and until when."""
        data = self.state().get("offer") or {}
        wait: dict[str, Any] | None = data.get("wait")
        return wait

    def not_entitled(self) -> dict[str, Any] | None:
        """What the last check said of a newer release coverage does not include."""
        data = self.state().get("offer") or {}
        hint: dict[str, Any] | None = data.get("newer_not_entitled")
        return hint

    # --- HTTP ------------------------------------------------------------------

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.config.token}",
            "User-Agent": USER_AGENT,
            **(extra or {}),
        }

    def _url(self, path: str) -> str:
        return self.config.server.rstrip("/") + path

    def report(
        self,
        status: str,
        offer: Offer | None = None,
        *,
        version: str | None = None,
        error: AgentError | None = None,
    ) -> None:
        """Tell the server about a step; retried posts reuse the event id."""
        body: dict[str, Any] = {"event_id": uuid.uuid4().hex, "status": status}
        if offer is not None:
            body["release_id"] = offer.release_id
        else:
            body["version"] = version
        if error is not None:
            body["error_code"] = error.code
            body["error_text"] = str(error)[:2000]
        try:
            response = self.http.request(
                "POST",
                self._url("/api/device/v1/installs"),
                body=json.dumps(body).encode(),
                headers=self._headers({"Content-Type": "application/json"}),
                retries=_IDEMPOTENT_POST_RETRIES,
            )
            if response.status >= 400:
                self.log(f"report {status} refused: {response.status} {response.data[:200]!r}")
        except urllib3.exceptions.HTTPError as exc:
            self.log(f"report {status} not delivered: {exc}")

    def alarm(
        self,
        code: str,
        level: int,
        message: str = "",
        details: dict[str, Any] | None = None,
        clear: bool = False,
        attempts: int = 3,
    ) -> int | None:
        """Upload a fault alarm (or its clearing); returns the ticket id. The
        alarm id is chosen here, so a retry after a lost answer counts once."""
        body = {
            "alarm_id": uuid.uuid4().hex,
            "event": "clear" if clear else "raise",
            "code": code,
            "level": level,
            "message": message,
            "details": details or {},
            "occurred_at": datetime.now(UTC).isoformat(),
        }
        for attempt in range(attempts):
            try:
                response = self.http.request(
                    "POST",
                    self._url("/api/device/v1/alarms"),
                    body=json.dumps(body).encode(),
                    headers=self._headers({"Content-Type": "application/json"}),
                    retries=_IDEMPOTENT_POST_RETRIES,
                )
            except urllib3.exceptions.HTTPError as exc:
                self.log(f"alarm {code} not delivered (attempt {attempt + 1}): {exc}")
                continue
            if response.status >= 400:
                raise AgentError("E_ALARM", f"alarm refused: {response.status}")
            ticket: int | None = json.loads(response.data).get("ticket_id")
            return ticket
        raise AgentError("E_ALARM", f"alarm {code} not delivered")

    # --- check -------------------------------------------------------------------

    def check(self) -> Offer | None:
        """Ask the server what to install now; remembers the offer."""
        body = {
            "current_version": self.known_version(),
            "hardware_revision": self.config.hardware_revision,
            "channel": self.config.channel,
            "attributes": self.config.attributes,
        }
        etag = self.state().get("check_etag")
        headers = self._headers({"Content-Type": "application/json"})
        if etag:
            headers["If-None-Match"] = etag
        try:
            response = self.http.request(
                "POST",
                self._url("/api/device/v1/update-check"),
                body=json.dumps(body).encode(),
                headers=headers,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise AgentError("E_CHECK", f"update check failed: {exc}") from exc
        if response.status == 304:
            self.save(last_check=time.time())
            return self.offer()
        if response.status == 204:
            self.save(offer=None, check_etag=response.headers.get("ETag"), last_check=time.time())
            return None
        if response.status != 200:
            raise AgentError("E_CHECK", f"update check answered {response.status}")
        data = json.loads(response.data)
        self.save(offer=data, check_etag=response.headers.get("ETag"), last_check=time.time())
        # Without release fields: nothing to install, but a newer release that
        # this device's coverage does not include (newer_not_entitled).
        return self.offer()

    def metadata_changed(self) -> bool:
        """A conditional GET of timestamp.json (static, behind a CDN): did it change?

        Every publish, promotion or withdrawal re-signs the timestamp, so an
        unchanged one means nothing new was released: no need to ask the server.
        """
        url = self.config.tuf_metadata_url + "timestamp.json"
        headers = self._headers()
        etag = self.state().get("timestamp_etag")
        if etag:
            headers["If-None-Match"] = etag
        try:
            response = self.http.request("GET", url, headers=headers)
        except urllib3.exceptions.HTTPError:
            return True  # cannot tell: ask the server
        if response.status == 304:
            return False
        if response.status == 200:
            self.save(timestamp_etag=response.headers.get("ETag"))
        return True

    def idle(self) -> bool:
        """True when this poll can end at the static timestamp, without an update check."""
        # Always look, so the ETag seen at each update check is the one compared next.
        changed = self.metadata_changed()
        since = time.time() - float(self.state().get("last_check") or 0)
        return not changed and since < self.config.full_check_seconds

    # --- download ------------------------------------------------------------------

    def artifact_path(self, offer: Offer) -> Path:
        return self.downloads / f"{offer.sha256}.bin"

    def download(self, offer: Offer, deadline_seconds: float = 3600.0) -> Path:
        """Fetch the artifact, resuming a partial file with Range, within a deadline."""
        final = self.artifact_path(offer)
        if final.exists() and final.stat().st_size == offer.length:
            return final
        self.report("downloading", offer)
        part = final.with_suffix(".part")
        deadline = time.monotonic() + deadline_seconds
        attempt = 0
        while True:
            have = part.stat().st_size if part.exists() else 0
            if have >= offer.length:
                break
            if time.monotonic() > deadline:
                raise AgentError(
                    "E_DOWNLOAD_DEADLINE", f"download unfinished after {deadline_seconds:.0f}s"
                )
            headers = self._headers({"Range": f"bytes={have}-"} if have else {})
            try:
                self._fetch_into(part, self._url(offer.download_url), headers, have, deadline)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                attempt += 1
                wait = min(30.0, 0.2 * 2**attempt) * random.uniform(0.5, 1.0)  # noqa: S311
                self.log(
                    f"download interrupted at {part.stat().st_size if part.exists() else 0} "
                    f"bytes ({exc}); resuming in {wait:.1f}s"
                )
                if time.monotonic() + wait > deadline:
                    raise AgentError("E_DOWNLOAD_DEADLINE", f"download failed: {exc}") from exc
                time.sleep(wait)
        os.replace(part, final)
        self.report("downloaded", offer)
        return final

    def _fetch_into(
        self, part: Path, url: str, headers: dict[str, str], have: int, deadline: float
    ) -> None:
        # Never wait on a silent connection past the overall deadline.
        remaining = max(0.1, deadline - time.monotonic())
        response = self.http.request(
            "GET",
            url,
            headers=headers,
            preload_content=False,
            redirect=True,
            retries=False,
            timeout=urllib3.Timeout(connect=10.0, read=min(self.config.timeout_seconds, remaining)),
        )
        try:
            if response.status == 416:
                part.unlink(missing_ok=True)  # our partial file is wrong: start again
                raise OSError("range not satisfiable")
            if response.status not in (200, 206):
                raise AgentError("E_DOWNLOAD", f"download answered {response.status}")
            mode = "ab" if response.status == 206 and have else "wb"
            with part.open(mode) as out:
                for chunk in response.stream(_CHUNK):
                    out.write(chunk)
                    if time.monotonic() > deadline:
                        raise AgentError("E_DOWNLOAD_DEADLINE", "download deadline passed")
        finally:
            response.release_conn()

    # --- verify --------------------------------------------------------------------

    def _updater(self) -> Updater:
        bootstrap = None
        if not (self.tuf_dir / "root.json").exists():
            bootstrap = self.config.root.read_bytes()
        return Updater(
            metadata_dir=str(self.tuf_dir),
            metadata_base_url=self.config.tuf_metadata_url,
            target_dir=str(self.downloads),
            target_base_url=self.config.tuf_targets_url,
            fetcher=TokenFetcher(self.config.token),
            bootstrap=bootstrap,
        )

    def verify(self, offer: Offer, path: Path) -> None:
        """Check the file against the signed metadata; raise AgentError if anything is off.

        The server's offer is not trusted: only what the TUF metadata signed
        counts, so a lying server cannot make the device install the wrong thing.
        """
        try:
            updater = self._updater()
            updater.refresh()
            info = updater.get_targetinfo(offer.target_path)
        except RepositoryError as exc:
            raise AgentError("E_VERIFY_METADATA", f"signed metadata refused: {exc}") from exc
        if info is None:
            raise AgentError("E_VERIFY_UNKNOWN_TARGET", f"{offer.target_path} is not signed")
        try:
            with path.open("rb") as f:
                info.verify_length_and_hashes(f)
        except LengthOrHashMismatchError as exc:
            raise AgentError(
                "E_VERIFY_HASH", f"the file does not match its signature: {exc}"
            ) from exc
        custom = info.custom or {}
        if custom.get("product") != self.config.product:
            raise AgentError("E_WRONG_PRODUCT", f"signed for product {custom.get('product')!r}")
        if custom.get("version") != offer.version:
            raise AgentError(
                "E_WRONG_VERSION",
                f"signed as {custom.get('version')!r}, offered as {offer.version}",
            )
        if self.config.hardware_revision not in custom.get("hardware_revisions", []):
            raise AgentError(
                "E_WRONG_HARDWARE",
                f"signed for {custom.get('hardware_revisions')}, this is "
                f"{self.config.hardware_revision}",
            )
        current = Version.parse(self.known_version())
        if Version.parse(custom["version"]) <= current:
            raise AgentError("E_DOWNGRADE", f"{custom['version']} is not above {current}")
        min_from = custom.get("min_from_version")
        if min_from and Version.parse(min_from) > current:
            raise AgentError("E_UNREACHABLE", f"{custom['version']} installs from {min_from} up")
        self.report("verified", offer)

    # --- install -------------------------------------------------------------------

    def install(self, offer: Offer, path: Path) -> None:
        """Run the install command. Raises WaitingForOperatorError while the
        offer's operator actions are not acknowledged, AgentError if it fails."""
        if not self.acknowledged(offer):
            raise WaitingForOperatorError(offer)
        command = [
            part.replace("{file}", str(path)).replace("{version}", offer.version)
            for part in self.config.install_command
        ]
        self.report("installing", offer)
        env = {**os.environ, "UPGRADE_FILE": str(path), "UPGRADE_VERSION": offer.version}
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0:
            raise AgentError(
                "E_INSTALL", f"install command exited {result.returncode}: {result.stderr[-500:]}"
            )
        # Ask again at once: the next step of an upgrade path may be waiting.
        self.save(current_version=offer.version, offer=None, check_etag=None, last_check=0)
        self.report("installed", offer)
        path.unlink(missing_ok=True)

    # --- the whole cycle -----------------------------------------------------------

    def wait_for_operator(self, offer: Offer) -> None:
        """Say what the operator must do, and tell the server once per offer
        that the update waits (status `waiting`)."""
        self.log(
            f"{offer.version} waits for the operator: its parameter changes need action"
            f" first; once done, run `upgrade-agent acknowledge {offer.version}`"
        )
        for line in describe_actions(offer, self.config.language):
            self.log(f"  {line}")
        if self.state().get("waiting_reported") != offer.release_id:
            self.report("waiting", offer)
            self.save(waiting_reported=offer.release_id)

    def cycle(self, deadline_seconds: float = 3600.0) -> Offer | None:
        """Check; if something is offered, download, verify and install it.
        Returns the installed offer; None when nothing was installed (nothing
        offered, or an update waiting for the operator's acknowledgement)."""
        if self.offer() is None and self.idle():
            self.log(f"no new metadata; still at {self.current_version}")
            return None
        offer = self.check()
        if offer is None:
            self.log(f"up to date at {self.current_version}")
            return None
        self.log(f"offered {offer.version} (now {self.current_version})")
        if not self.acknowledged(offer):
            self.wait_for_operator(offer)
            return None
        try:
            path = self.download(offer, deadline_seconds)
            self.verify(offer, path)
            self.install(offer, path)
        except AgentError as error:
            self.log(f"{error.code}: {error}")
            self.report("failed", offer, error=error)
            self.artifact_path(offer).unlink(missing_ok=True)
            raise
        self.log(f"installed {offer.version}")
        return offer
