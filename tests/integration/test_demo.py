from __future__ import annotations

from pathlib import Path

from tusk.demo import find_census_data, run_demo


def test_demo_runs_on_census_data(tmp_path: Path) -> None:
    lines: list[str] = []
    data = find_census_data(Path(__file__).resolve())
    client = run_demo(lines.append, data, tmp_path / "home")
    try:
        text = "\n".join(lines)
        assert "no problems" in text
        commits = client.list_commits("census@master")
        assert len(commits) == 2
        old = client.get_file("census@master^:/raw/adult.data").count(b"\n")
        new = client.get_file("census@master:/raw/adult.data").count(b"\n")
        assert new == old + 1000
        if data is not None:
            assert old == (data / "adult.data").read_bytes().count(b"\n")
    finally:
        client.close()
