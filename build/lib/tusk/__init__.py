"""Tusk: reproducible machine-learning workflows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tusk.errors import TuskError

if TYPE_CHECKING:
    from tusk.sdk import Client

__all__ = ["Client", "TuskError"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``tusk.Client`` loads the SDK (and what it needs) when first asked for, not on ``import tusk``."""
    if name == "Client":
        from tusk.sdk import Client

        return Client
    raise AttributeError(f"module 'tusk' has no attribute {name!r}")
