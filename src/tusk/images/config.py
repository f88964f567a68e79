"""What an image's config says about running it, and how Pachyderm's worker combines it with the spec.

Pachyderm's worker inspects the image and then (``src/server/worker``):

- runs ``transform.cmd`` as it is; only when ``cmd`` is empty does it run the
  image's ``Entrypoint`` (the image's ``Cmd`` is never appended);
- runs in ``transform.working_dir``, else the image's ``WorkingDir``;
- runs as ``transform.user``, else the image's ``User`` (looked up in the
  image's own ``/etc/passwd`` and ``/etc/group``), else root;
- gives the container the image's ``Env``, then ``transform.env``, then its
  own variables (``PACH_*``, the inputs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tusk.errors import InvalidArgument

__all__ = ["DEFAULT_PATH", "ImageConfig", "lookup_user"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # Docker's, when Env has none


@dataclass(frozen=True)
class ImageConfig:
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    user: str | None = None
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    architecture: str | None = None
    os: str | None = None
    created: str | None = None
    diff_ids: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes) -> ImageConfig:
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise InvalidArgument(f"the image config is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise InvalidArgument("the image config is not a JSON object")
        conf = doc.get("config") or doc.get("container_config") or {}
        env: dict[str, str] = {}
        for item in conf.get("Env") or []:
            key, sep, value = str(item).partition("=")
            if sep and key:
                env[key] = value
        rootfs = doc.get("rootfs") or {}
        return cls(
            env=env, working_dir=conf.get("WorkingDir") or None, user=conf.get("User") or None,
            entrypoint=[str(a) for a in conf.get("Entrypoint") or []], cmd=[str(a) for a in conf.get("Cmd") or []],
            architecture=doc.get("architecture"), os=doc.get("os"), created=doc.get("created"),
            diff_ids=[str(d) for d in rootfs.get("diff_ids") or []],
        )

    def command(self, cmd: list[str]) -> list[str]:
        """What runs: ``transform.cmd``, or the image's entrypoint when it is empty (Pachyderm's rule)."""
        return list(cmd) if cmd else list(self.entrypoint)

    def summary(self) -> dict[str, Any]:
        return {"env": self.env, "working_dir": self.working_dir, "user": self.user,
                "entrypoint": self.entrypoint, "cmd": self.cmd, "architecture": self.architecture, "os": self.os,
                "created": self.created}


def _table(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def lookup_user(root: Path, user: str) -> tuple[int, int, str]:
    """``user`` (``name``, ``uid``, ``name:group``, ``uid:gid``) as (uid, gid, home) in the image at ``root``."""
    name, _, group = user.partition(":")
    passwd = _table(root / "etc" / "passwd")
    uid: int | None = None
    gid: int | None = None
    home = "/"
    for row in passwd:
        if len(row) >= 6 and (row[0] == name or row[2] == name):
            uid, gid, home = int(row[2]), int(row[3]), row[5] or "/"
            break
    if uid is None:
        if not name.isdigit():
            raise InvalidArgument(f"user {name!r} is not in the image's /etc/passwd: give a uid (1000) or uid:gid")
        uid, gid = int(name), int(name)
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            found = [int(row[2]) for row in _table(root / "etc" / "group") if len(row) >= 3 and row[0] == group]
            if not found:
                raise InvalidArgument(f"group {group!r} is not in the image's /etc/group: give a gid")
            gid = found[0]
    assert gid is not None
    if not (0 <= uid < 1 << 31 and 0 <= gid < 1 << 31):
        raise InvalidArgument(f"user {user!r} is out of range")
    return uid, gid, home
