from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class AgentConfig:
    """The agent's settings, from a TOML file such as:

    server = "https://updates.example.com"
    token_file = "/etc/upgrade-agent/token"     # or token = "usd_..."
    product = "edge-gw"
    hardware_revision = "rev-a"
    channel = "stable"
    root = "/etc/upgrade-agent/root.json"       # the product's trusted TUF root
    state_dir = "/var/lib/upgrade-agent"
    install_command = ["/usr/sbin/apply-update", "{file}", "{version}"]
    initial_version = "1.0.0"    # optional: the installed version, until the first install
    auto_acknowledge = false     # true: install parameter changes that need the
                                 # operator's action without `upgrade-agent acknowledge`
    language = "zh-CN"           # of the operator's action texts (default: en)

    Without `initial_version` the agent asks the server which version it knows
    for this device; it never reports a version it made up.
    """

    server: str
    token: str
    product: str
    hardware_revision: str
    root: Path
    state_dir: Path
    install_command: list[str]
    channel: str = "stable"
    initial_version: str | None = None
    # Updates whose parameter changes need the operator's action wait for
    # `upgrade-agent acknowledge <version>`, unless the site allows them unattended.
    auto_acknowledge: bool = False
    language: str = "en"
    # Where the signed metadata is polled: the server, or a static export (CDN).
    metadata_url: str | None = None
    targets_url: str | None = None
    attributes: dict[str, object] = field(default_factory=dict)
    # Poll the (static) timestamp.json first; call the update check only when it
    # changed, or after this many seconds, to catch coverage and rollout changes.
    full_check_seconds: float = 6 * 3600
    timeout_seconds: float = 30.0

    @classmethod
    def load(cls, path: Path) -> AgentConfig:
        data = tomllib.loads(path.read_text())
        token = data.pop("token", None)
        token_file = data.pop("token_file", None)
        if token_file:
            token = Path(token_file).read_text().strip()
        if not token:
            raise ValueError("the config needs `token` or `token_file`")
        return cls(
            token=token,
            root=Path(data.pop("root")),
            state_dir=Path(data.pop("state_dir")),
            **data,
        )

    @property
    def tuf_metadata_url(self) -> str:
        base = self.metadata_url or f"{self.server.rstrip('/')}/tuf/{self.product}/metadata"
        return base.rstrip("/") + "/"

    @property
    def tuf_targets_url(self) -> str:
        base = self.targets_url or f"{self.server.rstrip('/')}/tuf/{self.product}/targets"
        return base.rstrip("/") + "/"
