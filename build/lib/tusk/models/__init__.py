"""Models: manifests (hashes, provenance, metrics), verified loaders, promotion and rollback by branch."""

from tusk.models.loaders import LoadedModel
from tusk.models.local import load_dir
from tusk.models.manifest import Manifest

__all__ = ["LoadedModel", "Manifest", "load_dir"]
