"""The REST API: every operation of the CLI over HTTP (FastAPI), one route module per resource."""

from tusk.api.app import create_app

__all__ = ["create_app"]
