"""File changes as ops: what an open commit records and a finish applies.

Ops are path-level (put, delete, append), so when a concurrent writer moves the
branch head first, a commit is rebased by replaying its ops on the new head
instead of failing or overwriting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tusk.errors import FileNotFound
from tusk.storage.content import ContentStore, FileNode
from tusk.versioning.trees import Entry, MutableTree, decode_entries, encode_entries, file_entry

__all__ = ["Op", "apply_ops", "decode_op_payload", "encode_op_payload"]

OpKind = Literal["put", "delete", "append", "root"]


@dataclass(frozen=True)
class Op:
    kind: OpKind
    path: str
    entry: Entry | None = None  # put: the entry; append: a file entry of the added bytes; root: the new root dir
    missing_ok: bool = False


def encode_op_payload(entry: Entry | None) -> bytes | None:
    return None if entry is None else encode_entries([entry])


def decode_op_payload(payload: bytes | None) -> Entry | None:
    return None if payload is None else decode_entries(payload)[0]


def apply_ops(tree: MutableTree, content: ContentStore, ops: list[Op]) -> None:
    for op in ops:
        if op.kind == "put":
            assert op.entry is not None
            tree.put(op.path, op.entry)
        elif op.kind == "root":  # replace everything with an already stored tree (a job's output)
            assert op.entry is not None
            tree.replace_root(op.entry.digest)
        elif op.kind == "delete":
            if not tree.delete(op.path) and not op.missing_ok:
                raise FileNotFound(f"cannot delete {op.path}: no such file or directory")
        else:
            assert op.entry is not None and op.entry.file is not None
            old = tree.get(op.path)
            base = old.file if old is not None and old.file is not None else FileNode(())
            name = op.path.rsplit("/", 1)[-1]
            tree.put(op.path, file_entry(name, content.append(base, op.entry.file, op.path)))
