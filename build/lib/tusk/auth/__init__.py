"""Auth for server mode: API tokens and per-repo roles (reader < writer < owner), plus cluster admin."""

from tusk.auth.roles import ADMIN, LEVELS, RoleBinding, RoleService
from tusk.auth.tokens import TokenInfo, TokenService

__all__ = ["ADMIN", "LEVELS", "RoleBinding", "RoleService", "TokenInfo", "TokenService"]
