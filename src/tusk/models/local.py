"""Load a model from a directory on disk: an export (``tusk model export``) or a pipeline input (``/pfs/model``).

The manifest is looked for, in order: the one passed in; ``DIR/tusk-manifest.json``
(an export); ``DIR/../.tusk/manifests/NAME.json`` (written by the pipeline
worker for each input that holds a model). Files are verified against it before
they are deserialized.
"""

from __future__ import annotations

from pathlib import Path

from tusk.errors import ModelNotFound, ModelTampered
from tusk.models.loaders import LoadedModel, load_model
from tusk.models.manifest import DESCRIPTOR, MLMODEL, Manifest, ModelEntry, flavor_of, verify_file

__all__ = ["MANIFEST_FILE", "find_manifest", "load_dir"]

MANIFEST_FILE = "tusk-manifest.json"


def find_manifest(directory: Path) -> Manifest | None:
    for candidate in (directory / MANIFEST_FILE, directory.parent / ".tusk" / "manifests" / f"{directory.name}.json"):
        if candidate.is_file():
            return Manifest.loads(candidate.read_bytes())
    return None


def _unverified_entry(directory: Path, path: str | None) -> ModelEntry:
    root = directory / (path or "").lstrip("/")
    if root.is_file():
        flavor = flavor_of(root.name)
        if flavor is None:
            raise ModelNotFound(f"{root} is not a model file Tusk knows (*.pkl, *.joblib, *.onnx, ...)")
        rel = "/" + root.relative_to(directory).as_posix()
        return ModelEntry(rel, flavor, (rel,))
    if (root / MLMODEL).is_file() or (root / DESCRIPTOR).is_file():
        raise ModelNotFound(f"{root}: directory models are loaded only with their manifest")
    found = sorted(p for p in root.rglob("*") if p.is_file() and flavor_of(p.name))
    if len(found) != 1:
        raise ModelNotFound(f"{root} holds {len(found)} model files; name one with path=")
    rel = "/" + found[0].relative_to(directory).as_posix()
    return ModelEntry(rel, flavor_of(found[0].name) or "", (rel,))


def load_dir(directory: str | Path, path: str | None = None, manifest: Manifest | str | Path | None = None,
             verify: bool = True) -> LoadedModel:
    """Load the model at ``path`` under ``directory`` (or its only model), verified against its manifest.

    ``verify=False`` loads a lone model file without a manifest; nothing then
    vouches for its bytes.
    """
    directory = Path(directory)
    if isinstance(manifest, str | Path):
        manifest = Manifest.loads(Path(manifest).read_bytes())
    if manifest is None and verify:
        manifest = find_manifest(directory)
        if manifest is None:
            raise ModelNotFound(
                f"no model manifest for {directory} (looked for {MANIFEST_FILE} and ../.tusk/manifests/); "
                "load from the repo (`client.load_model`), export with `tusk model export`, or pass verify=False")
    if manifest is None:
        entry = _unverified_entry(directory, path)
        files = {p: (directory / p.lstrip("/")).read_bytes() for p in entry.files}
        return load_model(entry, files, None)
    entry = manifest.model(path)
    files = {}
    for p in entry.files:
        local = directory / p.lstrip("/")
        if not local.is_file():
            raise ModelTampered(f"model file {p} is missing from {directory}: refusing to load the model")
        data = local.read_bytes()
        verify_file(manifest.file(p), [data])
        files[p] = data
    return load_model(entry, files, manifest)
