"""Image references as users write them: ``busybox``, ``python:3.11``, ``docker.io/library/python:3.11``,
``registry.example.com:5000/team/app:v2``, ``app@sha256:...``.

Two spellings of one Docker Hub image are one reference: ``busybox``,
``busybox:latest``, ``library/busybox:latest`` and
``docker.io/library/busybox:latest`` all normalize to ``busybox:latest``, as
``docker`` treats them. A reference with a digest keeps it, and matches an
image whose config or manifest has that digest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tusk.errors import InvalidArgument

__all__ = ["ImageRef", "parse_ref"]

_NAME = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_DOMAIN = re.compile(r"^(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*)(?::\d+)?$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class ImageRef:
    name: str  # docker.io/library/ and docker.io/ dropped: "busybox", "team/app", "registry:5000/team/app"
    tag: str | None  # "latest" when neither a tag nor a digest was given
    digest: str | None = None  # "sha256:<hex>"

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    @property
    def tagged(self) -> str:
        """``name:tag``: what a tag record is stored under (a digest-only reference has none)."""
        return f"{self.name}:{self.tag}" if self.tag is not None else self.name


def parse_ref(text: str) -> ImageRef:
    """``text`` as a reference, normalized; an ``InvalidArgument`` that says what is wrong otherwise."""
    raw = text.strip()
    if not raw:
        raise InvalidArgument("an image reference is empty: give NAME[:TAG] or NAME@sha256:DIGEST")
    rest, _, digest = raw.partition("@")
    if digest and not _DIGEST.match(digest):
        raise InvalidArgument(f"image reference {text!r}: the digest must be sha256: and 64 hex digits")
    name, tag = rest, None
    slash, colon = rest.rfind("/"), rest.rfind(":")
    if colon > slash:
        name, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.match(tag):
            raise InvalidArgument(f"image reference {text!r}: tag {tag!r} is not valid (letters, digits, _ . -)")
    parts = name.split("/")
    domain = None
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        domain, parts = parts[0], parts[1:]
        if not _DOMAIN.match(domain):
            raise InvalidArgument(f"image reference {text!r}: {domain!r} is not a registry host")
    if domain in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        domain = None
    if domain is None and len(parts) == 2 and parts[0] == "library":
        parts = parts[1:]
    path = "/".join(parts)
    if not _NAME.match(path):
        raise InvalidArgument(f"image reference {text!r}: {path!r} is not an image name (lower-case letters, "
                              "digits and . _ - separated by /)")
    if tag is None and not digest:
        tag = "latest"
    return ImageRef(f"{domain}/{path}" if domain else path, tag, digest or None)
