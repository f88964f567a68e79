from __future__ import annotations

import pytest

from tusk.errors import InvalidArgument, InvalidPath, InvalidRef
from tusk.ids import (
    ID_PREFIX_MIN,
    SHORT_ID,
    is_id_prefix,
    normalize_path,
    short_id,
    validate_branch_name,
    validate_repo_name,
)
from tusk.versioning.refs import parse_file_ref, parse_ref


@pytest.mark.parametrize(("raw", "norm"), [("a/b", "/a/b"), ("/a//b/", "/a/b"), ("./a/./b", "/a/b"), ("", "/"),
                                            ("/", "/")])
def test_normalize_path(raw: str, norm: str) -> None:
    assert normalize_path(raw) == norm


@pytest.mark.parametrize("bad", ["../x", "/a/../../b", "a/..", "..\\x"])
def test_paths_escaping_the_repo_are_refused(bad: str) -> None:
    with pytest.raises(InvalidPath, match="escape"):
        normalize_path(bad)


def test_parse_refs_with_ancestry() -> None:
    assert parse_ref("images") == ("images", "master", 0)
    assert parse_ref("images@dev") == ("images", "dev", 0)
    assert parse_ref("images@master^") == ("images", "master", 1)
    assert parse_ref("images@master^2") == ("images", "master", 2)
    assert parse_ref("images@master~3") == ("images", "master", 3)
    assert parse_ref("images@master^^") == ("images", "master", 2)
    ref = parse_file_ref("images@master^2:/a/b.png")
    assert (ref.repo, ref.ref, ref.ancestry, ref.path) == ("images", "master", 2, "/a/b.png")


@pytest.mark.parametrize("bad", ["@master", "im ages@master", "images@", "images@^2", "images@ma ster",
                                 "images@master:/../etc"])
def test_bad_refs_are_rejected(bad: str) -> None:
    with pytest.raises((InvalidRef, InvalidPath)):
        parse_file_ref(bad)


def test_names() -> None:
    assert validate_repo_name("census_income-2") == "census_income-2"
    for bad in ["", "-x", "a/b", "x" * 64, "a b"]:
        with pytest.raises(InvalidArgument):
            validate_repo_name(bad)
    with pytest.raises(InvalidArgument, match="commit id"):
        validate_branch_name("0123456789abcdef0123456789abcdef")


def test_short_ids() -> None:
    full = "0123456789abcdef0123456789abcdef"
    assert short_id(full) == full[:SHORT_ID] and is_id_prefix(short_id(full))  # what tables print is taken back
    assert SHORT_ID >= ID_PREFIX_MIN
    assert short_id("master") == "master" and short_id("-") == "-"  # only full ids are shortened
    assert is_id_prefix("abc123") and is_id_prefix(full)
    for no in ["abc12", "ABC123", "abc12g", full + "0", "master"]:  # too short, not lowercase hex, too long
        assert not is_id_prefix(no)
    assert parse_ref("images@3f2a9c^2") == ("images", "3f2a9c", 2)
    ref = parse_file_ref("images@3f2a9c:/a")
    assert (ref.ref, ref.path) == ("3f2a9c", "/a")
