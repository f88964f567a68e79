"""Roles: who may do what to which repo.

A binding gives a user a role on a resource: a repo by name (reader, writer or
owner; each includes the ones before it), ``deployment/<name>``, or ``*``, the
cluster, where the only role is ``admin`` and includes every other role
everywhere. Whoever creates a repo, pipeline or deployment becomes its owner.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select

from tusk.errors import InvalidArgument, PermissionDenied
from tusk.storage.metadata import RoleBindingRow
from tusk.versioning.context import Context, _aware, now
from tusk.versioning.records import _Record

__all__ = ["ADMIN", "LEVELS", "RoleBinding", "RoleService"]

ADMIN = "*"
LEVELS = {"reader": 1, "writer": 2, "owner": 3, "admin": 4}


@dataclass(frozen=True)
class RoleBinding(_Record):
    resource: str
    user: str
    role: str
    created_by: str
    created_at: datetime


class RoleService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def set(self, resource: str, user: str, role: str | None) -> RoleBinding | None:
        """Give ``user`` ``role`` on ``resource`` (None or "none" removes the binding)."""
        if role in (None, "none"):
            with self.ctx.db.write() as s:
                s.execute(delete(RoleBindingRow).where(RoleBindingRow.resource == resource,
                                                       RoleBindingRow.user == user))
            return None
        if resource == ADMIN and role != "admin":
            raise InvalidArgument("the cluster ('*') has one role: admin")
        if resource != ADMIN and role not in ("reader", "writer", "owner"):
            raise InvalidArgument(f"unknown role {role!r}: use reader, writer or owner (or none to remove)")
        with self.ctx.db.write() as s:
            row = s.get(RoleBindingRow, (resource, user))
            if row is None:
                row = RoleBindingRow(resource=resource, user=user, role=role, created_by=self.ctx.user,
                                     created_at=now())
                s.add(row)
            else:
                row.role, row.created_by, row.created_at = role, self.ctx.user, now()
            s.flush()
            return RoleBinding(row.resource, row.user, row.role, row.created_by, _aware(row.created_at))

    def list(self, resource: str | None = None, user: str | None = None) -> list[RoleBinding]:
        with self.ctx.db.read() as s:
            q = select(RoleBindingRow).order_by(RoleBindingRow.resource, RoleBindingRow.user)
            if resource is not None:
                q = q.where(RoleBindingRow.resource == resource)
            if user is not None:
                q = q.where(RoleBindingRow.user == user)
            return [RoleBinding(r.resource, r.user, r.role, r.created_by, _aware(r.created_at))
                    for r in s.scalars(q)]

    def level(self, user: str, resource: str) -> int:
        """The user's level on the resource (0: none), cluster admin included."""
        with self.ctx.db.read() as s:
            roles = s.scalars(select(RoleBindingRow.role).where(
                RoleBindingRow.user == user, RoleBindingRow.resource.in_((resource, ADMIN)))).all()
        return max((LEVELS[r] for r in roles), default=0)

    def is_admin(self, user: str) -> bool:
        return self.level(user, ADMIN) >= LEVELS["admin"]

    def has_admin(self) -> bool:
        with self.ctx.db.read() as s:
            return s.scalar(select(RoleBindingRow.user).where(RoleBindingRow.resource == ADMIN).limit(1)) is not None

    def check(self, user: str, resource: str, role: str, level: int | None = None) -> None:
        """PermissionDenied unless ``user`` has ``role`` (``level``: the user's level, when already looked up)."""
        if (self.level(user, resource) if level is None else level) < LEVELS[role]:
            what = "the cluster" if resource == ADMIN else resource
            raise PermissionDenied(f"{user} is not {'an' if role[0] in 'aeiou' else 'a'} {role} of {what}; "
                                   f"an owner can grant it with `tusk auth role set {resource} {user} {role}`")
