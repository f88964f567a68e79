"""Object stores: one small interface, backends registered by URL scheme."""

from tusk.storage.objects._local import LocalObjectStore
from tusk.storage.objects._protocol import ObjectStat, ObjectStore
from tusk.storage.objects._registry import open_object_store, register_scheme

__all__ = ["LocalObjectStore", "ObjectStat", "ObjectStore", "open_object_store", "register_scheme"]
