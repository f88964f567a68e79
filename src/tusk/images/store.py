"""Imported images, kept in the object store: blobs by digest, a record per image, a record per tag.

Object keys (nothing here is a chunk or a tree, so ``tusk gc`` leaves it alone)::

    images/blobs/sha256/<hex>     a layer or a config, as imported (its key is its sha256)
    images/records/sha256/<hex>   Tusk's record of the image whose config has that digest (its id)
    images/tags/<hex of name:tag> the tag: which image it names, who imported it, when

An image's id is its config's digest (Docker's image id). Importing writes
blobs, then the record, then the tags, so a tag never names a missing image;
re-importing writes nothing that is stored already. A root filesystem is
materialized once per image id on each host, from the blobs (each checked
against its digest), in ``<cache>/<hex>`` (see ``tusk.images.rootfs``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tusk.errors import Conflict, ImageNotFound, IntegrityError, InvalidArgument, NotFound
from tusk.images.archive import ImageSource, compression_of, read_images
from tusk.images.config import ImageConfig
from tusk.images.refs import parse_ref
from tusk.images.rootfs import add_mount_points, apply_layer, open_layer
from tusk.versioning.context import Context

__all__ = ["ImageInfo", "ImageNotFound", "ImageStore", "LayerInfo"]

_BLOBS = "images/blobs/sha256/"
_RECORDS = "images/records/sha256/"
_TAGS = "images/tags/"


@dataclass(frozen=True)
class LayerInfo:
    digest: str  # sha256 of the blob as stored
    diff_id: str  # sha256 of the uncompressed tar
    size: int
    compression: str


@dataclass(frozen=True)
class ImageInfo:
    id: str  # sha256:<hex> of the config
    tags: list[str]
    layers: list[LayerInfo]
    config: ImageConfig
    manifest: str | None  # the OCI manifest's digest, when imported from an OCI layout
    imported_at: str
    imported_by: str
    layout: str
    size: int = field(default=0)

    @property
    def short_id(self) -> str:
        return self.id.removeprefix("sha256:")[:12]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "tags": self.tags, "size": self.size, "layers": [
            {"digest": layer.digest, "diff_id": layer.diff_id, "size": layer.size,
             "compression": layer.compression} for layer in self.layers],
            "config": self.config.summary(), "manifest": self.manifest, "imported_at": self.imported_at,
            "imported_by": self.imported_by, "layout": self.layout}


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


def _is_id(text: str) -> bool:
    """An image id (``sha256:<hex>``) or a short one (6 to 64 hex digits), rather than a name."""
    return text.startswith("sha256:") or (6 <= len(text) <= 64 and all(c in "0123456789abcdef" for c in text))


def _tag_key(tagged: str) -> str:
    return _TAGS + tagged.encode().hex()


def _diff_id(blob: bytes, compression: str, label: str) -> str:
    """sha256 of the layer's uncompressed tar."""
    if compression == "none":
        return "sha256:" + hashlib.sha256(blob).hexdigest()
    if compression == "gzip":
        import zlib

        h = hashlib.sha256()
        d = zlib.decompressobj(wbits=31)
        view = memoryview(blob)
        for i in range(0, len(view), 1 << 20):
            h.update(d.decompress(view[i:i + (1 << 20)]))
            while d.unconsumed_tail:
                h.update(d.decompress(d.unconsumed_tail))
        h.update(d.flush())
        return "sha256:" + h.hexdigest()
    if compression in ("bzip2", "xz"):
        import bz2
        import lzma

        raw = bz2.decompress(blob) if compression == "bzip2" else lzma.decompress(blob)
        return "sha256:" + hashlib.sha256(raw).hexdigest()
    raise InvalidArgument(f"{label} is {compression}-compressed, which Tusk cannot read here; save the image with "
                          "gzip or uncompressed layers (`docker save` does)")


class ImageStore:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # -- import ---------------------------------------------------------------------------------------------------
    def import_archive(self, path: Path, tag: str | None = None) -> list[ImageInfo]:
        """Import every image of a ``docker save`` archive or an OCI layout; ``tag`` names the only one, or the
        one without a name. Returns the images with their tags."""
        with read_images(path) as sources:
            if tag is not None and len(sources) > 1:
                raise InvalidArgument(f"{path} holds {len(sources)} images; --tag names one: import them with "
                                      "their own tags, or save one image per archive")
            return [self._import(source, path, tag) for source in sources]

    def _import(self, source: ImageSource, path: Path, tag: str | None) -> ImageInfo:
        config_digest = "sha256:" + hashlib.sha256(source.config).hexdigest()
        if source.config_digest is not None and source.config_digest != config_digest:
            raise IntegrityError(f"{path}: the image config does not match its digest ({source.config_digest}, "
                                 f"read {config_digest}); the archive is damaged")
        config = ImageConfig.parse(source.config)
        if config.diff_ids and len(config.diff_ids) != len(source.layers):
            raise IntegrityError(f"{path}: the config names {len(config.diff_ids)} layers, the manifest "
                                 f"{len(source.layers)}")
        tags = [str(parse_ref(t)) for t in source.tags]
        if tag is not None:
            ref = parse_ref(tag)
            if ref.digest is not None:
                raise InvalidArgument(f"--tag {tag!r}: a tag is NAME[:TAG], without a digest")
            tags = [str(ref)]
        if not tags:
            raise InvalidArgument(f"{path}: the image has no name; give one with --tag NAME:TAG")
        layers: list[LayerInfo] = []
        for i, layer in enumerate(source.layers):
            label = f"layer {i + 1} of {path} ({layer.path})"
            with layer.open() as f:
                blob = f.read()
            digest = "sha256:" + hashlib.sha256(blob).hexdigest()
            if layer.digest is not None and layer.digest != digest:
                raise IntegrityError(f"{label} does not match its digest ({layer.digest}, read {digest}); the "
                                     "archive is damaged")
            compression = compression_of(blob[:8])
            diff_id = _diff_id(blob, compression, label)
            if config.diff_ids and config.diff_ids[i] != diff_id:
                raise IntegrityError(f"{label}: its content does not match the config's diff_id "
                                     f"({config.diff_ids[i]}, read {diff_id}); the archive is damaged")
            if not self.ctx.objects.exists(_BLOBS + _hex(digest)):
                self.ctx.objects.put(_BLOBS + _hex(digest), blob)
            layers.append(LayerInfo(digest, diff_id, len(blob), compression))
            del blob
        if not self.ctx.objects.exists(_BLOBS + _hex(config_digest)):
            self.ctx.objects.put(_BLOBS + _hex(config_digest), source.config)
        at = datetime.now(UTC).isoformat()
        record = {"schema": 1, "id": config_digest, "layers": [layer.__dict__ for layer in layers],
                  "manifest": source.manifest_digest, "imported_at": at, "imported_by": self.ctx.user,
                  "layout": source.layout}
        old = self._record(config_digest)
        if old is None:
            self.ctx.objects.put(_RECORDS + _hex(config_digest), json.dumps(record, sort_keys=True).encode())
        for t in tags:
            self.ctx.objects.put(_tag_key(t), json.dumps({"ref": t, "image": config_digest, "at": at,
                                                          "by": self.ctx.user}).encode())
        self.ctx.objects.flush()
        return self.get(config_digest)

    # -- reading ---------------------------------------------------------------------------------------------------
    def _record(self, image_id: str) -> dict[str, Any] | None:
        key = _RECORDS + _hex(image_id)
        if not self.ctx.objects.exists(key):
            return None
        doc: dict[str, Any] = json.loads(self.ctx.objects.get(key))
        return doc

    def _tags(self) -> dict[str, str]:
        """name:tag → image id."""
        out: dict[str, str] = {}
        for key in self.ctx.objects.list(_TAGS):
            with contextlib.suppress(NotFound, ValueError, KeyError):
                doc = json.loads(self.ctx.objects.get(key))
                out[doc["ref"]] = doc["image"]
        return out

    def exists(self, image_id: str) -> bool:
        """Whether the image ``image_id`` (``sha256:<hex>``) is imported (its record is stored)."""
        return self.ctx.objects.exists(_RECORDS + _hex(image_id))

    def config_of(self, image_id: str) -> ImageConfig:
        key = _BLOBS + _hex(image_id)
        try:
            data = self.ctx.objects.get(key)
        except NotFound:
            raise ImageNotFound(f"image {image_id} has no stored config; import it again") from None
        if "sha256:" + hashlib.sha256(data).hexdigest() != image_id:
            raise IntegrityError(f"the stored config of image {image_id} does not match its digest; import it again")
        return ImageConfig.parse(data)

    def get(self, image_id: str, tags: dict[str, str] | None = None) -> ImageInfo:
        record = self._record(image_id)
        if record is None:
            raise ImageNotFound(f"image {image_id} is not imported; import it with `tusk image import FILE`")
        tags = self._tags() if tags is None else tags
        layers = [LayerInfo(**layer) for layer in record["layers"]]
        return ImageInfo(image_id, sorted(t for t, i in tags.items() if i == image_id), layers,
                         self.config_of(image_id), record.get("manifest"), record["imported_at"],
                         record["imported_by"], record["layout"], sum(layer.size for layer in layers))

    def all(self) -> list[ImageInfo]:
        tags = self._tags()
        ids = [key.rsplit("/", 1)[-1] for key in self.ctx.objects.list(_RECORDS)]
        infos = [self.get(f"sha256:{hexpart}", tags) for hexpart in ids]
        return sorted(infos, key=lambda i: (i.tags[0] if i.tags else "~", i.id))

    def resolve(self, text: str) -> ImageInfo | None:
        """The imported image ``text`` names (a tag, an id or a short id, a ``@sha256:`` digest), or None."""
        raw = text.strip()
        if _is_id(raw):
            hexpart = raw.removeprefix("sha256:")
            matches = [k.rsplit("/", 1)[-1] for k in self.ctx.objects.list(_RECORDS)
                       if k.rsplit("/", 1)[-1].startswith(hexpart)]
            if len(matches) == 1:
                return self.get(f"sha256:{matches[0]}")
            if len(matches) > 1:
                raise InvalidArgument(f"{raw!r} names {len(matches)} images: give more of the id")
            if raw.startswith("sha256:"):
                return None
        ref = parse_ref(raw)
        if ref.digest is not None:
            for info in self.all():
                if ref.digest in (info.id, info.manifest):
                    return info
            return None
        image_id = self._tags().get(ref.tagged)
        return self.get(image_id) if image_id else None

    def inspect(self, text: str) -> ImageInfo:
        info = self.resolve(text)
        if info is None:
            raise ImageNotFound(f"image {text!r} is not imported; import it with `tusk image import FILE` "
                                "(a `docker save` archive or an OCI layout)")
        return info

    # -- deleting --------------------------------------------------------------------------------------------------
    def delete(self, text: str, in_use: Callable[[str], list[str]], force: bool = False) -> list[str]:
        """Remove a tag (or, given an id, every tag of it); the image's blobs go too once no tag names it and no
        pipeline version runs it (``in_use(id)`` names them; ``force`` drops the tags and keeps their blobs)."""
        info = self.inspect(text)
        users = in_use(info.id)
        raw = text.strip()
        drop = info.tags if _is_id(raw) or "@" in raw else [parse_ref(raw).tagged]
        remaining = [t for t in info.tags if t not in drop]
        if users and not remaining and not force:
            raise Conflict(f"image {info.tags[0] if info.tags else info.id} is run by {', '.join(users)}; "
                           "update or delete those pipelines first (or --force to drop the tag and keep the "
                           "image's layers for them)")
        for t in drop:
            self.ctx.objects.delete(_tag_key(t))
        said = [f"untagged {t}" for t in drop]
        if not remaining and not users:
            others = {layer.digest for other in self.all() if other.id != info.id for layer in other.layers}
            self.ctx.objects.delete(_RECORDS + _hex(info.id))
            for layer in info.layers:
                if layer.digest not in others:
                    self.ctx.objects.delete(_BLOBS + _hex(layer.digest))
            self.ctx.objects.delete(_BLOBS + _hex(info.id))
            said.append(f"deleted {info.id}")
        self.ctx.objects.flush()
        return said

    # -- running ---------------------------------------------------------------------------------------------------
    def rootfs(self, image_id: str, cache: Path, owner: tuple[int, int] | None,
               extra_dirs: Iterable[str] = ()) -> Path:
        """The image's root filesystem on this host, materialized once per image id (under a lock, in a
        temporary directory renamed into place), every layer checked against its digest."""
        record = self._record(image_id)
        if record is None:
            raise ImageNotFound(f"image {image_id} is not imported here; import it with `tusk image import FILE`")
        hexpart = _hex(image_id)
        final = cache / hexpart
        if (final / ".complete").exists():
            return final / "rootfs"
        cache.mkdir(parents=True, exist_ok=True)
        with open(cache / f"{hexpart}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if (final / ".complete").exists():
                return final / "rootfs"
            shutil.rmtree(final, ignore_errors=True)
            work = cache / f".tmp-{uuid.uuid4().hex}"
            root = work / "rootfs"
            root.mkdir(parents=True)
            try:
                config = self.config_of(image_id)
                for i, layer in enumerate(record["layers"]):
                    label = f"image {image_id[:19]} layer {i + 1}"
                    try:
                        blob = self.ctx.objects.get(_BLOBS + _hex(layer["digest"]))
                    except NotFound:
                        raise IntegrityError(f"{label} is missing from the store; import the image again") from None
                    with open_layer(blob, layer["digest"], layer.get("diff_id"), label) as tar:
                        del blob
                        apply_layer(root, tar, owner)
                add_mount_points(root, [config.working_dir] if config.working_dir else [], owner)
                os.chmod(root, 0o755)
                (work / ".complete").write_text(image_id + "\n")
                os.rename(work, final)
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)
                raise
        return final / "rootfs"

