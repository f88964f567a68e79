from __future__ import annotations

from pathlib import Path

import pytest

from tusk.errors import Conflict
from tusk.ids import Digest
from tusk.storage.content import ChunkRef, ContentStore, FileNode
from tusk.storage.objects import LocalObjectStore
from tusk.versioning.trees import (
    EMPTY_TREE,
    Entry,
    MutableTree,
    TreeStore,
    compile_glob,
    decode_entries,
    encode_entries,
    file_entry,
)


@pytest.fixture
def stores(tmp_path: Path) -> tuple[ContentStore, TreeStore]:
    objects = LocalObjectStore(tmp_path / "o")
    return ContentStore(objects), TreeStore(objects)


def _build(content: ContentStore, trees: TreeStore, files: dict[str, bytes], base: str = EMPTY_TREE) -> str:
    t = MutableTree(trees, base)
    for path, data in files.items():
        t.put(path, file_entry(path.rsplit("/", 1)[-1], content.write_bytes(data)))
    return t.finish()[0]


def test_encoding_roundtrip_and_determinism(stores: tuple[ContentStore, TreeStore]) -> None:
    content, trees = stores
    entries = [file_entry("a", content.write_bytes(b"x" * 10)), file_entry("é b", content.write_bytes(b""))]
    assert decode_entries(encode_entries(entries)) == entries
    root1 = _build(content, trees, {"/b": b"2", "/a/x": b"1"})
    root2 = _build(content, trees, {"/a/x": b"1", "/b": b"2"})
    assert root1 == root2


def test_decoding_reads_every_field_and_refuses_truncated_objects() -> None:
    packed = ChunkRef(Digest("ab" * 32), 300_000, "cd" * 16, 2**40 + 5)
    loose = ChunkRef(Digest("01" * 32), 127)
    entries = [Entry("d" * 200, "dir", 2**63 - 1, Digest("ef" * 32)),
               Entry("f", "file", 300_127, Digest("23" * 32), FileNode((packed, loose))),
               Entry("ü", "file", 0, Digest("45" * 32), FileNode(()))]
    data = encode_entries(entries)
    decoded = decode_entries(data)
    assert decoded == entries
    node = decoded[1].file
    assert node is not None and [(c.pack, c.offset) for c in node.chunks] == [("cd" * 16, 2**40 + 5), (None, 0)]
    for cut in range(len(data) - 1, len(b"tusk-tree:v1\n"), -7):
        with pytest.raises(ValueError):
            decode_entries(data[:cut])
    with pytest.raises(ValueError, match="not a tusk-tree"):
        decode_entries(b"something else")


def test_one_change_rewrites_only_the_path(stores: tuple[ContentStore, TreeStore], tmp_path: Path) -> None:
    content, trees = stores
    files = {f"/d{i}/f{j}": f"{i}-{j}".encode() for i in range(20) for j in range(20)}
    root = _build(content, trees, files)
    before = set((tmp_path / "o" / "trees").rglob("*"))
    new_root = _build(content, trees, {"/d7/f3": b"changed"}, base=root)
    written = set((tmp_path / "o" / "trees").rglob("*")) - before
    assert len([p for p in written if p.is_file()]) == 2  # /d7 and /
    assert trees.lookup(new_root, "/d7/f3").size == 7  # type: ignore[union-attr]
    assert trees.lookup(new_root, "/d8/f3") == trees.lookup(root, "/d8/f3")


def test_dir_file_conflicts(stores: tuple[ContentStore, TreeStore]) -> None:
    content, trees = stores
    root = _build(content, trees, {"/a/b": b"1"})
    t = MutableTree(trees, root)
    with pytest.raises(Conflict, match="is a file"):
        t.put("/a/b/c", file_entry("c", content.write_bytes(b"x")))
    with pytest.raises(Conflict, match="a directory exists"):
        t.put("/a", file_entry("a", content.write_bytes(b"x")))


def test_delete_removes_empty_parents(stores: tuple[ContentStore, TreeStore]) -> None:
    content, trees = stores
    root = _build(content, trees, {"/a/b/c": b"1", "/z": b"2"})
    t = MutableTree(trees, root)
    assert t.delete("/a/b/c")
    assert not t.delete("/nope")
    new = t.finish()[0]
    assert [p for p, _ in trees.walk(new, "/", dirs=True)] == ["/z"]


def test_diff_skips_equal_subtrees(stores: tuple[ContentStore, TreeStore]) -> None:
    content, trees = stores
    a = _build(content, trees, {"/x/1": b"1", "/x/2": b"2", "/y/1": b"1"})
    t = MutableTree(trees, a)
    t.put("/x/2", file_entry("2", content.write_bytes(b"22")))
    t.delete("/y/1")
    t.put("/w", file_entry("w", content.write_bytes(b"w")))
    b = t.finish()[0]
    changes = [(p, o is not None, n is not None) for p, o, n in trees.diff(a, b)]
    assert changes == [("/w", False, True), ("/x/2", True, True), ("/y/1", True, False)]


@pytest.mark.parametrize(("pattern", "path", "matches"), [
    ("/*", "/a", True), ("/*", "/a/b", False), ("/*/*", "/a/b", True), ("/**", "/a/b/c", True),
    ("/*.csv", "/x.csv", True), ("/*.csv", "/x.txt", False), ("/[ab]*", "/apple", True),
    ("/[!ab]*", "/apple", False), ("/f?.txt", "/f1.txt", True), ("/f?.txt", "/f10.txt", False),
])
def test_glob_semantics(pattern: str, path: str, matches: bool) -> None:
    assert bool(compile_glob(pattern).match(path)) is matches


def test_glob_capture_groups() -> None:
    m = compile_glob("/(*)/(*).csv").match("/2024/sales.csv")
    assert m is not None and m.groups() == ("2024", "sales")
