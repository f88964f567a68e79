"""The algorithms pages, a pipeline's spec diff, Reprocess and a branch's head history, in-process (no browser),
with auth on: each page shows what the API's own routes return, and a post is refused exactly as the API
refuses it."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape

import pytest
from starlette.testclient import TestClient

from tusk.config import Settings
from tusk.ids import short_id
from tusk.pipelines.records import JobInfo
from tusk.root import create_server_app
from tusk.sdk import Client
from tusk.services import Services

NORMALIZE = """
from tusk.errors import InputError

def apply(words):
    if not isinstance(words, list):
        raise InputError("give a list of words")
    return {"words": [w.strip().lower() for w in words], "version": "%s"}
"""
COPY = {"pipeline": {"name": "copy"}, "input": {"pfs": {"repo": "data", "glob": "/*"}},
        "transform": {"cmd": ["sh", "-c", "cp /pfs/data/* /pfs/out/"]}}


@dataclass
class Site:
    root: Client
    pages: dict[str, TestClient]  # signed in: root (owner of all), rita (a reader of the repos), bob (no role)
    token: dict[str, str]


def _sign_in(t: TestClient, token: str) -> None:
    t.get("/ui/login")
    r = t.post("/ui/login", data={"token": token, "csrf": t.cookies["tusk_csrf"], "next": "/"},
               follow_redirects=False)
    assert r.status_code == 303, r.text


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("pages")
    settings = Settings.for_home(tmp / "home", TUSK_RUNTIME="local", TUSK_USER="root")
    with Client(settings=settings) as c:
        _, root = c.activate_auth("root")
        tokens = {"root": root, "rita": c.create_token("rita", "a reader")[1], "bob": c.create_token("bob", "")[1]}
        for v in ("1.0.0", "1.1.0"):
            d = tmp / v / "normalize"
            d.mkdir(parents=True)
            (d / "algo.py").write_text(NORMALIZE % v)
            (d / "algorithm.yaml").write_text("entrypoint: algo.py:apply\ndescription: lower-cased words\n")
            c.publish_algorithm(d, "root/normalize", v)
        crash = tmp / "crash"
        crash.mkdir()
        (crash / "algo.py").write_text("def apply(x):\n    raise KeyError('boom')\n")
        (crash / "algorithm.yaml").write_text("entrypoint: algo.py:apply\n")
        c.publish_algorithm(crash, "root/crash", "1.0.0")
        for algo in ("normalize", "crash"):
            c.set_role(f"algorithm/root/{algo}", "rita", "reader")
        c.create_repo("data")
        with c.modify("data@master") as m:
            for i in range(3):
                m.put_bytes(f"/f{i}.txt", b"x")
        c.create_pipeline(COPY)
        c.edit_pipeline("copy", COPY | {"transform": {"cmd": ["sh", "-c", "cp -r /pfs/data/. /pfs/out/"]}})
        first = c.inspect_commit("data@master").id
        c.put_file("data@master:/f3.txt", b"y", description="a fourth file")
        c.create_branch("data@production", head=first)
        for name in ("data", "copy"):
            c.set_role(name, "rita", "reader")
        app = create_server_app(Services.open(settings), auth=True, poll=0.1, close_services=True)
        with TestClient(app) as t_root, TestClient(app) as t_rita, TestClient(app) as t_bob:
            pages = {"root": t_root, "rita": t_rita, "bob": t_bob}
            for user, t in pages.items():
                _sign_in(t, tokens[user])
            yield Site(c, pages, tokens)


def _csrf(t: TestClient) -> str:
    return t.cookies["tusk_csrf"]


def test_the_catalogue_lists_versions_commits_and_who_may_call(site: Site) -> None:
    html = site.pages["root"].get("/ui/algorithms").text
    versions = site.root.list_algorithms("root/normalize")
    assert '<a href="/ui/algorithms/root/normalize">root/normalize</a>' in html
    assert all(f"{v.version} <code class=\"note\">{short_id(v.commit)}</code>" in html for v in versions)
    assert "function algo.py:apply" in html and "lower-cased words" in html
    assert "rita (reader), cluster admins" in html
    code = site.pages["root"].get("/ui/algorithms/root/normalize").text.split('aria-label="Code of 1.0.0', 1)[0]
    code_page = site.pages["root"].get(code.rsplit('<a href="', 1)[1].split('"', 1)[0])
    assert code_page.status_code == 200 and "algo.py" in code_page.text and "algorithm.yaml" in code_page.text
    assert 'href="/ui/algorithms" aria-current="page"' in html  # in the nav bar
    assert "root/normalize" in site.pages["rita"].get("/ui/algorithms").text
    assert "root/normalize" not in site.pages["bob"].get("/ui/algorithms").text  # what the API lists for bob


def test_a_call_from_the_page_answers_as_v1_algo_does(site: Site) -> None:
    t = site.pages["rita"]  # a reader of the algorithm may call it
    page = t.get("/ui/algorithms/root/normalize").text
    assert 'action="/ui/algorithms/root/normalize/call"' in page and '<option value="1.0.0">' in page
    r = t.post("/ui/algorithms/root/normalize/call",
               data={"csrf": _csrf(t), "version": "1.0.0", "kind": "json", "input": '[" Hello", "WORLD "]'})
    assert r.status_code == 200, r.text
    answer = r.text.split('data-testid="algo-answer"', 1)[1]
    assert "&#34;hello&#34;" in answer and "&#34;1.0.0&#34;" in answer and "Output of root/normalize/1.0.0" in answer
    r = t.post("/ui/algorithms/root/normalize/call",  # text: the input is a string, which this one refuses
               data={"csrf": _csrf(t), "version": "latest", "kind": "text", "input": "hello"})
    assert r.status_code == 400 and "InputError" in r.text and "give a list of words" in r.text
    assert 'value="text" checked' in r.text and ">hello</textarea>" in r.text  # the form keeps what was asked
    r = t.post("/ui/algorithms/root/normalize/call", data={"csrf": _csrf(t), "version": "1", "input": "{oops"})
    assert r.status_code == 400 and "InputError" in r.text


def test_an_algorithm_s_stack_trace_is_for_its_writers_only(site: Site) -> None:
    for user, sees in (("root", True), ("rita", False)):
        t = site.pages[user]
        r = t.post("/ui/algorithms/root/crash/call", data={"csrf": _csrf(t), "version": "1.0.0", "input": "1"})
        assert r.status_code == 500 and "AlgorithmError" in r.text, r.text
        assert ('aria-label="Stack trace of the algorithm"' in r.text) is sees, r.text.split("<main", 1)[1][:600]


def test_without_a_role_on_the_algorithm_there_is_no_form_and_a_forged_call_is_refused(site: Site) -> None:
    t = site.pages["bob"]
    r = t.get("/ui/algorithms/root/normalize")
    assert r.status_code == 404 and "<form method=\"post\" action=\"/ui/algorithms" not in r.text
    r = t.post("/ui/algorithms/root/normalize/call", data={"csrf": _csrf(t), "version": "1.0.0", "input": "[]"})
    assert r.status_code == 403 and "bob is not a reader of algorithm/root/normalize" in r.text
    r = site.pages["rita"].post("/ui/algorithms/root/normalize/call", data={"version": "1.0.0", "input": "[]"})
    assert r.status_code == 403 and "CSRF" in r.text  # no token: refused before anything runs


def test_the_spec_diff_between_two_versions(site: Site) -> None:
    t = site.pages["rita"]
    page = t.get("/ui/pipelines/copy").text
    assert 'href="/ui/pipelines/copy/diff?old=1&amp;new=2"' in page
    html = t.get("/ui/pipelines/copy/diff?old=1&new=2").text
    diff = unescape(html.split('data-testid="spec-diff"', 1)[1].split("</pre>", 1)[0])
    assert re.search(r'<del>-\s+"cp /pfs/data/\* /pfs/out/"</del>', diff), diff
    assert re.search(r'<ins>\+\s+"cp -r /pfs/data/. /pfs/out/"</ins>', diff), diff
    assert "1 line added, 1 removed" in html
    assert t.get("/ui/pipelines/copy/diff").text.count("<ins>") == 1  # default: the current one and the one before
    assert "are the same" in t.get("/ui/pipelines/copy/diff?old=2&new=2").text
    assert t.get("/ui/pipelines/copy/diff?old=7&new=2").status_code == 404
    assert t.get("/ui/pipelines/copy/diff?old=x").status_code == 400


def _newest_job(c: Client, before: str) -> JobInfo:
    deadline = time.monotonic() + 60
    while True:
        job = c.list_jobs("copy")[0]
        if job.id != before and job.state in ("success", "failure", "killed"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.2)


def test_reprocess_processes_every_datum_again_where_rerun_skips_them(site: Site) -> None:
    t = site.pages["root"]
    assert "Reprocess</button>" in t.get("/ui/pipelines/copy").text
    before = site.root.list_jobs("copy")[0].id
    r = t.post("/ui/pipelines/copy/rerun", data={"csrf": _csrf(t)}, follow_redirects=False)
    assert r.status_code == 303
    rerun = _newest_job(site.root, before)
    assert (rerun.datums_processed, rerun.datums_skipped) == (0, 4)
    r = t.post("/ui/pipelines/copy/reprocess", data={"csrf": _csrf(t)}, follow_redirects=False)
    assert r.status_code == 303 and "reprocess" in r.headers["location"]
    again = _newest_job(site.root, rerun.id)
    assert (again.datums_processed, again.datums_skipped, again.state) == (4, 0, "success")
    assert "4 processed, 0 skipped" in t.get(f"/ui/jobs/{again.id}").text
    reader = site.pages["rita"]
    assert "Reprocess" not in reader.get("/ui/pipelines/copy").text
    r = reader.post("/ui/pipelines/copy/reprocess", data={"csrf": _csrf(reader)})
    assert r.status_code == 403 and "owner" in r.text
    assert site.root.list_jobs("copy")[0].id == again.id


def test_a_branch_links_to_the_history_of_its_head(site: Site) -> None:
    t = site.pages["rita"]
    assert 'href="/ui/repos/data/branches/production">Moves of production</a>' in t.get("/ui/repos/data").text
    html = t.get("/ui/repos/data/branches/production").text
    moves = site.root.model_history("data@production")
    rows = html.split('data-testid="branch-moves"', 1)[1].split("</tbody>", 1)[0].count("<tr><td>")
    assert rows == len(moves) == 1 and moves[0].reason == "branch"
    assert f'<a href="/ui/repos/data/browse/{moves[0].to_commit}/">' in html and "<td>root</td>" in html
    master = site.root.model_history("data@master")
    html = t.get("/ui/repos/data/branches/master").text
    assert [m.reason for m in master][:2] == ["commit", "commit"] and len(master) >= 2
    assert html.index(short_id(master[0].to_commit or "")) < html.index(short_id(master[1].to_commit or ""))
    assert t.get("/ui/repos/data/branches/nope").status_code == 404
    assert site.pages["bob"].get("/ui/repos/data/branches/master").status_code == 404  # no oracle for bob
