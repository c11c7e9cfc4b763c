"""Semantic versions: parsing with `semver`, and a byte key that sorts like them.

The key lets the database order versions (ORDER BY, >, <) exactly as semver
does, including pre-releases (1.2.0-rc.1 < 1.2.0-rc.2 < 1.2.0-rc.10 < 1.2.0)
and ignoring build metadata. It is bytes, which PostgreSQL (bytea) and SQLite
(BLOB) both compare byte by byte, whatever the database's collation.
"""

from __future__ import annotations

import semver

from upgrade_server.errors import InvalidInputError

_NUM_WIDTH = 10


def parse(version: str, field: str = "version") -> semver.Version:
    try:
        return semver.Version.parse(version)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(
            f"{version!r} is not a semantic version",
            [{"field": field, "message": "expected MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]"}],
        ) from exc


def _num(value: int) -> bytes:
    if value >= 10**_NUM_WIDTH:
        raise InvalidInputError(
            "version number too large", [{"field": "version", "message": "below 10^10"}]
        )
    return str(value).zfill(_NUM_WIDTH).encode()


def sort_key(version: str | semver.Version) -> bytes:
    """Bytes that compare as the versions do (build metadata has no precedence)."""
    v = version if isinstance(version, semver.Version) else parse(version)
    key = _num(v.major) + b"." + _num(v.minor) + b"." + _num(v.patch)
    if not v.prerelease:
        # A release sorts after every pre-release of the same version.
        return key + b"\x02"
    parts = []
    for identifier in v.prerelease.split("."):
        if identifier.isdigit():
            # Numeric identifiers sort numerically, and below alphanumeric ones.
            parts.append(b"\x01" + _num(int(identifier)))
        else:
            parts.append(b"\x02" + identifier.encode("ascii"))
    # \x00 ends each identifier, so a shorter list sorts before a longer one
    # sharing its prefix, and "a" before "a-b".
    return key + b"\x01" + b"\x00".join(parts) + b"\x00"
