"""The images half of tusk.Client: import, list, inspect and delete the container images that pipelines'
``transform.image`` runs in (``tusk.images``).

Embedded, these act on the store directly. Against a server, ``RemoteImageMethods`` uploads the archive over
HTTP and the server imports it into its own store, where its jobs find it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tusk.errors import InvalidArgument
from tusk.sdk._operations import Operations

if TYPE_CHECKING:
    from tusk.images.store import ImageInfo

__all__ = ["ImageMethods", "RemoteImageMethods"]


def _archive(path: str | Path) -> Path:
    archive = Path(path)
    if not archive.exists():
        raise InvalidArgument(f"{archive}: no such file or directory (give a `docker save` archive or an OCI layout)")
    return archive


class ImageMethods(Operations):

    def import_image(self, path: str | Path, tag: str | None = None) -> list[ImageInfo]:
        """Import the images of a ``docker save`` archive or an OCI layout (a tar, or a directory); ``tag``
        names the image (``NAME:TAG``) when the archive holds one. Layers already stored are not stored again."""
        return self.services.images.import_archive(_archive(path), tag)

    def list_images(self) -> list[ImageInfo]:
        return self.services.images.all()

    def inspect_image(self, ref: str) -> ImageInfo:
        """An imported image by tag (``busybox``, ``app:v2``), id or short id, or ``NAME@sha256:DIGEST``."""
        return self.services.images.inspect(ref)

    def delete_image(self, ref: str, force: bool = False) -> list[str]:
        """Untag an image (by id: every tag); its layers go once no tag names it and no pipeline version runs it
        (refused while one does, unless ``force``, which drops the tag and keeps the layers). Says what it did."""
        return self.services.images.delete(ref, self.services.pipelines.image_users, force)


def _url(ref: str | None = None) -> str:
    return "/api/v1/images" + (f"/{quote(ref, safe='')}" if ref is not None else "")


def _info(body: Any) -> ImageInfo:
    from pydantic import TypeAdapter

    from tusk.images.store import ImageInfo

    return TypeAdapter(ImageInfo).validate_python(body)


class RemoteImageMethods(Operations):
    """``ImageMethods`` against a server (mixed into ``HttpOperations``, whose ``_json`` sends the request)."""

    def _json(self, method: str, url: str, **kw: Any) -> Any:
        raise NotImplementedError  # HttpOperations'

    def import_image(self, path: str | Path, tag: str | None = None) -> list[ImageInfo]:
        import tarfile
        import tempfile

        archive = _archive(path)
        with tempfile.TemporaryFile() as body:
            if archive.is_dir():  # an OCI layout directory travels as a tar of itself
                with tarfile.open(fileobj=body, mode="w") as tar:
                    for child in sorted(archive.iterdir()):
                        tar.add(child, arcname=child.name)
                body.seek(0)
                stream: Any = body
            else:
                stream = archive.open("rb")
            try:
                params = {"tag": tag} if tag else {}
                return [_info(item) for item in self._json(
                    "POST", _url(), content=iter(lambda: stream.read(1 << 20), b""), params=params,
                    headers={"Content-Type": "application/x-tar"})]
            finally:
                if stream is not body:
                    stream.close()

    def list_images(self) -> list[ImageInfo]:
        return [_info(item) for item in self._json("GET", _url())]

    def inspect_image(self, ref: str) -> ImageInfo:
        return _info(self._json("GET", _url(ref)))

    def delete_image(self, ref: str, force: bool = False) -> list[str]:
        said: list[str] = self._json("DELETE", _url(ref), params={"force": "true"} if force else {})
        return said
