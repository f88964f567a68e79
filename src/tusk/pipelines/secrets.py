"""Secrets: named maps of keys to values that pipelines read, as Pachyderm's ``transform.secrets``.

A secret is made from a Kubernetes Secret manifest (``pachctl create secret -f``: ``metadata.name``,
``data`` in base64, ``stringData`` in the clear, which wins on a key both give) or from literals. A
pipeline names it in ``transform.secrets``: ``env_var`` + ``key`` puts one key's value in a variable
(after ``transform.env``, as Pachyderm does), ``mount_path`` shows every key as a file
``<mount_path>/<key>`` (``tusk.pipelines.worker`` writes them outside the datum's ``/pfs`` and the runtime
mounts them read-only).

Where values are, and are not:

- in the metadata database only (table ``secrets``), never in object storage, a repo, a commit's
  provenance, a job or datum record, a spec version, the API's responses or any message of Tusk's;
- sealed there with a key made on first use at ``$TUSK_HOME/keys/secrets.key`` (0600): AES-256-GCM
  (``cryptography``) with a random nonce and the secret's name as associated data, so a database dump, a
  backup or a copied SQLite file without the key file holds no
  value. Every server that runs jobs over one database needs the same key file;
- the job runner unseals a job's secrets when the job starts and hands them to its datums; a datum's log
  has each value of 6 characters or more masked (``[secret NAME.KEY]``), should the code print one.

Who may use a secret (with auth on; every caller is trusted with it off, as for repos): its creator and
cluster admins. A pipeline may name a secret only if its creator may (checked at create and update, and
again when each job starts). No operation returns a value: ``inspect`` shows names and keys.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import json
import os
import secrets as random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError as DBIntegrityError
from sqlalchemy.orm import Session

from tusk.errors import AlreadyExists, Conflict, InvalidArgument, SecretNotFound
from tusk.pipelines.spec import _SECRET_KEY, _SECRET_NAME, PipelineSpec, parse_spec
from tusk.storage.metadata import PipelineRow, PipelineVersionRow, SecretRow
from tusk.versioning.context import Context, _aware, now
from tusk.versioning.records import _Record

__all__ = ["MASK_MIN", "SecretInfo", "SecretService", "SecretValues", "check_secret_refs", "literal_manifest",
           "may_read"]

MAX_BYTES = 1 << 20  # what Kubernetes allows a secret (its data, all keys together)
MASK_MIN = 6  # values at least this long are masked in a datum's log
_FORMAT = b"tusk-secret:aesgcm:v1\0"
_NONCE = 12  # AES-GCM's
_TAG = 16
_MANIFEST_FIELDS = {"kind", "apiVersion", "metadata", "data", "stringData", "type", "immutable"}


@dataclass(frozen=True)
class SecretInfo(_Record):
    """A secret as every operation shows it: its keys, never their values."""

    name: str
    keys: list[str]
    created_by: str
    created_at: datetime
    pipelines: list[str] = field(default_factory=list)  # whose current version names it


def may_read(info: SecretInfo, user: str, admin: bool) -> bool:
    """The rule, with auth on: a secret is its creator's and the cluster admins'."""
    return admin or info.created_by == user


@dataclass(frozen=True)
class SecretValues:
    """One job's secrets, unsealed: variables and mounted files. Its repr names no value."""

    env: dict[str, str] = field(default_factory=dict, repr=False)
    mounts: list[tuple[str, dict[str, bytes]]] = field(default_factory=list, repr=False)  # (mount_path, files)
    labels: dict[str, str] = field(default_factory=dict, repr=False)  # value -> "NAME.KEY", for masking

    def __repr__(self) -> str:
        return f"SecretValues({len(self.env)} variable(s), {len(self.mounts)} mount(s))"

    def __bool__(self) -> bool:
        return bool(self.env or self.mounts)

    def mask(self, text: str | None) -> str | None:
        """``text`` with every value (and every line of a multi-line value) of MASK_MIN characters or more
        replaced by ``[secret NAME.KEY]``; longest first, so a value that holds another is masked whole."""
        if not text or not self.labels:
            return text
        for value in sorted(self.labels, key=len, reverse=True):
            if value in text:
                text = text.replace(value, f"[secret {self.labels[value]}]")
        return text


def literal_manifest(name: str, literals: Mapping[str, str | bytes]) -> dict[str, Any]:
    """The manifest ``kubectl create secret generic NAME --from-literal=k=v --from-file=k=path`` would write:
    text under ``stringData``, bytes (a file's) base64 under ``data``."""
    manifest: dict[str, Any] = {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": name}}
    text = {k: v for k, v in literals.items() if isinstance(v, str)}
    data = {k: base64.b64encode(v).decode() for k, v in literals.items() if isinstance(v, bytes)}
    if data:
        manifest["data"] = data
    if text or not data:
        manifest["stringData"] = text
    return manifest


def _decode_manifest(manifest: Any) -> tuple[str, dict[str, bytes]]:
    """(name, key -> value) of a Kubernetes Secret manifest. Errors name the field, never a value."""
    if not isinstance(manifest, dict):
        raise InvalidArgument("a secret is a Kubernetes Secret manifest: an object with kind: Secret, "
                              "metadata.name and data (base64) or stringData")
    unknown = sorted(set(manifest) - _MANIFEST_FIELDS)
    if unknown:
        raise InvalidArgument(f"invalid secret manifest: unknown field {unknown[0]!r} (a Kubernetes Secret has "
                              f"{', '.join(sorted(_MANIFEST_FIELDS))})")
    if manifest.get("kind", "Secret") != "Secret":
        raise InvalidArgument(f"invalid secret manifest: kind is {str(manifest.get('kind'))[:40]!r}, not Secret")
    if manifest.get("apiVersion", "v1") != "v1":
        raise InvalidArgument("invalid secret manifest: apiVersion must be v1")
    metadata = manifest.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(name, str) or _SECRET_NAME.fullmatch(name) is None:
        raise InvalidArgument("invalid secret manifest: metadata.name must be a Kubernetes name (1-253 lowercase "
                              "letters, digits, '-' and '.', starting and ending with a letter or digit)"
                              + (f"; got {name[:64]!r}" if isinstance(name, str) else ""))
    values: dict[str, bytes] = {}
    for section in ("data", "stringData"):
        given = manifest.get(section) or {}
        if not isinstance(given, dict):
            raise InvalidArgument(f"invalid secret {name}: {section} must be an object of keys to values")
        for key, value in given.items():
            if not isinstance(key, str) or _SECRET_KEY.fullmatch(key) is None or key in (".", ".."):
                raise InvalidArgument(f"invalid secret {name}: {section} key {str(key)[:64]!r} must be 1-253 "
                                      "letters, digits, '-', '_' or '.'")
            if not isinstance(value, str):
                raise InvalidArgument(f"invalid secret {name}: {section}.{key} must be a string (quote it in "
                                      "YAML)")
            if section == "data":
                try:
                    values[key] = base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError):
                    raise InvalidArgument(f"invalid secret {name}: data.{key} is not base64 (give the value in "
                                          "the clear under stringData instead)") from None
            else:
                values[key] = value.encode()
    if sum(len(v) for v in values.values()) > MAX_BYTES:
        raise InvalidArgument(f"secret {name} holds more than {MAX_BYTES} bytes, the most a Kubernetes secret may")
    return name, values


class _Sealer:
    """Seals and opens secret values with the key file (made on first use)."""

    def __init__(self, key_file: Path) -> None:
        self.key_file = key_file
        self._key: bytes | None = None

    def _master(self, create: bool) -> bytes:
        if self._key is None:
            try:
                self._key = self.key_file.read_bytes()
            except FileNotFoundError:
                if not create:
                    raise
                self.key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                try:
                    fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                except FileExistsError:  # another process made it first
                    self._key = self.key_file.read_bytes()
                else:
                    with os.fdopen(fd, "wb") as fh:
                        fh.write(random.token_bytes(32))
                    self._key = self.key_file.read_bytes()
            if len(self._key) != 32:
                raise InvalidArgument(f"the secrets key {self.key_file} is damaged (not 32 bytes)")
        return self._key

    @staticmethod
    def _aead(key: bytes) -> Any:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        return AESGCM(key)

    def seal(self, name: str, values: Mapping[str, bytes]) -> bytes:
        """AES-256-GCM (``cryptography``) under the key file, a random nonce, the secret's name as associated
        data (a sealed value moved to another secret's row does not open)."""
        plain = json.dumps({k: base64.b64encode(v).decode() for k, v in sorted(values.items())}).encode()
        nonce = random.token_bytes(_NONCE)
        sealed: bytes = self._aead(self._master(create=True)).encrypt(nonce, plain, _FORMAT + name.encode())
        return _FORMAT + nonce + sealed

    def open(self, name: str, sealed: bytes) -> dict[str, bytes]:
        unreadable = InvalidArgument(
            f"secret {name} cannot be opened with the key {self.key_file}: it was sealed with another one (copy "
            "keys/secrets.key from the Tusk home of the server that made it, or make the secret again with "
            f"`tusk secret delete {name}` and `tusk secret create`)")
        try:
            key = self._master(create=False)
        except FileNotFoundError:
            raise unreadable from None
        if not sealed.startswith(_FORMAT) or len(sealed) < len(_FORMAT) + _NONCE + _TAG:
            raise unreadable
        from cryptography.exceptions import InvalidTag

        nonce, cipher = sealed[len(_FORMAT):len(_FORMAT) + _NONCE], sealed[len(_FORMAT) + _NONCE:]
        try:
            plain = json.loads(self._aead(key).decrypt(nonce, cipher, _FORMAT + name.encode()))
        except InvalidTag:
            raise unreadable from None
        return {k: base64.b64decode(v) for k, v in plain.items()}


def _info(row: SecretRow, pipelines: list[str]) -> SecretInfo:
    return SecretInfo(row.name, json.loads(row.keys), row.created_by, _aware(row.created_at), pipelines)


def _users(s: Session) -> dict[str, list[str]]:
    """secret name -> the pipelines whose current version names it."""
    found: dict[str, list[str]] = {}
    rows = s.execute(select(PipelineRow.name, PipelineVersionRow.spec_json).join(
        PipelineVersionRow, (PipelineVersionRow.pipeline_id == PipelineRow.id)
        & (PipelineVersionRow.version == PipelineRow.version)).order_by(PipelineRow.name))
    for pipeline, spec_json in rows:
        if '"secrets":[{' not in spec_json:  # (canonical JSON: most specs name none, and are not parsed)
            continue
        for ref in parse_spec(json.loads(spec_json)).transform.secrets:
            names = found.setdefault(ref.name, [])
            if pipeline not in names:
                names.append(pipeline)
    return found


def check_secret_refs(s: Session, spec: PipelineSpec) -> None:
    """Every secret the spec names exists and holds the keys it names (a pipeline's create and update)."""
    mounts: set[str] = set()
    for i, ref in enumerate(spec.transform.secrets):
        where = f"pipeline {spec.name}: transform.secrets[{i}]"
        row = s.get(SecretRow, ref.name)
        if row is None:
            raise SecretNotFound(f"{where}: secret {ref.name!r} not found; create it first with "
                                 "`tusk secret create -f SECRET.json`")
        if ref.key and ref.key not in json.loads(row.keys):
            raise InvalidArgument(f"{where}: secret {ref.name} has no key {ref.key!r} (its keys: "
                                  f"{', '.join(json.loads(row.keys)) or 'none'})")
        if ref.mount_path:
            path = ref.mount_path.rstrip("/")
            if path in mounts:
                raise InvalidArgument(f"{where}: another secret is mounted at {path} already")
            mounts.add(path)


class SecretService:
    def __init__(self, ctx: Context, key_file: Path) -> None:
        self.ctx = ctx
        self.sealer = _Sealer(key_file)

    def create(self, manifest: Any) -> SecretInfo:
        """Make a secret from a Kubernetes Secret manifest (a decoded JSON or YAML document); its creator is
        the caller. A secret of that name already is AlreadyExists: delete it first."""
        name, values = _decode_manifest(manifest)
        row = SecretRow(name=name, keys=json.dumps(sorted(values)), sealed=self.sealer.seal(name, values),
                        created_by=self.ctx.user, created_at=now())
        try:
            with self.ctx.db.write() as s:
                if s.get(SecretRow, name) is not None:
                    raise AlreadyExists(f"secret {name} exists; delete it first (`tusk secret delete {name}`), "
                                        "then create it again")
                s.add(row)
                s.flush()
                return _info(row, [])
        except DBIntegrityError:
            raise AlreadyExists(f"secret {name} was just created by another caller") from None

    def list(self) -> list[SecretInfo]:
        with self.ctx.db.read() as s:
            users = _users(s)
            return [_info(r, users.get(r.name, [])) for r in s.scalars(select(SecretRow).order_by(SecretRow.name))]

    def inspect(self, name: str) -> SecretInfo:
        with self.ctx.db.read() as s:
            return _info(self._row(s, name), _users(s).get(name, []))

    def _row(self, s: Session, name: str) -> SecretRow:
        row = s.get(SecretRow, name)
        if row is None:
            raise SecretNotFound(f"secret {name!r} not found; create it with `tusk secret create -f SECRET.json` "
                                 f"or `tusk secret create {name} --from-literal KEY=VALUE`")
        return row

    def delete(self, name: str) -> None:
        """Delete a secret; refused while a pipeline's current version names it (the pipeline's next job
        would fail): update or delete those pipelines first."""
        with self.ctx.db.write() as s:
            row = self._row(s, name)
            users = _users(s).get(name, [])
            if users:
                raise Conflict(f"secret {name} is used by pipeline {', '.join(users)}; update the pipeline "
                               "without it, or delete the pipeline, first")
            s.delete(row)

    def names(self, spec: PipelineSpec) -> builtins.list[str]:
        return sorted({ref.name for ref in spec.transform.secrets})

    def infos(self, names: Iterable[str]) -> dict[str, SecretInfo]:
        """The named secrets that exist (for a rights check: the creator of each)."""
        with self.ctx.db.read() as s:
            return {r.name: _info(r, []) for n in sorted(set(names)) if (r := s.get(SecretRow, n)) is not None}

    def resolve(self, spec: PipelineSpec) -> SecretValues:
        """The spec's secrets, unsealed, for one job: a variable per ``env_var``, a map of files per
        ``mount_path``. A secret or key gone since the pipeline was made is an error naming it."""
        if not spec.transform.secrets:
            return SecretValues()
        opened: dict[str, dict[str, bytes]] = {}
        with self.ctx.db.read() as s:
            for name in self.names(spec):
                opened[name] = self.sealer.open(name, self._row(s, name).sealed)
        env: dict[str, str] = {}
        mounts: list[tuple[str, dict[str, bytes]]] = []
        labels: dict[str, str] = {}
        for ref in spec.transform.secrets:
            values = opened[ref.name]
            if ref.env_var and ref.key:
                if ref.key not in values:
                    raise InvalidArgument(f"secret {ref.name} has no key {ref.key!r} any more (env_var "
                                          f"{ref.env_var}); make it again with that key")
                try:
                    env[ref.env_var] = values[ref.key].decode()
                except UnicodeDecodeError:
                    raise InvalidArgument(f"secret {ref.name}: key {ref.key} is not UTF-8 text, so it cannot be "
                                          f"the variable {ref.env_var}; mount it as a file (mount_path)") from None
            if ref.mount_path:
                mounts.append((ref.mount_path.rstrip("/"), dict(values)))
            for key, raw in values.items():
                text = raw.decode(errors="replace")
                for piece in {text, text.strip(), *text.splitlines()}:
                    piece = piece.strip()
                    if len(piece) >= MASK_MIN:
                        labels.setdefault(piece, f"{ref.name}.{key}")
        return SecretValues(env, mounts, labels)
