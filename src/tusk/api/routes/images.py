"""Container images for ``transform.image``: imported from a ``docker save`` archive or an OCI layout (a tar),
listed, inspected and deleted. Any signed-in user may import and read them; deleting is for whoever imported
the image and for cluster admins."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import IO

from fastapi import APIRouter, Request

from tusk.api._body import with_body
from tusk.api._deps import CallerDep
from tusk.errors import PermissionDenied
from tusk.images.store import ImageInfo

router = APIRouter(prefix="/api/v1/images", tags=["images"])

_TAR = {"content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}}}


@router.post("", status_code=201, openapi_extra={"requestBody": {"required": True, **_TAR}})
async def import_image(request: Request, caller: CallerDep, tag: str | None = None) -> list[ImageInfo]:
    """Import the images of the body (a ``docker save`` archive or an OCI image archive), streamed to a
    temporary file first; ``tag`` names the image when the archive holds one."""

    def work(body: IO[bytes]) -> list[ImageInfo]:
        with tempfile.TemporaryDirectory(prefix="tusk-image-") as tmp:
            archive = Path(tmp) / "image.tar"
            with open(archive, "wb") as out:
                shutil.copyfileobj(body, out, 1 << 20)
            return caller.ops.import_image(archive, tag)

    return await with_body(request, work)


@router.get("")
def list_images(caller: CallerDep) -> list[ImageInfo]:
    return caller.ops.list_images()


@router.get("/{ref:path}")
def inspect_image(ref: str, caller: CallerDep) -> ImageInfo:
    return caller.ops.inspect_image(ref)


@router.delete("/{ref:path}")
def delete_image(ref: str, caller: CallerDep, force: bool = False) -> list[str]:
    """Untag an image; its layers go once nothing names or runs it. Refused while a pipeline runs it, unless
    ``force`` (the tag goes, the layers stay for those pipelines)."""
    info = caller.ops.inspect_image(ref)
    if not caller.admin and info.imported_by != caller.user:
        raise PermissionDenied(f"image {ref!r} was imported by {info.imported_by}: only they or a cluster admin "
                               "may delete it")
    return caller.ops.delete_image(ref, force)
