"""`upgrade-server remote …`: a publisher's client for a running server.

It talks to the management API over HTTP with an API token, so publishers
need no database access: publish (streamed, with a progress bar), list,
promote, withdraw, and sign pending metadata with an offline key file that
never leaves their machine.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import urllib3
from securesystemslib.signer import Signature
from tqdm import tqdm
from tuf.api.metadata import Metadata, Root, Targets
from tuf.api.serialization.json import CanonicalJSONSerializer

from upgrade_server.signing.keys import load_private

_CHUNK = 1024 * 1024


class Server:
    def __init__(self, url: str, token: str, timeout: float = 600.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=10.0, read=timeout), retries=False
        )

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **(extra or {})}

    def call(self, method: str, path: str, body: Any = None) -> Any:
        headers = self._headers({"Accept": "application/json"})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        response = self.http.request(method, self.url + path, body=data, headers=headers)
        return _answer(response)

    def upload(self, path: str, fields: dict[str, str], file: Path, progress: bool) -> Any:
        """A multipart POST whose file part streams from disk in 1 MiB chunks."""
        boundary = uuid.uuid4().hex
        head = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n'
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n".encode()
            + value.encode()
            + b"\r\n"
            for name, value in fields.items()
        )
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="artifact"; '
            f'filename="{file.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        size = file.stat().st_size

        def body() -> Iterator[bytes]:
            yield head
            with (
                file.open("rb") as f,
                tqdm(
                    total=size,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=file.name,
                    disable=not progress,
                ) as bar,
            ):
                while chunk := f.read(_CHUNK):
                    bar.update(len(chunk))
                    yield chunk
            yield tail

        response = self.http.request(
            "POST",
            self.url + path,
            body=body(),
            headers=self._headers(
                {
                    "Content-Type": f"multipart/form-data; boundary={boundary}",
                    "Content-Length": str(len(head) + size + len(tail)),
                    "Accept": "application/json",
                }
            ),
            chunked=False,
            preload_content=True,
        )
        return _answer(response)


def _answer(response: urllib3.BaseHTTPResponse) -> Any:
    text = response.data.decode() if response.data else ""
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    if response.status >= 400:
        if isinstance(body, dict) and "title" in body:
            problems = "; ".join(
                f"{p.get('field') or p.get('row')}: {p.get('message')}"
                for p in body.get("errors", [])
            )
            raise click.ClickException(
                f"{response.status} {body['title']}: {body.get('detail')}"
                + (f" ({problems})" if problems else "")
            )
        raise click.ClickException(f"HTTP {response.status}: {text[:200]}")
    return body


pass_server = click.make_pass_decorator(Server)


@click.group("remote", help="Talk to a running server with an API token.")
@click.option("--server", envvar="UPGRADE_SERVER_URL", required=True, help="Base URL.")
@click.option(
    "--token",
    envvar="UPGRADE_SERVER_TOKEN",
    required=True,
    help="API token (prefer the UPGRADE_SERVER_TOKEN variable to the command line).",
)
@click.pass_context
def remote_group(ctx: click.Context, server: str, token: str) -> None:
    ctx.obj = Server(server, token)


def _find_id(server: Server, path: str, field: str, value: str) -> int:
    """The id of the item of a paged listing whose `field` is `value`."""
    after = None
    while True:
        query = f"&after={after}" if after else ""
        page = server.call("GET", f"{path}?limit=500{query}")
        for item in page["items"]:
            if item[field] == value:
                return int(item["id"])
        after = page["next_cursor"]
        if after is None:
            raise click.ClickException(f"no {field} {value}")


def _product_id(server: Server, code: str) -> int:
    return _find_id(server, "/api/v1/products", "code", code)


def _release_id(server: Server, product_id: int, version: str) -> int:
    return _find_id(server, f"/api/v1/products/{product_id}/releases", "version", version)


def _read_text(path: str | None) -> str | None:
    return Path(path).read_text(encoding="utf-8") if path else None


@remote_group.command("publish", help="Upload FILE as VERSION of PRODUCT and publish it.")
@click.argument("product")
@click.argument("version")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--channel", "channels", multiple=True, help="Channel (repeat); default: lowest.")
@click.option("--hardware", "hardware", multiple=True, help="Hardware revision (repeat).")
@click.option("--min-from", "min_from_version", help="Lowest version it installs from.")
@click.option("--security-fix", is_flag=True)
@click.option("--notes-zh", type=click.Path(exists=True), help="Markdown release notes, zh-CN.")
@click.option("--notes-en", type=click.Path(exists=True), help="Markdown release notes, en.")
@click.option(
    "--metadata",
    "metadata_file",
    type=click.Path(exists=True),
    help="JSON file with further fields (requirements, parameters, guidance).",
)
@click.option("--no-progress", is_flag=True)
@pass_server
def publish(
    server: Server,
    product: str,
    version: str,
    file: Path,
    channels: tuple[str, ...],
    hardware: tuple[str, ...],
    min_from_version: str | None,
    security_fix: bool,
    notes_zh: str | None,
    notes_en: str | None,
    metadata_file: str | None,
    no_progress: bool,
) -> None:
    metadata: dict[str, Any] = json.loads(_read_text(metadata_file) or "{}")
    metadata.update({"version": version, "filename": file.name, "security_fix": security_fix})
    if channels:
        metadata["channels"] = list(channels)
    if hardware:
        metadata["hardware_revisions"] = list(hardware)
    if min_from_version:
        metadata["min_from_version"] = min_from_version
    notes = metadata.setdefault("notes", {})
    if notes_zh:
        notes["zh-CN"] = _read_text(notes_zh)
    if notes_en:
        notes["en"] = _read_text(notes_en)
    product_id = _product_id(server, product)
    release = server.upload(
        f"/api/v1/products/{product_id}/releases",
        {"metadata": json.dumps(metadata, ensure_ascii=False)},
        file,
        progress=not no_progress and os.isatty(2),
    )
    click.echo(
        f"{product} {release['version']}: {release['status']} "
        f"(sha256 {release['artifact']['sha256']}, {release['artifact']['size']} bytes, "
        f"channels {','.join(release['channels'])})"
    )


@remote_group.command("releases", help="List a product's releases.")
@click.argument("product")
@pass_server
def releases(server: Server, product: str) -> None:
    product_id = _product_id(server, product)
    page = server.call("GET", f"/api/v1/products/{product_id}/releases?limit=500")
    for r in page["items"]:
        click.echo(f"{r['version']}\t{r['status']}\t{','.join(r['channels'])}")


@remote_group.command("show", help="Show one release as JSON.")
@click.argument("product")
@click.argument("version")
@pass_server
def show(server: Server, product: str, version: str) -> None:
    release_id = _release_id(server, _product_id(server, product), version)
    release = server.call("GET", f"/api/v1/releases/{release_id}")
    click.echo(json.dumps(release, indent=2, ensure_ascii=False))


@remote_group.command("promote", help="Add CHANNEL to a release.")
@click.argument("product")
@click.argument("version")
@click.argument("channel")
@pass_server
def promote(server: Server, product: str, version: str, channel: str) -> None:
    release_id = _release_id(server, _product_id(server, product), version)
    r = server.call("POST", f"/api/v1/releases/{release_id}/promote", {"channel": channel})
    click.echo(f"{product} {version}: channels {','.join(r['channels'])}")


@remote_group.command("withdraw", help="Withdraw a release, with the reason.")
@click.argument("product")
@click.argument("version")
@click.option("--reason", required=True)
@pass_server
def withdraw(server: Server, product: str, version: str, reason: str) -> None:
    release_id = _release_id(server, _product_id(server, product), version)
    server.call("POST", f"/api/v1/releases/{release_id}/withdraw", {"reason": reason})
    click.echo(f"{product} {version}: withdrawn")


@remote_group.command("sign", help="Sign every open signing request with a key file.")
@click.argument("product")
@click.option(
    "--key",
    "key_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Your Ed25519 private key (PEM). It is read locally and never sent.",
)
@click.option("--password", is_flag=True, help="Prompt for the key's password.")
@pass_server
def sign(server: Server, product: str, key_file: Path, password: bool) -> None:
    secret = click.prompt("Key password", hide_input=True).encode() if password else None
    signer = load_private(key_file.read_bytes(), secret)
    keyid = signer.public_key.keyid
    product_id = _product_id(server, product)
    requests = server.call("GET", f"/api/v1/products/{product_id}/signing-requests")["items"]
    signed = 0
    for request in requests:
        if keyid not in request["keyids"] or keyid in request["signed_by"]:
            continue
        # The payload is computed here from the metadata, not taken from the
        # server, and summarised, so the holder knows what the key vouches for.
        md = Metadata.from_bytes(json.dumps(request["unsigned"]).encode())
        payload = CanonicalJSONSerializer().serialize(md.signed)
        click.echo(_summary(request["role"], md))
        signature: Signature = signer.sign(payload)
        result = server.call(
            "POST",
            f"/api/v1/signing-requests/{request['id']}/signatures",
            {"keyid": keyid, "sig": signature.signature},
        )
        signed += 1
        click.echo(f"signed {request['role']} v{request['version']}: {result['state']}")
    click.echo(f"{signed} request(s) signed with key {keyid[:12]}…")


def _summary(role: str, md: Metadata[Any]) -> str:
    signed = md.signed
    lines = [f"{role} v{signed.version}, expires {signed.expires:%Y-%m-%d}"]
    if isinstance(signed, Targets):
        for path, target in sorted(signed.targets.items()):
            custom = target.custom
            lines.append(
                f"  target {path} ({target.length} bytes, sha256 {target.hashes['sha256'][:16]}…,"
                f" hardware {','.join(custom.get('hardware_revisions', []))},"
                f" channels {','.join(custom.get('channels', []))})"
            )
    elif isinstance(signed, Root):
        for name, role_ in signed.roles.items():
            lines.append(f"  {name}: {len(role_.keyids)} key(s), threshold {role_.threshold}")
    return "\n".join(lines)


@remote_group.command("repository", help="Show a product's TUF roles, keys and versions.")
@click.argument("product")
@click.option(
    "--root-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the current root.json here (to provision devices).",
)
@pass_server
def repository(server: Server, product: str, root_out: Path | None) -> None:
    summary = server.call("GET", f"/api/v1/products/{_product_id(server, product)}/repository")
    for name, role in summary["roles"].items():
        where = "offline" if name in summary["offline_roles"] else "online"
        version = summary["versions"].get(name)
        click.echo(
            f"{name:<10} v{version}  threshold {role['threshold']} of {len(role['keyids'])} "
            f"({where}): {', '.join(k[:12] for k in role['keyids'])}"
        )
    click.echo(
        f"hash bins: {2 ** summary['bin_bits']}; open signing requests: "
        f"{summary['open_signing_requests']}"
    )
    if root_out:
        root_out.write_text(json.dumps(summary["root"], separators=(",", ":")))
        click.echo(f"root.json written to {root_out}")


@remote_group.command("init", help="Create a product's repository, with offline keys if given.")
@click.argument("product")
@click.option(
    "--targets-key",
    "targets_keys",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Public key (PEM) of an offline targets signer (repeat).",
)
@click.option("--targets-threshold", type=int, default=1, show_default=True)
@click.option(
    "--root-key",
    "root_keys",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Public key (PEM) of an offline root signer (repeat).",
)
@click.option("--root-threshold", type=int, default=1, show_default=True)
@click.option(
    "--bin-bits", type=int, default=8, show_default=True, help="2**N hash bins for the targets."
)
@click.option("--private", is_flag=True, help="Metadata readable with a device token only.")
@pass_server
def init(
    server: Server,
    product: str,
    targets_keys: tuple[Path, ...],
    targets_threshold: int,
    root_keys: tuple[Path, ...],
    root_threshold: int,
    bin_bits: int,
    private: bool,
) -> None:
    offline: dict[str, Any] = {}
    for role, keys, threshold in (
        ("targets", targets_keys, targets_threshold),
        ("root", root_keys, root_threshold),
    ):
        if keys:
            offline[role] = {"keys": [k.read_text() for k in keys], "threshold": threshold}
    summary = server.call(
        "POST",
        f"/api/v1/products/{_product_id(server, product)}/repository",
        {"offline": offline, "bin_bits": bin_bits, "private": private},
    )
    click.echo(
        f"{product}: repository created; {summary['open_signing_requests']} signing "
        "request(s) wait for the offline holders (`remote sign`)"
    )


@remote_group.command("rotate", help="Replace a role's keys (new root signed by old and new).")
@click.argument("product")
@click.argument("role", type=click.Choice(["root", "targets", "snapshot", "timestamp"]))
@click.option(
    "--key",
    "keys",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="New offline public key (PEM); none: generate one online.",
)
@click.option("--threshold", type=int, default=None)
@click.option("--add", "keep_existing", is_flag=True, help="Add the keys; keep the current ones.")
@pass_server
def rotate(
    server: Server,
    product: str,
    role: str,
    keys: tuple[Path, ...],
    threshold: int | None,
    keep_existing: bool,
) -> None:
    summary = server.call(
        "POST",
        f"/api/v1/products/{_product_id(server, product)}/repository/rotate",
        {
            "role": role,
            "keys": [k.read_text() for k in keys],
            "threshold": threshold,
            "keep_existing": keep_existing,
        },
    )
    click.echo(f"{product}: {role} keys rotated; root now v{summary['versions']['root']}")
