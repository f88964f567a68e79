"""Tusk: reproducible machine-learning workflows."""

from tusk.errors import TuskError
from tusk.sdk import Client

__all__ = ["Client", "TuskError"]
__version__ = "0.1.0"
