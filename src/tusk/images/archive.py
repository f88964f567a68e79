"""Reading images as ``docker save`` and OCI tools write them, without a daemon.

Two layouts are read, each as a tar archive or as a directory:

- ``docker save``: ``manifest.json`` lists each image's config file, its
  ``RepoTags`` and its layer files (``<id>/layer.tar`` before Docker 25,
  ``blobs/sha256/<hex>`` since);
- an OCI image layout (``oci-layout``, ``index.json``, ``blobs/sha256/...``),
  as written by ``skopeo copy ... oci:``, ``buildah push ... oci:``,
  ``docker buildx build --output type=oci`` or ``podman save --format
  oci-archive``. An image index (several platforms) gives the image of this
  machine's platform. Tags come from the ``org.opencontainers.image.ref.name``
  and ``io.containerd.image.name`` annotations.

Nothing is trusted: every blob is hashed as it is read, and a layer's
uncompressed bytes must hash to the ``diff_id`` its config names.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import platform
import posixpath
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tusk.errors import InvalidArgument

__all__ = ["ImageSource", "LayerSource", "compression_of", "read_images", "sha256_file"]

_INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
                "application/vnd.docker.distribution.manifest.list.v2+json")
_MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json",
                   "application/vnd.docker.distribution.manifest.v2+json")
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
         "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}
_JSON_LIMIT = 16 << 20  # a manifest, index or config larger than this is not one


@dataclass(frozen=True)
class LayerSource:
    path: str  # where it is in the archive (for messages)
    digest: str | None  # sha256:<hex> of the blob, when the layout names it (OCI); checked when read
    open: Callable[[], IO[bytes]]


@dataclass(frozen=True)
class ImageSource:
    config: bytes
    config_digest: str | None  # as the layout names it (checked by the store)
    layers: list[LayerSource]
    tags: list[str]
    manifest_digest: str | None  # the OCI manifest's digest (what a registry reference @sha256: names)
    layout: str  # "docker-save" | "oci"


def compression_of(head: bytes) -> str:
    """``gzip``, ``zstd`` or ``none`` (a plain tar), from a blob's first bytes."""
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    if head[:3] == b"BZh":
        return "bzip2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    return "none"


class _Files:
    """The files of an archive or a directory, by their relative path."""

    def __init__(self, path: Path, stack: contextlib.ExitStack) -> None:
        self.root = path
        self.tar: tarfile.TarFile | None = None
        self.members: dict[str, tarfile.TarInfo] = {}
        if path.is_file():
            try:
                self.tar = stack.enter_context(tarfile.open(path, "r:*"))  # noqa: SIM115 (the stack closes it)
                for m in self.tar.getmembers():
                    self.members[posixpath.normpath(m.name.lstrip("/")).removeprefix("./")] = m
            except (tarfile.TarError, EOFError, OSError) as exc:
                raise InvalidArgument(f"{path} is not a tar archive ({exc}): give a `docker save` archive, an "
                                      "OCI image archive or an OCI layout directory") from None

    def exists(self, rel: str) -> bool:
        if self.tar is not None:
            return rel in self.members
        return (self.root / rel).is_file()

    def opener(self, rel: str) -> Callable[[], IO[bytes]]:
        rel = posixpath.normpath(rel.lstrip("/")).removeprefix("./")
        if rel.startswith("../") or rel == "..":
            raise InvalidArgument(f"the image names a file outside its archive: {rel!r}")
        if not self.exists(rel):
            raise InvalidArgument(f"the image archive has no {rel!r}, which its manifest names")
        if self.tar is not None:
            tar, member = self.tar, self.members[rel]
            while member.issym() or member.islnk():  # docker save links identical layers
                target = member.linkname if member.islnk() else posixpath.join(posixpath.dirname(rel), member.linkname)
                rel = posixpath.normpath(target.lstrip("/"))
                if rel not in self.members:
                    raise InvalidArgument(f"the image archive's {member.name!r} links to a missing {rel!r}")
                member = self.members[rel]

            def open_member() -> IO[bytes]:
                f = tar.extractfile(member)
                if f is None:
                    raise InvalidArgument(f"{rel!r} in the image archive is not a file")
                return f
            return open_member
        full = (self.root / rel).resolve()
        if not full.is_relative_to(self.root.resolve()):
            raise InvalidArgument(f"the image layout's {rel!r} leaves the directory")
        return lambda: open(full, "rb")

    def json(self, rel: str) -> Any:
        with self.opener(rel)() as f:
            data = f.read(_JSON_LIMIT + 1)
        if len(data) > _JSON_LIMIT:
            raise InvalidArgument(f"{rel!r} in the image archive is too large to be a manifest")
        try:
            return json.loads(data)
        except ValueError as exc:
            raise InvalidArgument(f"{rel!r} in the image archive is not JSON: {exc}") from None

    def read(self, rel: str) -> bytes:
        with self.opener(rel)() as f:
            data: bytes = f.read(_JSON_LIMIT + 1)
        if len(data) > _JSON_LIMIT:
            raise InvalidArgument(f"{rel!r} in the image archive is too large to be an image config")
        return data


def _blob_path(digest: str) -> str:
    algo, _, hexpart = str(digest).partition(":")
    if algo != "sha256" or len(hexpart) != 64 or not all(c in "0123456789abcdef" for c in hexpart):
        raise InvalidArgument(f"unsupported blob digest {digest!r}: only sha256 digests are read")
    return f"blobs/sha256/{hexpart}"


def _docker_save(files: _Files) -> list[ImageSource]:
    entries = files.json("manifest.json")
    if not isinstance(entries, list) or not entries:
        raise InvalidArgument("manifest.json of the docker save archive lists no image")
    images = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) or \
                not isinstance(entry.get("Layers"), list):
            raise InvalidArgument("manifest.json of the docker save archive has an entry without Config and Layers")
        config_path = entry["Config"]
        stem = posixpath.basename(config_path).removesuffix(".json")
        named = f"sha256:{stem}" if len(stem) == 64 else None
        layers = [LayerSource(p, f"sha256:{posixpath.basename(p)}" if p.startswith("blobs/sha256/") else None,
                              files.opener(p)) for p in entry["Layers"]]
        images.append(ImageSource(files.read(config_path), named, layers, list(entry.get("RepoTags") or []), None,
                                  "docker-save"))
    return images


def _platform_matches(desc: dict[str, Any]) -> bool:
    plat = desc.get("platform") or {}
    arch = _ARCH.get(platform.machine().lower(), platform.machine().lower())
    return (plat.get("os") in (None, "linux")) and (plat.get("architecture") in (None, arch))


def _oci_manifests(files: _Files, desc: dict[str, Any], depth: int = 0) -> Iterator[tuple[dict[str, Any], str]]:
    """Each image manifest ``desc`` leads to (an index: its entry for this platform), with its digest."""
    if depth > 4:
        raise InvalidArgument("the OCI layout's indexes nest too deeply")
    media = desc.get("mediaType", "")
    body = files.json(_blob_path(desc.get("digest", "")))
    media = body.get("mediaType", media) if isinstance(body, dict) else media
    if media in _INDEX_TYPES or (isinstance(body, dict) and "manifests" in body and "layers" not in body):
        chosen = [m for m in body.get("manifests", []) if isinstance(m, dict) and _platform_matches(m)
                  and m.get("mediaType", _MANIFEST_TYPES[0]) not in ("application/vnd.in-toto+json",)]
        chosen = [m for m in chosen if (m.get("annotations") or {}).get("vnd.docker.reference.type")
                  != "attestation-manifest"]
        if not chosen:
            arch = _ARCH.get(platform.machine().lower(), platform.machine())
            raise InvalidArgument(f"the image index has no image for linux/{arch}")
        yield from _oci_manifests(files, chosen[0], depth + 1)
        return
    if not isinstance(body, dict) or "config" not in body or "layers" not in body:
        raise InvalidArgument(f"{desc.get('digest')} in the OCI layout is not an image manifest")
    yield body, str(desc["digest"])


def _oci(files: _Files, save_tags: dict[str, list[str]]) -> list[ImageSource]:
    index = files.json("index.json")
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise InvalidArgument("index.json of the OCI layout has no manifests")
    images: dict[str, ImageSource] = {}
    for desc in index["manifests"]:
        if not isinstance(desc, dict):
            continue
        notes = desc.get("annotations") or {}
        names = [n for n in (notes.get("io.containerd.image.name"), notes.get("org.opencontainers.image.ref.name"))
                 if isinstance(n, str) and n]
        for manifest, digest in _oci_manifests(files, desc):
            config = manifest["config"]
            layers = [LayerSource(_blob_path(layer["digest"]), str(layer["digest"]),
                                  files.opener(_blob_path(layer["digest"]))) for layer in manifest["layers"]]
            cfg = str(config.get("digest"))
            tags = save_tags.get(cfg, [])
            full = [n for n in names if ":" in n.rpartition("/")[2] or "/" in n]
            # a bare ref.name ("1.0") is a tag without a repository: the import needs --tag to name it
            tags = tags or full
            known = images.get(cfg)
            tags = sorted(set(tags) | set(known.tags if known else []))
            images[cfg] = ImageSource(files.read(_blob_path(cfg)), cfg, layers, tags, digest, "oci")
    if not images:
        raise InvalidArgument("the OCI layout holds no image")
    return list(images.values())


@contextlib.contextmanager
def read_images(path: Path) -> Iterator[list[ImageSource]]:
    """The images of a ``docker save`` archive or an OCI layout (archive or directory); open while in use."""
    if not path.exists():
        raise InvalidArgument(f"{path}: no such file or directory")
    with contextlib.ExitStack() as stack:
        files = _Files(path, stack)
        if files.exists("index.json") and files.exists("oci-layout"):
            save_tags: dict[str, list[str]] = {}
            if files.exists("manifest.json"):  # Docker 25+ writes both: its RepoTags name the images
                with contextlib.suppress(InvalidArgument):
                    for entry in files.json("manifest.json"):
                        stem = posixpath.basename(str(entry.get("Config", "")))
                        save_tags[f"sha256:{stem}"] = list(entry.get("RepoTags") or [])
            yield _oci(files, save_tags)
        elif files.exists("manifest.json"):
            yield _docker_save(files)
        else:
            raise InvalidArgument(f"{path} is neither a `docker save` archive (manifest.json) nor an OCI image "
                                  "layout (oci-layout, index.json)")


def sha256_file(f: IO[bytes]) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    while block := f.read(1 << 20):
        h.update(block)
        n += len(block)
    return f"sha256:{h.hexdigest()}", n

