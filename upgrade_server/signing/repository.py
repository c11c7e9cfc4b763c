"""A product's TUF repository, built with the `tuf` package's metadata API.

Layout (per product, consistent snapshots):
- root: keys and thresholds of every top-level role;
- targets: lists no target itself; delegates every target path to one of
  2**bin_bits succinct hash bins (`bins-00` … `bins-ff`) signed with the
  targets keys, so a publish changes one small bin, not a catalogue;
- snapshot: versions of targets and every bin;
- timestamp: version, length and hashes of the snapshot.

Snapshot and timestamp keys are always online. Root and targets keys may be
offline: their metadata then waits in a SigningRequest until the role's
threshold of signatures has been uploaded, and only then is it stored and
referenced by a new snapshot.

Errors raised: SigningError, InvalidSignatureError, InvalidInputError, ConflictError,
NotFoundError.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from securesystemslib.signer import Key, Signature, SSlibKey
from sqlalchemy import select
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import (
    Delegations,
    Metadata,
    Root,
    Signed,
    SuccinctRoles,
    Targets,
)
from tuf.api.serialization.json import CanonicalJSONSerializer

from upgrade_server import metrics
from upgrade_server.clock import utcnow
from upgrade_server.errors import (
    ConflictError,
    InvalidInputError,
    InvalidSignatureError,
    NotFoundError,
)
from upgrade_server.signing.keys import generate
from upgrade_server.signing.metadata_store import (
    BIN_PREFIX,
    OFFLINE_CAPABLE,
    TOP_ROLES,
    Change,
    MetadataStore,
    OfflineRole,
    Outcome,
    role_of_bin,
)
from upgrade_server.signing.models import MetadataFile, Repository, SigningKey, SigningRequest


class TufRepository(MetadataStore):
    """Reads and changes one product's repository inside the caller's transaction."""

    # --- setting up ----------------------------------------------------------

    def initialise(
        self, offline: dict[str, OfflineRole] | None = None, bin_bits: int = 8
    ) -> Outcome:
        """Create the repository: keys, root, targets, every bin, snapshot, timestamp.

        Roles not named in `offline` get one online key generated into the key
        folder. Raises ConflictError if the product already has a repository.
        """
        if self.exists():
            raise ConflictError(f"product {self.product.code} already has a TUF repository")
        offline = offline or {}
        for role in offline:
            if role not in OFFLINE_CAPABLE:
                raise ConflictError(f"the {role} role is always online")
        repo = Repository(
            product_id=self.product.id, bin_bits=bin_bits, offline_roles=sorted(offline)
        )
        self.session.add(repo)
        now = utcnow()
        root = Root(expires=now + self.expiry.for_role("root"), consistent_snapshot=True)
        for role in TOP_ROLES:
            keys, threshold = self._role_keys(role, offline.get(role))
            for key in keys:
                root.add_key(key, role)
            root.roles[role].threshold = threshold
        outcome = Outcome()
        self._submit(Metadata(root), outcome)
        targets_keys = [root.get_key(k) for k in root.roles["targets"].keyids]
        succinct = SuccinctRoles(
            keyids=[k.keyid for k in targets_keys],
            threshold=root.roles["targets"].threshold,
            bit_length=bin_bits,
            name_prefix=BIN_PREFIX,
        )
        targets = Targets(expires=now + self.expiry.for_role("targets"))
        targets.delegations = Delegations(
            keys={k.keyid: k for k in targets_keys}, succinct_roles=succinct
        )
        self._submit(Metadata(targets), outcome)
        for name in succinct.get_roles():
            self._submit(
                Metadata(Targets(expires=now + self.expiry.for_role("targets"))), outcome, name
            )
        self._refresh_snapshot(outcome)
        return outcome

    def _role_keys(self, role: str, offline: OfflineRole | None) -> tuple[list[Key], int]:
        if offline is not None:
            if not 1 <= offline.threshold <= len(offline.keys):
                raise ConflictError(
                    f"{role} threshold {offline.threshold} needs at least that many keys"
                )
            for key in offline.keys:
                self._record_key(role, key, online=False)
            return list(offline.keys), offline.threshold
        private, public = generate()
        self.keys.save(self.product.code, role, public.keyid, private)
        self._record_key(role, public, online=True)
        return [public], 1

    def _check_new_keys(self, role: str, keys: list[SSlibKey]) -> None:
        """Offline keys given for a role: raises InvalidInputError unless the role
        may be held offline and each key is new to it."""
        if role not in OFFLINE_CAPABLE:
            raise InvalidInputError(
                f"the {role} role is always online",
                [{"field": "keys", "message": "give none: its key is generated online"}],
            )
        known = {
            row.keyid: row
            for row in self.session.scalars(
                select(SigningKey).where(
                    SigningKey.product_id == self.product.id,
                    SigningKey.role == role,
                    SigningKey.keyid.in_([k.keyid for k in keys]),
                )
            )
        }
        errors = [
            {
                "field": f"keys[{index}]",
                # A retired key may have been retired because it leaked.
                "message": f"already a key of {role}"
                if known[key.keyid].retired_at is None
                else f"a retired key of {role} does not come back",
            }
            for index, key in enumerate(keys)
            if key.keyid in known
        ]
        if errors:
            raise InvalidInputError("the keys are invalid", errors)

    def _record_key(self, role: str, key: Key, online: bool) -> None:
        self.session.add(
            SigningKey(
                product_id=self.product.id,
                role=role,
                keyid=key.keyid,
                public=key.to_dict(),
                online=online,
            )
        )

    # --- changing targets ----------------------------------------------------

    def change_targets(self, changes: Iterable[Change]) -> Outcome:
        """Apply target changes to their bins; sign online or queue for signers."""
        self.settings(lock=True)
        succinct = self.succinct()
        by_bin: dict[str, list[Change]] = {}
        for change in changes:
            by_bin.setdefault(role_of_bin(succinct, change.path), []).append(change)
        outcome = Outcome()
        for name, bin_changes in sorted(by_bin.items()):
            draft = self._draft(name)
            assert draft is not None
            for change in bin_changes:
                if change.target is None:
                    draft.signed.targets.pop(change.path, None)
                else:
                    draft.signed.targets[change.path] = change.target
            self._submit(draft, outcome, name)
        if outcome.stored:
            self._refresh_snapshot(outcome)
        return outcome

    # --- keeping snapshot and timestamp fresh ----------------------------------

    def refresh_expiring(self, now: datetime | None = None) -> list[str]:
        """Re-sign snapshot and timestamp when half their validity has passed.

        Called on every timestamp read, so they never expire while the server
        runs. Several workers may notice at once: each decides again under the
        repository's row lock, on what is committed by then, so a worker that
        looked before another's re-signing commits does not sign one more (the
        unique (product, role, version) key is the last guard).
        """
        now = now or utcnow()
        renewed: list[str] = []
        for role in ("snapshot", "timestamp"):
            row = self.latest_file(role)
            if row is None:
                return renewed
            if not self._due(row, role, now):
                continue
            self.settings(lock=True)
            row = self.latest_file(role)
            if row is None or not self._due(row, role, now):
                continue
            outcome = Outcome()
            if role == "snapshot":
                self._refresh_snapshot(outcome)
            else:
                self._new_timestamp(outcome)
            renewed += outcome.stored
            metrics.count_resigned(self.product.code, outcome.stored)
            if role == "snapshot":
                break  # the new snapshot came with a new timestamp
        return renewed

    def _due(self, row: MetadataFile, role: str, now: datetime) -> bool:
        """Half of the file's validity has passed."""
        return row.expires - now <= self.expiry.for_role(role) / 2

    # --- offline signatures ---------------------------------------------------

    def payload(self, request: SigningRequest) -> bytes:
        """The exact bytes a signer signs: the canonical JSON of `signed`."""
        return CanonicalJSONSerializer().serialize(Metadata.from_bytes(request.unsigned).signed)

    def add_signature(self, request: SigningRequest, keyid: str, sig: str) -> Outcome:
        """Verify and keep one signature; store the metadata once the threshold is met."""
        self.settings(lock=True)
        if request.state != "open":
            raise ConflictError(f"signing request {request.id} is {request.state}")
        md: Metadata[Any] = Metadata.from_bytes(request.unsigned)
        payload = CanonicalJSONSerializer().serialize(md.signed)
        keys = self._signing_keys(request.role, md.signed)
        key = keys.get(keyid)
        if key is None:
            raise InvalidSignatureError(f"key {keyid[:12]}… may not sign {request.role}")
        signature = Signature(keyid, sig)
        try:
            key.verify_signature(signature, payload)
        except Exception as exc:
            raise InvalidSignatureError(f"the signature by {keyid[:12]}… does not verify") from exc
        request.signatures = {**request.signatures, keyid: sig}
        for kid, value in request.signatures.items():
            md.signatures[kid] = Signature(kid, value)
        outcome = Outcome()
        if not self._threshold_met(request.role, md):
            return outcome
        request.state = "done"
        request.done_at = utcnow()
        self._store(request.role, md)
        outcome.stored.append(request.role)
        self._refresh_snapshot(outcome)
        return outcome

    def _signing_keys(self, role: str, signed: Signed) -> dict[str, Key]:
        if role.startswith(BIN_PREFIX + "-"):
            targets = self._draft("targets")
            assert targets is not None and targets.signed.delegations is not None
            return dict(targets.signed.delegations.keys)
        if role == "root":
            assert isinstance(signed, Root)
            keys = {k: signed.get_key(k) for k in signed.roles["root"].keyids}
            previous = self.latest("root")
            if previous is not None:
                prev_root = previous.signed
                keys.update({k: prev_root.get_key(k) for k in prev_root.roles["root"].keyids})
            return keys
        root = self.root().signed
        return {k: root.get_key(k) for k in root.roles[role].keyids}

    def _threshold_met(self, role: str, md: Metadata[Any]) -> bool:
        try:
            if role.startswith(BIN_PREFIX + "-"):
                targets = self._draft("targets")
                assert targets is not None
                targets.verify_delegate(role, md)
            elif role == "root":
                md.verify_delegate("root", md)
                previous = self.latest("root")
                if previous is not None:
                    previous.verify_delegate("root", md)
            else:
                self.root().verify_delegate(role, md)
        except UnsignedMetadataError:
            return False
        return True

    # --- keys --------------------------------------------------------------------

    def rotate_keys(
        self,
        role: str,
        new_keys: list[SSlibKey] | None = None,
        threshold: int | None = None,
        keep_existing: bool = False,
    ) -> Outcome:
        """Replace a role's keys with new ones (generated online when none are given),
        or with keep_existing, add them beside the current ones (a new publisher).

        Writes a new root version signed by the old and the new root
        thresholds; every earlier root version stays served, so clients walk
        from theirs to the new one. Rotating targets also re-signs targets and
        every bin with the new keys.
        """
        if role not in TOP_ROLES:
            raise NotFoundError(f"no role {role}")
        repo = self.settings(lock=True)
        if self.open_request("root") is not None:
            raise ConflictError("a root change is already waiting for signatures")
        if new_keys:
            self._check_new_keys(role, new_keys)
        root_md = self.root()
        root = root_md.signed
        old_keyids = list(root.roles[role].keyids)
        online = not new_keys
        if online:
            private, public = generate()
            self.keys.save(self.product.code, role, public.keyid, private)
            new_keys = [public]
        assert new_keys is not None
        retired = [] if keep_existing else old_keyids
        for keyid in retired:
            root.revoke_key(keyid, role)
        for key in new_keys:
            root.add_key(key, role)
            self._record_key(role, key, online=online)
        default_threshold = (
            root.roles[role].threshold if keep_existing else (1 if online else len(new_keys))
        )
        root.roles[role].threshold = threshold or default_threshold
        if root.roles[role].threshold > len(root.roles[role].keyids):
            raise ConflictError(f"{role} threshold exceeds its number of keys")
        now = utcnow()
        for row in self.session.execute(
            select(SigningKey).where(
                SigningKey.product_id == self.product.id,
                SigningKey.role == role,
                SigningKey.keyid.in_(retired),
            )
        ).scalars():
            row.retired_at = now
        offline = set(repo.offline_roles)
        offline.discard(role) if online else offline.add(role)
        repo.offline_roles = sorted(offline)
        outcome = Outcome()
        # The new root is signed by the previous root keys too (see _online_signers),
        # and offline holders sign it through a request.
        self._submit(root_md, outcome)
        if role == "targets":
            targets_md = self._draft("targets")
            assert targets_md is not None
            delegations = targets_md.signed.delegations
            assert delegations is not None and delegations.succinct_roles is not None
            current = [root.get_key(k) for k in root.roles["targets"].keyids]
            delegations.keys = {k.keyid: k for k in current}
            delegations.succinct_roles.keyids = [k.keyid for k in current]
            delegations.succinct_roles.threshold = root.roles["targets"].threshold
            self._submit(targets_md, outcome)
            for name in delegations.succinct_roles.get_roles():
                bin_md = self._draft(name)
                assert bin_md is not None
                self._submit(bin_md, outcome, name)
        if role in ("snapshot", "timestamp", "targets"):
            self._refresh_snapshot(outcome)
        return outcome
