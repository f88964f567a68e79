"""API tokens: ``tusk_<id>_<secret>``. Only a BLAKE3 hash of the secret is stored; a token is shown once."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import blake3
from sqlalchemy import select

from tusk.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from tusk.storage.metadata import ApiTokenRow
from tusk.versioning.context import Context, _aware, now
from tusk.versioning.records import _Record

__all__ = ["TokenInfo", "TokenService"]

_PREFIX = "tusk_"
MAX_TTL = 10 * 365 * 86400.0


def _hash(secret: str) -> str:
    return blake3.blake3(b"tusk-token:v1\0" + secret.encode()).hexdigest()


@dataclass(frozen=True)
class TokenInfo(_Record):
    id: str
    user: str
    description: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now())


def _info(row: ApiTokenRow) -> TokenInfo:
    return TokenInfo(row.id, row.user, row.description, row.created_by, _aware(row.created_at),
                     _aware(row.expires_at) if row.expires_at else None,
                     _aware(row.revoked_at) if row.revoked_at else None)


class TokenService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def create(self, user: str, description: str = "", ttl_seconds: float | None = None) -> tuple[TokenInfo, str]:
        """A new token for ``user``: (its record, the token text, which is not kept)."""
        if not user or len(user) > 255 or any(c.isspace() for c in user):
            raise InvalidArgument(f"invalid user name {user!r}: 1-255 characters, no spaces")
        if ttl_seconds is not None and not 0 < ttl_seconds <= MAX_TTL:
            raise InvalidArgument(f"--ttl must be between 0 and {MAX_TTL:.0f} seconds (10 years)")
        token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        row = ApiTokenRow(id=token_id, user=user, description=description[:255], secret_hash=_hash(secret),
                          created_by=self.ctx.user, created_at=now(),
                          expires_at=now() + timedelta(seconds=ttl_seconds) if ttl_seconds else None)
        with self.ctx.db.write() as s:
            s.add(row)
            s.flush()
            return _info(row), f"{_PREFIX}{token_id}_{secret}"

    def authenticate(self, token: str) -> str:
        """The user a token belongs to; Unauthenticated if it is unknown, revoked or expired."""
        body = token[len(_PREFIX):] if token.startswith(_PREFIX) else ""
        token_id, _, secret = body.partition("_")
        with self.ctx.db.read() as s:
            row = s.get(ApiTokenRow, token_id) if token_id and secret else None
            if row is None or not secrets.compare_digest(row.secret_hash, _hash(secret)):
                raise Unauthenticated("the token is not valid; create one with `tusk auth token create` and "
                                      "log in with `tusk auth login`")
            info = _info(row)
        if info.revoked_at is not None:
            raise Unauthenticated(f"token {info.id} was revoked; log in with another token")
        if not info.active:
            raise Unauthenticated(f"token {info.id} expired at {info.expires_at:%Y-%m-%d %H:%M:%S}Z")
        return info.user

    def list(self, user: str | None = None) -> list[TokenInfo]:
        with self.ctx.db.read() as s:
            q = select(ApiTokenRow).order_by(ApiTokenRow.created_at)
            if user is not None:
                q = q.where(ApiTokenRow.user == user)
            return [_info(r) for r in s.scalars(q)]

    def get(self, token_id: str) -> TokenInfo:
        with self.ctx.db.read() as s:
            row = s.get(ApiTokenRow, token_id)
            if row is None:
                raise NotFound(f"token {token_id} not found")
            return _info(row)

    def revoke(self, token_id: str, caller: str, admin: bool) -> TokenInfo:
        with self.ctx.db.write() as s:
            row = s.get(ApiTokenRow, token_id)
            if row is None:
                raise NotFound(f"token {token_id} not found")
            if row.user != caller and not admin:
                raise PermissionDenied(f"{caller} cannot revoke token {token_id} of {row.user}: "
                                       "only its user or a cluster admin can")
            if row.revoked_at is None:
                row.revoked_at = now()
            s.flush()
            return _info(row)
