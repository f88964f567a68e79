"""The UCI files shipped with the census example are the originals (when the workspace copy is here to compare)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "examples" / "census-income" / "uci"
WORKSPACE = ROOT.parent / "shared" / "data" / "census-income"


@pytest.mark.parametrize("name", ["adult.data", "adult.test"])
def test_shipped_census_files_are_the_uci_originals(name: str) -> None:
    shipped = gzip.decompress((SHIPPED / f"{name}.gz").read_bytes())
    assert shipped.count(b"\n") > 16000
    if not (WORKSPACE / name).is_file():
        pytest.skip("no workspace copy to compare with on this machine")
    assert shipped == (WORKSPACE / name).read_bytes()
