"""The dashboard's pages of long lists, in-process (no browser): page 2 shows the rows after page 1's, and the
pager links to the neighbours."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tusk.config import Settings
from tusk.ids import short_id
from tusk.root import create_server_app
from tusk.sdk import Client
from tusk.services import Services
from tusk.ui._web import PAGE


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[TestClient, Client]]:
    settings = Settings.for_home(tmp_path / "home", TUSK_RUNTIME="local", TUSK_USER="tester")
    with Client(settings=settings) as c:
        app = create_server_app(Services.open(settings), serving=False, scheduler=False, close_services=True)
        with TestClient(app) as t:
            yield t, c


def _commits_shown(html: str) -> list[str]:
    return re.findall(r'<tr><td><a href="/ui/repos/history/browse/([0-9a-f]{32})/">', html)


def test_page_two_of_a_history_shows_the_next_commits(site: tuple[TestClient, Client]) -> None:
    t, c = site
    c.create_repo("history")
    for i in range(PAGE * 2 + 3):
        c.put_file("history@master:/n.txt", str(i).encode(), description=f"commit {i}")
    newest_first = [x.id for x in c.list_commits("history@master")]
    for extra in ("", "&branch=master"):
        one, two, three = (t.get(f"/ui/repos/history?page={n}{extra}") for n in (1, 2, 3))
        assert _commits_shown(one.text) == newest_first[:PAGE]
        assert _commits_shown(two.text) == newest_first[PAGE:PAGE * 2]
        assert _commits_shown(three.text) == newest_first[PAGE * 2:]
        assert 'rel="prev"' in two.text and 'rel="next"' in two.text
        assert 'rel="next"' not in three.text and f"?page=2{extra.replace('&', '&amp;')}\" rel=\"prev\"" in three.text
        assert f"commit {PAGE * 2 - 1}" not in two.text and f"commit {PAGE + 2}" in two.text
    assert _commits_shown(t.get("/ui/repos/history?page=9").text) == []


def test_page_two_of_a_directory_and_of_a_job_s_datums(site: tuple[TestClient, Client]) -> None:
    t, c = site
    c.create_repo("data")
    with c.modify("data@master") as m:
        for i in range(PAGE * 4 + 5):
            m.put_bytes(f"/dir/f{i:03d}.txt", b"x")
    two = t.get("/ui/repos/data/browse/master/dir?page=2").text
    shown = re.findall(r'href="/ui/repos/data/browse/master/dir/(f\d+\.txt)"', two)
    assert shown == [f"f{i:03d}.txt" for i in range(PAGE * 4, PAGE * 4 + 5)]
    c.create_pipeline({"pipeline": {"name": "copy"}, "input": {"pfs": {"repo": "data", "glob": "/dir/*"}},
                       "transform": {"cmd": ["sh", "-c", 'case "$(basename "$data")" in f007.txt) exit 1;; esac']}})
    job = c.list_jobs("copy")[0]
    datums = c.list_datums(job.id, failed_first=True)
    assert datums[0].state == "failed" and datums[0].inputs[0]["path"] == "/dir/f007.txt"
    first = t.get(f"/ui/jobs/{job.id}").text
    assert 'data-testid="failed-datum"' in first and short_id(datums[0].id) in first
    second = t.get(f"/ui/jobs/{job.id}?page=2").text
    listed = re.findall(rf'<tr><td><a href="/ui/jobs/{job.id}/datums/([0-9a-f]+)">', second)
    assert listed == [d.id for d in datums[PAGE * 2:PAGE * 4]]
