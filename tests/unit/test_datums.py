from __future__ import annotations

from pathlib import Path

import pytest

from tusk.errors import InvalidArgument
from tusk.pipelines.datums import Datum, Match, datum_hash, enumerate_datums
from tusk.pipelines.spec import Input, PfsInput
from tusk.storage.content import ContentStore
from tusk.storage.objects import LocalObjectStore
from tusk.versioning.trees import EMPTY_TREE, MutableTree, TreeStore, file_entry


class Repos:
    """In-memory repos: name -> root tree, with a globber as the pipeline engine provides."""

    def __init__(self, tmp: Path) -> None:
        objects = LocalObjectStore(tmp / "o")
        self.content, self.trees = ContentStore(objects), TreeStore(objects)
        self.roots: dict[str, str] = {}

    def put(self, repo: str, files: dict[str, bytes]) -> None:
        t = MutableTree(self.trees, self.roots.get(repo, EMPTY_TREE))
        for path, data in files.items():
            t.put(path, file_entry(path.rsplit("/", 1)[-1], self.content.write_bytes(data)))
        self.roots[repo] = t.finish()[0]

    def globber(self, inp: PfsInput) -> tuple[str, list[Match]]:
        root = self.roots.get(inp.repo, EMPTY_TREE)
        return f"{inp.repo}-commit", [Match(p, e, g) for p, e, g in self.trees.glob_groups(root, inp.glob)]

    def datums(self, spec: dict[str, object]) -> list[Datum]:
        return enumerate_datums(Input.model_validate(spec), self.globber)


@pytest.fixture
def repos(tmp_path: Path) -> Repos:
    r = Repos(tmp_path)
    r.put("images", {"/a.png": b"a", "/b.png": b"b", "/sub/c.png": b"c", "/sub/deep/d.png": b"d"})
    r.put("model", {"/model.pkl": b"m", "/meta.json": b"{}"})
    return r


def paths(datums: list[Datum]) -> list[tuple[str, ...]]:
    return [tuple(i.path for i in d.inputs) for d in datums]


@pytest.mark.parametrize(("glob", "expected"), [
    ("/", [("/",)]),
    ("/*", [("/a.png",), ("/b.png",), ("/sub",)]),
    ("/*/*", [("/sub/c.png",), ("/sub/deep",)]),
    ("/**", [("/a.png",), ("/b.png",), ("/sub",), ("/sub/c.png",), ("/sub/deep",), ("/sub/deep/d.png",)]),
    ("/**.png", [("/a.png",), ("/b.png",), ("/sub/c.png",), ("/sub/deep/d.png",)]),
    ("/[a]*", [("/a.png",)]),
    ("/?.png", [("/a.png",), ("/b.png",)]),
])
def test_glob_forms(repos: Repos, glob: str, expected: list[tuple[str, ...]]) -> None:
    assert paths(repos.datums({"pfs": {"repo": "images", "glob": glob}})) == expected


def test_cross(repos: Repos) -> None:
    ds = repos.datums({"cross": [{"pfs": {"repo": "images", "glob": "/*.png"}},
                                 {"pfs": {"repo": "model", "glob": "/"}}]})
    assert paths(ds) == [("/a.png", "/"), ("/b.png", "/")]
    assert [i.name for i in ds[0].inputs] == ["images", "model"]


def test_union(repos: Repos) -> None:
    ds = repos.datums({"union": [{"pfs": {"repo": "images", "glob": "/*.png"}},
                                 {"pfs": {"repo": "model", "glob": "/*"}}]})
    assert paths(ds) == [("/a.png",), ("/b.png",), ("/meta.json",), ("/model.pkl",)]


def test_join_inner_and_outer(tmp_path: Path) -> None:
    r = Repos(tmp_path)
    r.put("purchases", {"/1.txt": b"p1", "/2.txt": b"p2", "/4.txt": b"p4"})
    r.put("returns", {"/1.txt": b"r1", "/3.txt": b"r3", "/4.txt": b"r4"})
    inner = {"join": [{"pfs": {"repo": "purchases", "glob": "/(*).txt", "join_on": "$1"}},
                      {"pfs": {"repo": "returns", "glob": "/(*).txt", "join_on": "$1"}}]}
    assert paths(r.datums(inner)) == [("/1.txt", "/1.txt"), ("/4.txt", "/4.txt")]
    outer = {"join": [{"pfs": {"repo": "purchases", "glob": "/(*).txt", "join_on": "$1", "outer_join": True}},
                      {"pfs": {"repo": "returns", "glob": "/(*).txt", "join_on": "$1"}}]}
    assert paths(r.datums(outer)) == [("/1.txt", "/1.txt"), ("/2.txt",), ("/4.txt", "/4.txt")]


def test_group(tmp_path: Path) -> None:
    r = Repos(tmp_path)
    r.put("sales", {"/store1-jan.csv": b"1", "/store2-jan.csv": b"2", "/store1-feb.csv": b"3"})
    r.put("stores", {"/store1.json": b"s1", "/store2.json": b"s2"})
    ds = r.datums({"group": [{"pfs": {"repo": "sales", "glob": "/(store*)-*.csv", "group_by": "$1"}},
                             {"pfs": {"repo": "stores", "glob": "/(store*).json", "group_by": "$1"}}]})
    assert paths(ds) == [("/store1-feb.csv", "/store1-jan.csv", "/store1.json"), ("/store2-jan.csv", "/store2.json")]


def test_join_needs_join_on(repos: Repos) -> None:
    with pytest.raises(InvalidArgument, match="join_on"):
        repos.datums({"join": [{"pfs": {"repo": "images", "glob": "/*"}}, {"pfs": {"repo": "model", "glob": "/*"}}]})
    with pytest.raises(InvalidArgument, match=r"\$2"):
        repos.datums({"join": [{"pfs": {"repo": "images", "glob": "/(*)", "join_on": "$2"}},
                               {"pfs": {"repo": "model", "glob": "/(*)", "join_on": "$1"}}]})


def test_datum_hash_tracks_content_and_salt(repos: Repos) -> None:
    spec = {"pfs": {"repo": "images", "glob": "/*"}}
    before = {d.id: datum_hash(d, "salt") for d in repos.datums(spec)}
    repos.put("images", {"/b.png": b"changed"})
    after = {d.id: datum_hash(d, "salt") for d in repos.datums(spec)}
    changed = {i for i in before if before[i] != after[i]}
    assert len(changed) == 1  # only /b.png's datum
    assert {d.id: datum_hash(d, "other") for d in repos.datums(spec)} != after
