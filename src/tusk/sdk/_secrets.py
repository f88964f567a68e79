"""The secrets half of tusk.Client: create, list, inspect and delete the secrets pipelines read
(``transform.secrets``; ``tusk.pipelines.secrets``). No method returns a value.

Embedded, these act on the store directly (auth is off: every user is trusted, as for repos). Against a
server, ``RemoteSecretMethods`` sends the manifest over HTTP, and the server decides who may see what.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tusk.documents import load_documents
from tusk.errors import InvalidArgument
from tusk.sdk._operations import Operations

if TYPE_CHECKING:
    from tusk.pipelines.secrets import SecretInfo

__all__ = ["RemoteSecretMethods", "SecretMethods", "SecretSource", "secret_manifest"]

SecretSource = Mapping[str, Any] | str | Path


def secret_manifest(manifest: SecretSource | None = None, name: str | None = None,
                    literals: Mapping[str, str | bytes] | None = None) -> dict[str, Any]:
    """The Kubernetes Secret manifest to send: a dict as given, a JSON or YAML file's one document, or
    ``name`` with ``literals`` (``kubectl create secret generic NAME --from-literal=KEY=VALUE``)."""
    from tusk.pipelines.secrets import literal_manifest

    if manifest is not None and (name is not None or literals):
        raise InvalidArgument("give a secret manifest (-f FILE), or a name with literals, not both")
    if manifest is None:
        if not name:
            raise InvalidArgument("give a secret manifest (-f FILE), or a NAME with --from-literal KEY=VALUE")
        return literal_manifest(name, literals or {})
    if isinstance(manifest, Mapping):
        return dict(manifest)
    path = Path(manifest)
    docs = load_documents(path, "secret manifest")
    if len(docs) != 1:
        raise InvalidArgument(f"{path} holds {len(docs)} documents: give one Secret per file")
    if not isinstance(docs[0], dict):
        raise InvalidArgument(f"{path} is not a Kubernetes Secret manifest (an object with kind: Secret)")
    return docs[0]


class SecretMethods(Operations):

    def create_secret(self, manifest: SecretSource | None = None, *, name: str | None = None,
                      literals: Mapping[str, str | bytes] | None = None) -> SecretInfo:
        """Make a secret from a Kubernetes Secret manifest (a dict, or a JSON/YAML file as ``pachctl create
        secret -f`` takes: ``metadata.name``, ``data`` in base64, ``stringData``), or from ``name`` and
        ``literals``. Its creator is you; it shows its keys, never its values."""
        return self.services.secrets.create(secret_manifest(manifest, name, literals))

    def list_secrets(self) -> list[SecretInfo]:
        return self.services.secrets.list()

    def inspect_secret(self, name: str) -> SecretInfo:
        return self.services.secrets.inspect(name)

    def delete_secret(self, name: str) -> None:
        """Delete a secret; refused (Conflict) while a pipeline's current version names it."""
        self.services.secrets.delete(name)


def _url(name: str | None = None) -> str:
    return "/api/v1/secrets" + (f"/{quote(name, safe='')}" if name is not None else "")


def _info(body: Any) -> SecretInfo:
    from pydantic import TypeAdapter

    from tusk.pipelines.secrets import SecretInfo

    return TypeAdapter(SecretInfo).validate_python(body)


class RemoteSecretMethods(Operations):
    """``SecretMethods`` against a server (mixed into ``HttpOperations``, whose ``_json`` sends the request)."""

    def _json(self, method: str, url: str, **kw: Any) -> Any:
        raise NotImplementedError  # HttpOperations'

    def create_secret(self, manifest: SecretSource | None = None, *, name: str | None = None,
                      literals: Mapping[str, str | bytes] | None = None) -> SecretInfo:
        return _info(self._json("POST", _url(), json={"manifest": secret_manifest(manifest, name, literals)}))

    def list_secrets(self) -> list[SecretInfo]:
        return [_info(item) for item in self._json("GET", _url())]

    def inspect_secret(self, name: str) -> SecretInfo:
        return _info(self._json("GET", _url(name)))

    def delete_secret(self, name: str) -> None:
        self._json("DELETE", _url(name))
