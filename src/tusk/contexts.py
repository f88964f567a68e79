"""Contexts, as pachctl has them: named sets of where to work (a server's address and token, or a store's home).

Kept in one JSON file, ``$TUSK_CONFIG`` or ``$XDG_CONFIG_HOME/tusk/config.json``
(``~/.config/tusk/config.json``), readable by its user only since it holds
tokens::

    {"current": "team", "contexts": {"team": {"address": "http://tusk:8080", "token": "tusk_..."},
                                     "laptop": {"home": "/home/me/.tusk"}}}

``Settings.from_env`` takes the current context's values where no environment
variable says otherwise (``TUSK_ADDRESS``, ``TUSK_TOKEN``, ``TUSK_HOME`` win;
``TUSK_CONTEXT`` picks another context for one command).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from tusk.errors import AlreadyExists, InvalidArgument, NotFound

__all__ = ["FIELDS", "Context", "ContextFile", "config_path"]

FIELDS = ("address", "token", "home")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


@dataclass(frozen=True)
class Context:
    name: str
    address: str | None = None
    token: str | None = None
    home: str | None = None

    def shown(self) -> dict[str, object]:
        """What ``context list`` prints: the token is masked."""
        data: dict[str, object] = asdict(self)
        if self.token:
            data["token"] = self.token[:10] + "…"
        return data


def config_path(env: Mapping[str, str]) -> Path:
    if env.get("TUSK_CONFIG"):
        return Path(env["TUSK_CONFIG"]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path(env.get("HOME", "~")) / ".config"
    return (base / "tusk" / "config.json").expanduser()


class ContextFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, object]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {"current": None, "contexts": {}}
        except (OSError, ValueError) as exc:
            raise InvalidArgument(f"{self.path} is not a Tusk config file ({exc}); fix or remove it") from None
        if not isinstance(data, dict) or not isinstance(data.get("contexts", {}), dict):
            raise InvalidArgument(f"{self.path} is not a Tusk config file; fix or remove it")
        return data

    def _write(self, data: dict[str, object]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".config-")
        try:
            with os.fdopen(fd, "w") as fh:  # mkstemp: mode 600, as tokens deserve
                json.dump(data, fh, indent=2, sort_keys=True)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _contexts(self, data: dict[str, object]) -> dict[str, dict[str, str | None]]:
        contexts = data.setdefault("contexts", {})
        assert isinstance(contexts, dict)
        return contexts

    def list(self) -> list[tuple[Context, bool]]:
        """Every context, and whether it is the current one."""
        data = self._read()
        current = data.get("current")
        return [(Context(name, **{k: v.get(k) for k in FIELDS}), name == current)
                for name, v in sorted(self._contexts(data).items())]

    def get(self, name: str) -> Context:
        for ctx, _ in self.list():
            if ctx.name == name:
                return ctx
        raise NotFound(f"no context {name!r} in {self.path}: `tusk context list` shows them")

    def current(self, override: str | None = None) -> Context | None:
        """The context ``override`` names (TUSK_CONTEXT), else the current one, else None."""
        if override:
            return self.get(override)
        data = self._read()
        current = data.get("current")
        return self.get(str(current)) if current else None

    def create(self, ctx: Context, replace: bool = False) -> Context:
        if not _NAME.match(ctx.name):
            raise InvalidArgument(f"invalid context name {ctx.name!r}: letters, digits, '_', '.', '-'")
        if not (ctx.address or ctx.home):
            raise InvalidArgument("a context needs --address (a server) or --home (an embedded store)")
        data = self._read()
        contexts = self._contexts(data)
        if ctx.name in contexts and not replace:
            raise AlreadyExists(f"context {ctx.name!r} already exists; pass --replace to overwrite it")
        contexts[ctx.name] = {k: getattr(ctx, k) for k in FIELDS if getattr(ctx, k)}
        if not data.get("current"):
            data["current"] = ctx.name
        self._write(data)
        return ctx

    def use(self, name: str) -> Context:
        ctx = self.get(name)
        data = self._read()
        data["current"] = name
        self._write(data)
        return ctx

    def active_transaction(self, store: str) -> str | None:
        """The transaction the CLI adds to on ``store`` (a server's address or a home; ``tusk start transaction``),
        kept here as pachctl keeps it in its config."""
        found = self._read().get("transactions", {})
        value = found.get(store) if isinstance(found, dict) else None
        return str(value) if value else None

    def set_active_transaction(self, store: str, txn_id: str | None) -> None:
        data = self._read()
        found = data.get("transactions")
        active: dict[str, object] = found if isinstance(found, dict) else {}
        if txn_id is None:
            if store not in active:
                return
            active.pop(store)
        else:
            active[store] = txn_id
        data["transactions"] = active
        self._write(data)

    def delete(self, name: str) -> None:
        self.get(name)
        data = self._read()
        del self._contexts(data)[name]
        if data.get("current") == name:
            data["current"] = None
        self._write(data)
