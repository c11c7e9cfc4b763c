"""Settings, read from the environment once when the app is created.

Every setting has a default that runs the embedded configuration (SQLite and a
local artifact folder inside the instance folder). The README lists them all.
"""

from __future__ import annotations

import os
import secrets
from datetime import date
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# A product's targets are delegated to 2**N succinct hash bins: TUF needs one
# bit at least (two bins), and 2**14 bins is more than any fleet's targets need.
MIN_BIN_BITS, MAX_BIN_BITS = 1, 14


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="UPGRADE_SERVER_", extra="ignore", populate_by_name=True
    )

    instance_path: Path = Field(
        default=Path("instance"),
        description="Folder for the SQLite file, local artifacts and online keys.",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "UPGRADE_SERVER_DATABASE_URL"),
        description="SQLAlchemy URL; default: SQLite file in the instance folder.",
    )
    secret_key: str | None = Field(
        default=None,
        description="Signs session cookies; default: generated once into the instance folder.",
    )
    audit_key: str | None = Field(
        default=None,
        repr=False,
        description="Authenticates the audit log's checkpoints; default: generated once into"
        " the instance folder.",
    )
    session_cookie_secure: bool = Field(
        default=False,
        description="Send the portal's session cookie over HTTPS only (set it behind TLS).",
    )
    max_request_bytes: int = Field(
        default=16 * 1024 * 1024,
        description="Largest request body accepted by the API (413 beyond it).",
    )
    max_artifact_bytes: int = Field(
        default=8 * 1024**3, description="Largest artifact a publisher may upload."
    )
    keys_path: Path | None = Field(
        default=None, description="Folder of online signing keys; default: instance/keys."
    )
    export_path: Path | None = Field(
        default=None,
        description="Folder where signed metadata is exported as static files (for nginx/CDN).",
    )
    export_s3: bool = Field(
        default=False, description="Export signed metadata into the S3 bucket under tuf/."
    )
    tuf_bin_bits: int = Field(
        default=8,
        ge=MIN_BIN_BITS,
        le=MAX_BIN_BITS,
        description="New repositories delegate targets to 2**N hash bins (N: 1 to 14).",
    )
    tuf_upkeep_seconds: float = Field(
        default=600,
        description="Each worker re-signs expiring snapshot/timestamp this often; 0: off.",
    )
    tuf_root_expiry_days: int = Field(default=365)
    tuf_targets_expiry_days: int = Field(default=90)
    tuf_snapshot_expiry_days: int = Field(default=7)
    tuf_timestamp_expiry_days: int = Field(default=1)
    update_poll_seconds: int = Field(
        default=1800, description="How often devices should call the update check."
    )
    update_full_check_seconds: int = Field(
        default=6 * 3600,
        description="Longest time a device polling static metadata goes without an update check.",
    )
    console_timezone: str = Field(
        default="Asia/Shanghai",
        description="The vendor's own time zone: the staff console's days and months"
        " (this month's deadlines, adoption per day); an organisation's pages use its zone.",
    )

    @field_validator("console_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Asia/Shanghai)") from exc
        return value

    holidays: str = Field(
        default="",
        description="Days off for everyone on top of the working-day calendar (global"
        " exceptions; staff record more through the API): YYYY-MM-DD, comma separated.",
    )
    working_calendar: Literal["cn-official", "weekends"] = Field(
        default="cn-official",
        description="Working days for deadlines: China's official calendar with its"
        " make-up working days (chinesecalendar; Monday-Friday in years it has no data"
        " for), or Monday-Friday only.",
    )
    alarm_uploads_per_minute: int = Field(
        default=30,
        description="Alarms a device may upload a minute before further ones are only counted.",
    )
    notify_webhook_url: str | None = Field(
        default=None, description="Urgent tickets and deadlines due soon are POSTed here as JSON."
    )
    smtp_host: str | None = Field(default=None, description="SMTP server for notification mail.")
    smtp_port: int = Field(default=25, description="SMTP port.")
    smtp_starttls: bool = Field(default=False, description="Use STARTTLS with the SMTP server.")
    smtp_user: str | None = Field(default=None, description="SMTP login, if it needs one.")
    smtp_password: str | None = Field(default=None, repr=False, description="SMTP password.")
    smtp_from: str = Field(default="upgrade-server@localhost", description="Sender of mail.")
    notify_email_to: str = Field(default="", description="Recipients of mail, comma separated.")
    notify_before_minutes: int = Field(
        default=30, description="Notify this long before a ticket deadline passes."
    )
    notify_interval_seconds: float = Field(
        default=30.0,
        description="How often each worker records missed ticket deadlines and sends due"
        " notifications (0: never).",
    )
    rollout_evaluate_seconds: float = Field(
        default=300.0,
        description="How often each worker applies the gates to running rollouts (0: never).",
    )
    notify_timeout_seconds: float = Field(
        default=10.0, description="Longest wait on the webhook or the SMTP server."
    )
    report_batch_seconds: float = Field(
        default=1.0,
        description="Devices' update-check reports (last seen, version) are written in "
        "batches this often; 0 writes each one in its request.",
    )
    metrics_token: str | None = Field(
        default=None,
        repr=False,
        description="Serve /metrics (Prometheus) to `Authorization: Bearer <this>` only;"
        " unset: no metrics, /metrics is a 404. At least 16 characters; never logged.",
    )
    token_ttl_days: int = Field(default=90, description="Default lifetime of API tokens.")
    log_level: str = Field(default="INFO")
    public_url: str | None = Field(
        default=None, description="Base URL used in links handed to devices and users."
    )

    storage_backend: Literal["local", "s3"] = Field(default="local")
    storage_path: Path | None = Field(
        default=None, description="Local artifact folder; default: instance/artifacts."
    )
    staging_cleanup_seconds: float = Field(
        default=600,
        description="Each worker removes abandoned uploads (what a killed worker left staged)"
        " when it starts serving, then this often; 0: never.",
    )
    staging_max_age_seconds: float = Field(
        default=3600,
        description="An upload's staged bytes untouched this long are abandoned.",
    )
    s3_bucket: str | None = Field(default=None, validation_alias="S3_BUCKET")
    s3_prefix: str = Field(default="", validation_alias="S3_PREFIX")
    s3_endpoint_url: str | None = Field(default=None, validation_alias="S3_ENDPOINT_URL")
    s3_region: str | None = Field(default=None, validation_alias="S3_REGION")
    s3_access_key_id: str | None = Field(default=None, validation_alias="S3_ACCESS_KEY_ID")
    s3_secret_access_key: str | None = Field(
        default=None, validation_alias="S3_SECRET_ACCESS_KEY", repr=False
    )
    s3_presign_seconds: int = Field(default=300, validation_alias="S3_PRESIGN_SECONDS")
    s3_part_size_mb: int = Field(default=8, validation_alias="S3_PART_SIZE_MB")

    def resolved_instance_path(self) -> Path:
        return self.instance_path.expanduser().resolve()

    def resolved_database_url(self) -> str:
        if self.database_url:
            url = self.database_url
            # Heroku-style URLs name the scheme "postgres"; psycopg 3 is the driver.
            if url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url[len("postgres://") :]
            elif url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url[len("postgresql://") :]
            return url
        return f"sqlite:///{self.resolved_instance_path() / 'upgrade_server.db'}"

    def resolved_storage_path(self) -> Path:
        if self.storage_path:
            return self.storage_path.expanduser().resolve()
        return self.resolved_instance_path() / "artifacts"

    def resolved_keys_path(self) -> Path:
        if self.keys_path:
            return self.keys_path.expanduser().resolve()
        return self.resolved_instance_path() / "keys"

    def holiday_dates(self) -> tuple[date, ...]:
        return tuple(date.fromisoformat(d.strip()) for d in self.holidays.split(",") if d.strip())

    def resolved_secret_key(self) -> str:
        """The configured key, else one generated once and kept in the instance folder."""
        return self.secret_key or self._generated_secret("secret_key")

    def resolved_audit_key(self) -> bytes:
        """The configured key, else one generated once and kept in the instance folder."""
        return (self.audit_key or self._generated_secret("audit_key")).encode()

    def _generated_secret(self, name: str) -> str:
        path = self.resolved_instance_path() / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # Several workers may start at once: write aside, then link into place;
            # the first link wins and the others read what it wrote.
            tmp = path.with_name(f".{name}.{secrets.token_hex(8)}")
            # Created 0600: never readable by others, not even for a moment.
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
                f.write(secrets.token_urlsafe(48))
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        return path.read_text().strip()
