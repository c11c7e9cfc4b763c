"""Offline keys: a repository whose targets role they hold, and signing what
it waits for, as `upgrade-server remote sign` does, through the API."""

from __future__ import annotations

import json
from typing import Any

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata
from tuf.api.serialization.json import CanonicalJSONSerializer

from upgrade_server.signing.keys import generate, load_private, private_pem, public_pem


def new_signer() -> CryptoSigner:
    private, _ = generate()
    return load_private(private_pem(private))


def create_offline_repository(
    client: Any,
    headers: dict[str, str],
    product_id: int,
    signers: list[CryptoSigner],
    threshold: int,
    bin_bits: int,
) -> Any:
    """A repository whose targets role is held by `signers`' offline keys."""
    keys = [public_pem(s.public_key).decode() for s in signers]
    r = client.post(
        f"/api/v1/products/{product_id}/repository",
        json={"bin_bits": bin_bits, "offline": {"targets": {"keys": keys, "threshold": threshold}}},
        headers=headers,
    )
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def sign_all(
    client: Any, headers: dict[str, str], product_id: int, signer: CryptoSigner
) -> list[dict[str, Any]]:
    """What `upgrade-server remote sign` does, through the API."""
    items = client.get(f"/api/v1/products/{product_id}/signing-requests", headers=headers)
    results = []
    for request in items.get_json()["items"]:
        if signer.public_key.keyid not in request["keyids"]:
            continue
        md = Metadata.from_bytes(json.dumps(request["unsigned"]).encode())
        sig = signer.sign(CanonicalJSONSerializer().serialize(md.signed))
        r = client.post(
            f"/api/v1/signing-requests/{request['id']}/signatures",
            json={"keyid": sig.keyid, "sig": sig.signature},
            headers=headers,
        )
        assert r.status_code == 200, r.get_json()
        results.append(r.get_json())
    return results
