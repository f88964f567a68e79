"""The auth half of tusk.Client: who am I, tokens and roles.

Embedded, these act on the database directly: whoever can open the database
is its operator (that is how the first admin and token are made, with
``activate_auth``). Against a server, the server checks each call.
"""

from __future__ import annotations

from typing import Any

from tusk.auth import ADMIN, RoleBinding, RoleService, TokenInfo, TokenService
from tusk.errors import Conflict
from tusk.sdk._serving import ServingMethods

__all__ = ["AuthMethods"]


class AuthMethods(ServingMethods):
    def whoami(self) -> dict[str, Any]:
        user = self.services.ctx.user
        return {"user": user, "admin": RoleService(self.services.ctx).is_admin(user), "auth_enabled": False}

    def create_token(self, user: str | None = None, description: str = "", ttl_seconds: float | None = None
                     ) -> tuple[TokenInfo, str]:
        """A token for ``user`` (default: you): (its record, the token text, shown only now)."""
        return TokenService(self.services.ctx).create(user or self.services.ctx.user, description, ttl_seconds)

    def list_tokens(self, user: str | None = None) -> list[TokenInfo]:
        return TokenService(self.services.ctx).list(user)

    def revoke_token(self, token_id: str) -> TokenInfo:
        return TokenService(self.services.ctx).revoke(token_id, self.services.ctx.user, admin=True)

    def set_role(self, resource: str, user: str, role: str | None) -> RoleBinding | None:
        """Give ``user`` a role (reader, writer, owner; admin on ``*``) on a resource; None removes it."""
        return RoleService(self.services.ctx).set(resource, user, role)

    def list_roles(self, resource: str | None = None, user: str | None = None) -> list[RoleBinding]:
        return RoleService(self.services.ctx).list(resource, user)

    def activate_auth(self, admin: str) -> tuple[TokenInfo, str]:
        """Make ``admin`` the first cluster admin and return their token; refused once an admin exists."""
        roles = RoleService(self.services.ctx)
        if roles.has_admin():
            raise Conflict("auth is already active (a cluster admin exists); an admin can create tokens with "
                           "`tusk auth token create`")
        roles.set(ADMIN, admin, "admin")
        return TokenService(self.services.ctx).create(admin, "created by tusk auth activate")
