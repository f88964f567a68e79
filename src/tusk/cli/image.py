"""``tusk image``: the container images pipelines run in, imported without a daemon."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from tusk.cli._state import emit, say, state
from tusk.units import human_size

if TYPE_CHECKING:
    from tusk.images.store import ImageInfo

app = typer.Typer(help="Import, list, inspect and delete the container images that pipelines' `image` runs in.",
                  no_args_is_help=True)

_COLUMNS = ["tags", "id", "size", "layers", "imported"]


def _row(i: ImageInfo) -> list[object]:
    return [", ".join(i.tags) or "(untagged)", i.short_id, human_size(i.size), len(i.layers), i.imported_at[:19]]


@app.command("import")
def import_(path: Path = typer.Argument(..., help="a `docker save` archive, an OCI image archive, or an OCI "
                                                  "layout directory"),
            tag: str | None = typer.Option(None, "--tag", "-t", help="NAME:TAG for the image (when the archive "
                                                                     "names none, or to name it otherwise)")) -> None:
    """Import images: `docker save IMAGE -o FILE` on a machine with Docker, then `tusk image import FILE`.

    Pipelines whose `image` names one run their datums in its root filesystem, with no daemon."""
    infos = state.client.import_image(path, tag)
    if state.json:
        emit(infos, _COLUMNS, _row)
        return
    for info in infos:
        say(f"imported {', '.join(info.tags)} ({info.id}, {len(info.layers)} layers, {human_size(info.size)})")


@app.command("list")
def list_() -> None:
    """List imported images."""
    emit(state.client.list_images(), _COLUMNS, _row)


@app.command("inspect")
def inspect(ref: str = typer.Argument(..., help="a tag (busybox, app:v2), an id or short id, or NAME@sha256:...")
            ) -> None:
    """Show an image: its id, tags, layers and the config a pipeline runs it with."""
    info = state.client.inspect_image(ref)
    if state.json:
        emit(info, _COLUMNS, _row)
        return
    conf = info.config
    say(f"id          {info.id}")
    say(f"tags        {', '.join(info.tags) or '(untagged)'}")
    say(f"size        {human_size(info.size)} in {len(info.layers)} layers")
    say(f"platform    {conf.os or '?'}/{conf.architecture or '?'}")
    say(f"imported    {info.imported_at[:19]} by {info.imported_by} ({info.layout})")
    say(f"entrypoint  {conf.entrypoint or '(none)'}")
    say(f"cmd         {conf.cmd or '(none)'}")
    say(f"workdir     {conf.working_dir or '/'}")
    say(f"user        {conf.user or 'root'}")
    for key, value in conf.env.items():
        say(f"env         {key}={value}")


@app.command("delete")
def delete(ref: str, force: bool = typer.Option(False, "--force", help="drop the tag even while a pipeline runs "
                                                                       "the image (its layers stay for it)")) -> None:
    """Untag an image; its layers are deleted once no tag names it and no pipeline version runs it."""
    said = state.client.delete_image(ref, force)
    if not state.json:
        for line in said:
            say(line)
