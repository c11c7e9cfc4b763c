"""Bearer secrets: generated once, shown once, stored only as SHA-256.

The secrets carry 256 bits from the OS's CSPRNG, so a fast unsalted hash is
enough to make a stolen table useless (as GitHub and PyPI do), and it keeps a
token check to one indexed lookup on the device API's hot path.
"""

from __future__ import annotations

import hashlib
import secrets

API_TOKEN_PREFIX = "usk_"
DEVICE_TOKEN_PREFIX = "usd_"
GATEWAY_TOKEN_PREFIX = "usg_"
SHOWN_PREFIX_LENGTH = 12


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def hash_secret(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def shown_prefix(raw: str) -> str:
    return raw[:SHOWN_PREFIX_LENGTH]
