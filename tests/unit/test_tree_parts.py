"""Large directories are stored in parts: the same entries give the same objects however they were written, a
change rewrites the part it falls in, and every reader sees the whole directory."""

from __future__ import annotations

import random
from pathlib import Path

import blake3
import pytest

from tusk.errors import IntegrityError, ObjectCorrupt
from tusk.ids import Digest
from tusk.storage.content import FileNode
from tusk.storage.objects import LocalObjectStore
from tusk.versioning.trees import PARTS_ABOVE, Entry, MutableTree, TreeStore, _decode_parts, _ends_part, tree_key

N = 6000


def _entry(name: str, seed: int) -> Entry:
    """A file entry with a made-up digest (the tree never reads the chunks)."""
    return Entry(name, "file", seed, Digest(f"{seed:064x}"), FileNode(()))


def _objects(root: Path) -> set[Path]:
    return {p for p in (root / "trees").rglob("*") if p.is_file()}


@pytest.fixture
def trees(tmp_path: Path) -> TreeStore:
    return TreeStore(LocalObjectStore(tmp_path / "o"))


def _fresh(trees: TreeStore) -> TreeStore:
    """The same store, read by a process with nothing cached."""
    return TreeStore(trees.objects)


def test_a_large_directory_is_stored_in_parts_and_read_whole(trees: TreeStore) -> None:
    entries = {f"f{i:06}": _entry(f"f{i:06}", i) for i in range(N)}
    digest, size = trees.store(entries)
    assert size == sum(range(N))
    reader = _fresh(trees)
    parts = reader.part_digests(digest)
    assert 4 <= len(parts) <= 40  # ~N / 512
    assert list(reader.load(digest)) == sorted(entries)
    assert reader.load(digest) == entries
    assert reader.size(digest) == size
    assert reader.entry(digest, "f004321") == entries["f004321"]
    assert reader.entry(digest, "f9") is None and reader.entry(digest, "a") is None
    small, _ = trees.store({k: entries[k] for k in list(entries)[:PARTS_ABOVE]})
    assert trees.part_digests(small) == []  # at most PARTS_ABOVE entries: one object, as before


def test_the_same_entries_give_the_same_digest_however_they_were_edited(trees: TreeStore) -> None:
    """Random puts and deletes through MutableTree, in a directory that crosses PARTS_ABOVE both ways, land on
    the digest that storing the final entries from scratch gives."""
    rng = random.Random(7)
    names = [f"n{rng.randrange(10**9):09}" for _ in range(N)]
    expected = {n: _entry(n, i) for i, n in enumerate(names[:PARTS_ABOVE - 50])}
    tree = MutableTree(trees, trees.store({})[0])
    for n, e in expected.items():
        tree.put(f"/d/{n}", e)
    root = tree.finish()[0]
    for round_ in range(12):
        reader = _fresh(trees)
        tree = MutableTree(reader, root)
        grow = round_ < 6
        for _ in range(rng.randrange(1, 900 if grow else 1500)):
            if expected and (not grow or rng.random() < 0.3):
                victim = rng.choice(sorted(expected))
                assert tree.delete(f"/d/{victim}")
                del expected[victim]
            else:
                n = rng.choice(names)
                expected[n] = _entry(n, rng.randrange(10**6))
                tree.put(f"/d/{n}", expected[n])
        root = tree.finish()[0]
        d = reader.lookup(root, "/d")
        if not expected:
            assert d is None
            break
        assert d is not None
        scratch = _fresh(trees).store(expected)[0]
        assert d.digest == scratch, f"round {round_}: {len(expected)} entries"
        assert _fresh(trees).load(d.digest) == dict(sorted(expected.items()))
        assert d.size == sum(e.size for e in expected.values())


@pytest.mark.parametrize("edit", ["a part's last name goes", "a part's every name goes", "a new last name",
                                  "the first and the last names go", "down to PARTS_ABOVE"])
def test_edits_at_part_boundaries_give_the_digest_of_the_entries(trees: TreeStore, edit: str) -> None:
    entries = {f"f{i:06}": _entry(f"f{i:06}", i) for i in range(N)}
    digest = trees.store(entries)[0]
    names = sorted(entries)
    lasts = [n for n in names if _ends_part(n)]
    changes: dict[str, Entry | None] = {}
    if edit == "a part's last name goes":
        changes = {lasts[1]: None, lasts[2]: None}
    elif edit == "a part's every name goes":
        changes = {n: None for n in names if lasts[0] < n <= lasts[1]}
    elif edit == "a new last name":
        new = next(f"f{i:06}x" for i in range(N) if _ends_part(f"f{i:06}x"))
        changes = {new: _entry(new, 1)}
    elif edit == "the first and the last names go":
        changes = {names[0]: None, names[-1]: None}
    else:
        changes = {n: None for n in names[PARTS_ABOVE:]}
    reader = _fresh(trees)
    edited = reader.store_edited(digest, changes)
    for name, e in changes.items():
        if e is None:
            del entries[name]
        else:
            entries[name] = e
    assert edited == _fresh(trees).store(entries)
    assert _fresh(trees).load(edited[0]) == dict(sorted(entries.items()))
    assert bool(_fresh(trees).part_digests(edited[0])) == (len(entries) > PARTS_ABOVE)


def test_one_change_rewrites_one_part_and_the_path(trees: TreeStore, tmp_path: Path) -> None:
    entries = {f"f{i:06}": _entry(f"f{i:06}", i) for i in range(N)}
    tree = MutableTree(trees, trees.store({})[0])
    for k, v in entries.items():
        tree.put(f"/big/{k}", v)
    root = tree.finish()[0]
    before = _objects(tmp_path / "o")
    reader = _fresh(trees)
    tree = MutableTree(reader, root)
    tree.put("/big/f000007", _entry("f000007", 10**7))
    new_root = tree.finish()[0]
    written = _objects(tmp_path / "o") - before
    assert len(written) == 3  # the part holding f000007, the index of /big, the root
    assert _fresh(trees).lookup(new_root, "/big/f000007").size == 10**7  # type: ignore[union-attr]
    changes = list(_fresh(trees).diff(root, new_root))
    assert [(p, a.size if a else None, b.size if b else None) for p, a, b in changes] == \
        [("/big/f000007", 7, 10**7)]


def test_diff_of_directories_in_parts_equals_the_diff_of_their_entries(trees: TreeStore) -> None:
    rng = random.Random(3)
    old = {f"f{i:06}": _entry(f"f{i:06}", i) for i in range(N)}
    new = dict(old)
    for name in rng.sample(sorted(old), 40):
        del new[name]
    for name in rng.sample(sorted(old), 40):
        new[name] = _entry(name, 10**6 + rng.randrange(1000))
    for i in range(40):
        new[f"g{i:03}"] = _entry(f"g{i:03}", i)
    a, b = trees.store(old)[0], trees.store(new)[0]
    got = [(p, x, y) for p, x, y in _fresh(trees).diff(a, b)]
    want = [(f"/{n}", old.get(n), new.get(n)) for n in sorted(old.keys() | new.keys()) if old.get(n) != new.get(n)]
    assert got == want


def test_pages_of_a_directory_in_parts(trees: TreeStore) -> None:
    entries = {f"f{i:06}": _entry(f"f{i:06}", i) for i in range(N)}
    root = trees.store({"big": Entry("big", "dir", 0, trees.store(entries)[0])})[0]
    reader = _fresh(trees)
    for offset, limit in ((0, 10), (511, 3), (1000, 2000), (N - 5, 100), (N + 3, 10), (0, None)):
        got = [p for p, _ in reader.list_dir(root, "/big", offset, limit)]
        want = [f"/big/{n}" for n in sorted(entries)][offset : offset + limit if limit else None]
        assert got == want, (offset, limit)


def test_a_missing_or_altered_part_is_an_integrity_error(trees: TreeStore) -> None:
    entries = {f"f{i:06}": _entry(f"f{i:06}", i) for i in range(N)}
    digest, _ = trees.store(entries)
    parts = trees.part_digests(digest)
    # an index naming another valid part in place of one: the index's count and last name catch it
    forged = trees.objects.get(tree_key(digest)).replace(bytes.fromhex(parts[2]), bytes.fromhex(parts[3]))
    forged_digest = blake3.blake3(forged).hexdigest()
    trees.objects.put(tree_key(forged_digest), forged)
    with pytest.raises(ObjectCorrupt, match="does not match its index"):
        _fresh(trees).load(forged_digest)
    trees.objects.delete(tree_key(parts[1]))
    with pytest.raises(IntegrityError):
        _fresh(trees).load(digest)
    with pytest.raises(IntegrityError):
        list(_fresh(trees).diff(digest, trees.store({})[0]))


def test_a_truncated_index_is_refused(trees: TreeStore) -> None:
    digest, _ = trees.store({f"f{i:06}": _entry(f"f{i:06}", i) for i in range(N)})
    data = trees.objects.get(tree_key(digest))
    for cut in range(len(data) - 1, len(b"tusk-tree-parts:v1\n") - 1, -5):
        with pytest.raises(ValueError):
            _decode_parts(data[:cut])
    assert _decode_parts(data).count == N
