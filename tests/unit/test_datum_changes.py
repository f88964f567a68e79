"""``tusk.pipelines.datum_changes`` against listing every datum before and after: for random inputs of every kind
(pfs, cross, union, join, group, nested) and random changes to their repos, the changed, added and gone datums
are exactly those that differ between the two full listings; and a cross of a large input and a small one reads
only the small one in full when the large one changed."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from tusk.ids import Digest
from tusk.pipelines.datum_changes import Changes, LeafChanges, datum_changes
from tusk.pipelines.datums import Datum, Match, enumerate_datums, pfs_datum
from tusk.pipelines.spec import Input, PfsInput
from tusk.versioning.trees import Entry

Files = dict[str, str]  # path -> content digest


def _matches(files: Files, leaf: PfsInput) -> list[Match]:
    """Top-level files whose name matches the leaf's glob, ``/(x*)`` style: one capture group."""
    rx = re.compile("^" + re.escape(leaf.glob).replace(r"\*", "[^/]*").replace(r"\(", "(").replace(r"\)", ")")
                    + "$")
    out = []
    for path in sorted(files):
        m = rx.match(path)
        if m is not None:
            out.append(Match(path, Entry(path.rsplit("/", 1)[1], "file", 1, Digest(files[path])), m.groups()))
    return out


class Repos:
    def __init__(self, repos: dict[str, Files], tag: str) -> None:
        self.repos, self.tag = repos, tag
        self.listed: Counter[str] = Counter()  # full listings asked for, by input name

    def globber(self, leaf: PfsInput) -> tuple[str, list[Match]]:
        self.listed[leaf.input_name] += 1
        return f"{leaf.repo}-{self.tag}", _matches(self.repos[leaf.repo], leaf)


def _leaf_changes(before: Repos, after: Repos) -> tuple[Counter[str], LeafChanges]:
    asked: Counter[str] = Counter()

    def leaf(pfs: PfsInput) -> Changes:
        asked[pfs.input_name] += 1
        old = {m.path: m for m in _matches(before.repos[pfs.repo], pfs)}
        new = {m.path: m for m in _matches(after.repos[pfs.repo], pfs)}
        out = Changes()
        for path, m in new.items():
            if path not in old or old[path].entry.digest != m.entry.digest:
                out.present.append(d := pfs_datum(pfs, f"{pfs.repo}-after", m))
                if path not in old:
                    out.added.add(d.id)
        out.gone = [pfs_datum(pfs, f"{pfs.repo}-before", m) for path, m in old.items() if path not in new]
        return out

    return asked, leaf


def _key(d: Datum) -> tuple[str, tuple[tuple[str, str], ...]]:
    return d.id, tuple((i.kind, i.digest) for i in d.inputs)


def _expected(inp: Input, before: Repos, after: Repos) -> tuple[set[object], set[str], set[str]]:
    old = {d.id: _key(d) for d in enumerate_datums(inp, before.globber)}
    new = {d.id: _key(d) for d in enumerate_datums(inp, after.globber)}
    return ({k for i, k in new.items() if old.get(i) != k}, set(new) - set(old), set(old) - set(new))


def _random_input(rng: random.Random, names: list[str], depth: int = 0) -> Input:
    if depth == 2 or len(names) == 1 or rng.random() < 0.3:
        name = names.pop()
        return Input(pfs=PfsInput(repo=name[:-1], name=name, glob=rng.choice(["/*", "/(f*)", "/(g*)"])))
    kind = rng.choice(["cross", "union", "join", "group"])
    if kind in ("join", "group"):  # (their children are pfs inputs with keys)
        children = []
        for _ in range(min(len(names), rng.randint(2, 3))):
            name = names.pop()
            key = {"join_on": "$1", "outer_join": rng.random() < 0.4} if kind == "join" else {"group_by": "$1"}
            children.append(Input(pfs=PfsInput.model_validate(
                {"repo": name[:-1], "name": name, "glob": rng.choice(["/(f*)", "/(*)"]), **key})))
        return Input.model_validate({kind: children}) if len(children) > 1 else children[0]
    children: list[Input] = []
    for _ in range(rng.randint(2, 3)):
        if names:
            children.append(_random_input(rng, names, depth + 1))
    return Input.model_validate({kind: children}) if len(children) > 1 else children[0]


def _random_files(rng: random.Random) -> Files:
    return {f"/{rng.choice('fgh')}{i}": f"{rng.randrange(3):064x}" for i in range(rng.randint(0, 7))}


def _changed(rng: random.Random, files: Files) -> Files:
    out = dict(files)
    for path in list(out):
        r = rng.random()
        if r < 0.15:
            del out[path]
        elif r < 0.3:
            out[path] = f"{rng.randrange(3, 6):064x}"
    for i in range(rng.choice([0, 0, 1, 2])):
        out[f"/{rng.choice('fgh')}{10 + i}"] = f"{rng.randrange(3):064x}"
    return out


@pytest.mark.parametrize("seed", range(300))
def test_the_changes_are_what_two_full_listings_differ_by(seed: int) -> None:
    rng = random.Random(seed)
    inp = _random_input(rng, [f"{r}1" for r in "abcdefghijkl"][::-1])
    repos = {leaf.repo for leaf in inp.leaves() if isinstance(leaf, PfsInput)}
    old = {r: _random_files(rng) for r in repos}
    new = {r: _changed(rng, old[r]) if rng.random() < 0.6 else dict(old[r]) for r in repos}
    before, after = Repos(old, "before"), Repos(new, "after")
    asked, leaf = _leaf_changes(before, after)
    got = datum_changes(inp, leaf, before.globber, after.globber)
    changed, added, gone = _expected(inp, Repos(old, "before"), Repos(new, "after"))
    assert {_key(d) for d in got.present} == changed
    assert len(got.present) == len(changed)  # (each once)
    assert got.added == added
    assert {d.id for d in got.gone} == gone and len(got.gone) == len(gone)
    assert all(n == 1 for n in asked.values())  # a leaf's changes are asked once


def test_a_cross_reads_the_large_side_only_where_it_changed() -> None:
    data = {f"/f{i:05}": f"{1:064x}" for i in range(2000)}
    model = {"/m1": f"{1:064x}", "/m2": f"{2:064x}"}
    inp = Input.model_validate({"cross": [{"pfs": {"repo": "data", "glob": "/*"}},
                                          {"pfs": {"repo": "model", "glob": "/*"}}]})
    before = Repos({"data": data, "model": model}, "before")
    after = Repos({"data": data | {"/f00007": f"{9:064x}", "/new": f"{1:064x}"}, "model": model}, "after")
    _, leaf = _leaf_changes(before, after)
    got = datum_changes(inp, leaf, before.globber, after.globber)
    assert len(got.present) == 4 and len(got.added) == 2 and not got.gone
    assert before.listed == Counter() and after.listed == Counter({"model": 1})  # data was never listed in full
    # the model changed too: now the data side is listed (every datum with the new model changed)
    after = Repos({"data": data, "model": model | {"/m2": f"{3:064x}"}}, "after")
    _, leaf = _leaf_changes(before, after)
    got = datum_changes(inp, leaf, before.globber, after.globber)
    assert len(got.present) == 2000 and not got.added and not got.gone
    assert after.listed == Counter({"data": 1})
