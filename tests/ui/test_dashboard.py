"""The dashboard in a real browser (Debian chromium through Playwright) against a real server with auth on:
the story a user walks (data, a pipeline, a failed datum, models, promote), what a reader may not do, axe-core
accessibility checks on every page, no outside URLs, and screenshots into docs/ui/."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ui.story import build
from tusk.api import create_app
from tusk.config import Settings
from tusk.ids import short_id
from tusk.sdk import Client
from tusk.services import Services
from tusk.serving.server import serve_in_thread

CHROMIUM = Path("/usr/bin/chromium")
HERE = Path(__file__).parent
SHOTS = HERE.parent.parent / "docs" / "ui"
AXE = HERE / "axe.min.js"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium")


@dataclass
class Site:
    url: str
    tokens: dict[str, str]
    ids: dict[str, str]
    root: Client
    store: Settings


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    home = tmp_path_factory.mktemp("ui") / "server"
    settings = Settings.for_home(home, TUSK_RUNTIME="local", TUSK_USER="root")
    with Client(settings=settings) as operator:  # an embedded client on the server's store
        _, root_token = operator.activate_auth("root")
        ids = build(operator)
        _, reader = operator.create_token("rita", "a reader")
        for repo in ("census", "wc", "broken", "models", "scorer", "scorer-requests", "deployment/scorer"):
            operator.set_role(repo, "rita", "reader")
        app = create_app(Services.open(settings), auth=True, poll=0.2, close_services=True)
        with serve_in_thread(app) as url:
            yield Site(url, {"root": root_token, "rita": reader}, ids, operator, settings)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


def _signed_in(browser: Any, site: Site, user: str) -> Any:
    """A page in a fresh context, signed in through the login form (axe is injected, so CSP is bypassed in the
    test's own scripts only: the pages' own CSP headers are checked separately)."""
    context = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{site.url}/")
    assert "/ui/login" in page.url  # no session: sign in first
    page.get_by_label("API token").fill(site.tokens[user])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{site.url}/")
    return page


def _axe(page: Any) -> None:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]
           if v["impact"] in ("serious", "critical")]
    assert not bad, f"{page.url}: {bad}"


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _visit(page: Any, site: Site, path: str, name: str) -> None:
    response = page.goto(site.url + path)
    assert response is not None and response.status == 200, (path, response and response.status)
    _axe(page)
    _shot(page, name)


def test_the_story_through_the_pages(browser: Any, site: Site) -> None:
    page = _signed_in(browser, site, "root")
    from playwright.sync_api import expect

    # overview: the graph, each pipeline's last job state, links per node
    expect(page.get_by_test_id("state-wc")).to_have_text("success")
    expect(page.get_by_test_id("state-broken")).to_have_text("failure")
    assert page.locator("svg.dag a[href='/ui/pipelines/wc']").count() == 1
    assert page.locator("svg.dag a[href='/ui/repos/census']").count() == 1
    _axe(page)
    _shot(page, "overview")
    for _ in range(40):  # keyboard only: Tab to the graph's wc node, Enter opens the pipeline
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.getAttribute('href')") == "/ui/pipelines/wc":
            break
    page.keyboard.press("Enter")
    page.wait_for_url(f"{site.url}/ui/pipelines/wc")

    # data: repos, a repo with branches and commits, the file browser, previews, a diff
    _visit(page, site, "/ui/repos", "data-repos")
    _visit(page, site, "/ui/repos/census", "data-repo")
    expect(page.get_by_role("cell", name="first sample")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile(r"^staging"))).to_contain_text("master")  # its trigger
    _visit(page, site, "/ui/repos/census/browse/master/", "data-browse")
    page.get_by_role("link", name="adult.csv", exact=True).click()
    table = page.get_by_test_id("preview-table")
    expect(table.locator("th").first).to_have_text("age")
    expect(table.locator("tbody tr")).to_have_count(3)
    _axe(page)
    _shot(page, "data-preview-csv")
    _visit(page, site, "/ui/repos/census/browse/master/notes.json", "data-preview-json")
    expect(page.locator("pre.code")).to_contain_text('"source": "UCI"')
    with page.expect_download() as download:
        page.get_by_role("link", name="Download", exact=True).click()
    assert Path(download.value.path()).read_bytes() == b'{"source": "UCI", "rows": 3}'
    _visit(page, site, "/ui/repos/census/diff?new=master", "data-diff")
    expect(page.get_by_role("cell", name="/notes.json")).to_be_visible()

    # pipelines: spec and jobs; the failed job shows its datum's error first; the datum's log
    _visit(page, site, "/ui/pipelines", "pipelines")
    _visit(page, site, "/ui/pipelines/wc", "pipeline")
    expect(page.get_by_role("button", name="Rerun")).to_be_visible()
    job = site.root.list_jobs("broken")[0]
    _visit(page, site, f"/ui/jobs/{job.id}", "job-failed")
    failure = page.get_by_test_id("failed-datum")
    expect(failure).to_contain_text("column income is missing")
    first = page.locator("main section, main dl").first
    assert first.get_attribute("data-testid") == "failed-datum"  # the error is the top of the page
    failure.get_by_role("link").click()
    expect(page.get_by_test_id("datum-log")).to_contain_text("reading the census")
    _axe(page)
    _shot(page, "datum-log")

    # models: metrics side by side, a chart per metric, promote (the same check as the API), its history
    _visit(page, site, "/ui/models", "models")
    _visit(page, site, "/ui/models/models", "model")
    metrics = page.get_by_test_id("metrics-table")
    expect(metrics).to_contain_text("0.81")
    expect(metrics).to_contain_text("0.86")
    assert page.locator("svg.chart").count() == 2  # r2 and rmse
    v1, v2 = site.ids["v1"], site.ids["v2"]
    page.locator(f"#to-{v1}").fill("production")
    page.get_by_role("button", name=f"Promote {short_id(v1)}").click()  # no reason yet: the browser holds it
    assert page.get_by_label(f"Why promote {short_id(v1)}").evaluate("e => e.validity.valueMissing")
    assert "production" not in [b.name for b in site.root.list_branches("models")]
    page.get_by_label(f"Why promote {short_id(v1)}").fill("first model <b>to</b> pass review")
    page.get_by_role("button", name=f"Promote {short_id(v1)}").click()
    expect(page.locator(".notice")).to_have_text("promoted")
    assert site.root.inspect_commit("models@production").id == v1
    expect(page.locator("#stage-production")).to_contain_text(short_id(v1))
    moves = site.root.model_history("models@production")
    assert (moves[0].actor, moves[0].reason, moves[0].note) == ("root", "promote", "first model <b>to</b> pass review")
    page.get_by_label(f"Why promote {short_id(v2)}").fill("retrained: r2 0.86")
    page.get_by_role("button", name=f"Promote {short_id(v2)}").click()
    expect(page.locator(".notice")).to_have_text("promoted")
    page.get_by_label("Why roll production back").fill("v2 drifts on the night batch")
    page.get_by_role("button", name="Roll production back").click()
    expect(page.locator(".notice")).to_have_text("rolled back")
    assert site.root.inspect_commit("models@production").id == v1
    history = page.locator("section[aria-labelledby='stage-production'] tbody tr")  # who, when, why: newest first
    expect(history).to_have_count(3)
    for row, (who, move, why) in enumerate([("root", "rollback", "v2 drifts on the night batch"),
                                             ("root", "promote", "retrained: r2 0.86")]):
        cells = history.nth(row).locator("td")  # When, Who, Move, Why, From, To
        expect(cells.nth(0)).not_to_be_empty()
        for i, text in ((1, who), (2, move), (3, why)):
            expect(cells.nth(i)).to_have_text(text)
    expect(history.nth(2).get_by_role("cell", name="first model <b>to</b> pass review")).to_be_visible()  # as text
    assert site.root.model_history("models@production")[0].note == "v2 drifts on the night batch"
    _axe(page)
    _shot(page, "model-promoted")
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    with httpx.Client(base_url=site.url, cookies=cookies, follow_redirects=False) as h:  # what the browser stops
        form = {"csrf": cookies["tusk_csrf"], "ref": f"models@{v2}", "to": "production"}
        for note, says in (("", "say why"), (" ", "say why"), ("x" * 1001, "1000 or fewer"),
                           ("two\nlines", "control character")):
            r = h.post("/ui/models/models/promote", data=form | {"note": note})
            assert r.status_code == 400 and says in r.text, (note[:10], r.status_code, r.text[:300])
        r = h.post("/ui/models/models/rollback", data={"csrf": cookies["tusk_csrf"], "ref": "models@production"})
        assert r.status_code == 400 and "say why" in r.text
    assert site.root.inspect_commit("models@production").id == v1  # none of them moved it
    _visit(page, site, f"/ui/models/models?manifest={v1}", "model-manifest")

    _visit(page, site, "/ui/deployments", "deployments")
    _visit(page, site, "/ui/lineage?ref=wc@master", "lineage")
    assert page.locator("svg.dag a").count() >= 2  # census → wc
    _visit(page, site, "/ui/login", "login")


def _infer(site: Site, n: int) -> None:
    """``n`` real inferences (two rows each) through the server, once the deployment serves."""
    infer = {"inputs": [{"name": "x", "shape": [2, 1], "datatype": "FP64", "data": [1.0, 2.0]}]}
    with httpx.Client(base_url=site.url, headers={"Authorization": f"Bearer {site.tokens['root']}"}) as h:
        deadline = time.monotonic() + 30
        while (r := h.post("/v2/models/scorer/infer", json=infer)).status_code != 200:
            assert time.monotonic() < deadline, r.text
            time.sleep(0.3)
        for _ in range(n - 1):
            assert h.post("/v2/models/scorer/infer", json=infer).status_code == 200


def test_the_deployment_page_shows_live_traffic_and_requests_and_rolls_out(browser: Any, site: Site) -> None:
    """The deployment page after real inferences: live rate and latency for the predictor and the commit that
    answered, drift p-values, the request-log records with their answers; then a rollout through its form."""
    from playwright.sync_api import expect

    page = _signed_in(browser, site, "root")

    _infer(site, 1)
    page.goto(f"{site.url}/ui/deployments/scorer")  # the first sample of the live panel's window
    _infer(site, 15)
    commit = site.root.inspect_commit("scorer@master").id
    row = page.get_by_test_id(f"traffic-main-{short_id(commit)}")
    expect(row.get_by_role("cell").nth(2)).to_have_text("16", timeout=15_000)  # the panel refreshes itself
    cells = row.get_by_role("cell").all_inner_texts()
    rate, p50 = cells[3], cells[5]
    assert rate.endswith("/s") and float(rate.removesuffix("/s")) > 0, cells
    assert p50.endswith(" ms") and float(p50.removesuffix(" ms")) > 0, cells
    expect(page.get_by_role("table", name="Latest drift-test p-value per feature")).to_contain_text("x")
    deadline = time.monotonic() + 15  # the request log commits every half second; the page reads it on load
    while page.get_by_role("table", name=re.compile("^Recent requests")).get_by_text("0.5").count() == 0:
        assert time.monotonic() < deadline, "no request-log record on the page"
        time.sleep(0.5)
        page.reload()
    _infer(site, 10)  # more traffic while the panel refreshes: its charts get a line over time
    expect(page.locator("#live svg.chart path.series").first).to_be_attached(timeout=15_000)
    recent = page.get_by_role("table", name=re.compile("^Recent requests"))
    expect(recent.get_by_role("link", name=f"scorer@{short_id(commit)}").first).to_have_attribute(
        "href", f"/ui/lineage?ref=scorer@{commit}")
    _axe(page)
    _shot(page, "deployment")
    lineage = recent.get_by_role("link", name=re.compile("^Lineage of the record")).first
    lineage.click()
    expect(page.get_by_role("main")).to_contain_text("scorer-requests")
    _axe(page)

    page.goto(f"{site.url}/ui/deployments/scorer")
    page.get_by_label("main", exact=True).fill("3")
    page.get_by_label("canary", exact=True).fill("1")
    page.get_by_role("button", name="Roll out").click()
    expect(page.get_by_text("weights rolled out")).to_be_visible()
    info = site.root.inspect_deployment("scorer")
    assert {p.name: p.weight for p in info.predictors} == {"main": 3, "canary": 1}
    assert site.root.deployment_history("scorer")[0].reason == "rollout"
    expect(page.get_by_test_id("weight-canary")).to_have_text("1.0")


def test_a_reader_sees_no_write_controls_and_forged_writes_are_refused(browser: Any, site: Site) -> None:
    from playwright.sync_api import expect

    page = _signed_in(browser, site, "rita")
    page.goto(f"{site.url}/ui/models/models")
    assert page.get_by_role("button", name=re.compile("Promote|Roll")).count() == 0
    page.goto(f"{site.url}/ui/pipelines/wc")
    assert page.get_by_role("button", name=re.compile("Rerun|Stop|Start")).count() == 0
    job = site.root.list_jobs("broken")[0]
    page.goto(f"{site.url}/ui/jobs/{job.id}")
    assert page.locator("main form").count() == 0  # no write control at all
    _shot(page, "reader-pipeline")
    page.goto(f"{site.url}/ui/deployments/scorer")
    expect(page.get_by_role("heading", name="Traffic")).to_be_visible()
    assert page.locator("main form").count() == 0 and page.get_by_role("button", name="Roll out").count() == 0

    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    v2 = site.ids["v2"]
    with httpx.Client(base_url=site.url, cookies=cookies, follow_redirects=False) as h:
        # a reader's own session, with its CSRF token: refused by the rollout and promote routes' own checks
        r = h.post("/ui/deployments/scorer/rollout", data={"csrf": cookies["tusk_csrf"], "weight-main": "0",
                                                           "weight-canary": "1"})
        assert r.status_code == 403 and "writer" in r.text, r.text
        r = h.post("/ui/models/models/promote", data={"csrf": cookies["tusk_csrf"], "ref": f"models@{v2}",
                                                        "to": "production", "note": "a reader's try"})
        assert r.status_code == 403 and "writer" in r.text, r.text
        r = h.post("/ui/models/models/rollback", data={"csrf": cookies["tusk_csrf"], "ref": "models@production",
                                                         "note": "a reader's try"})
        assert r.status_code == 403 and "writer" in r.text, r.text
        # no CSRF token, or another site's form: refused before anything runs
        assert h.post("/ui/models/models/promote", data={"ref": f"models@{v2}", "to": "x"}).status_code == 403
        r = h.post("/ui/models/models/promote", headers={"Origin": "https://evil.example"},
                   data={"csrf": cookies["tusk_csrf"], "ref": f"models@{v2}", "to": "x"})
        assert r.status_code == 403
        for path in ("/ui/pipelines/wc/rerun", "/ui/pipelines/wc/stop", f"/ui/jobs/{job.id}/stop"):
            r = h.post(path, data={"csrf": cookies["tusk_csrf"]})
            assert r.status_code == 403 and ("owner" in r.text or "writer" in r.text), (path, r.text)
        # the session cookie is no key to the API
        assert h.post("/api/v1/models/promote", json={"ref": f"models@{v2}", "to": "x"}).status_code == 401
    with httpx.Client(base_url=site.url, follow_redirects=False) as anon:
        assert anon.post("/api/v1/models/promote", json={"ref": f"models@{v2}", "to": "x"}).status_code == 401
        assert anon.post("/ui/models/models/promote", data={"ref": f"models@{v2}", "to": "x"}).status_code == 403
        r = anon.get("/ui/repos/census")
        assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")
        assert anon.get("/ui/overview/graph", headers={"HX-Request": "true"}).headers["hx-redirect"] == \
            "/ui/login?next=/"
    assert "x" not in [b.name for b in site.root.list_branches("models")]


def test_no_page_or_asset_refers_to_another_host(site: Site) -> None:
    job = site.root.list_jobs("broken")[0]
    pages = ["/", "/ui/overview/graph", "/ui/repos", "/ui/repos/census", "/ui/repos/census/browse/master/",
             "/ui/repos/census/browse/master/adult.csv", "/ui/repos/census/diff?new=master", "/ui/pipelines",
             "/ui/pipelines/wc", f"/ui/jobs/{job.id}", "/ui/models", "/ui/models/models", "/ui/deployments",
             "/ui/deployments/scorer", "/ui/deployments/scorer/live",
             "/ui/lineage?ref=wc@master", "/ui/login", "/ui/static/htmx.min.js", "/ui/static/tusk.css"]
    outside = re.compile(rb"https?://(?!" + re.escape(site.url.split("//", 1)[1]).encode() + rb")[^\s\"'<>)]+")
    with httpx.Client(base_url=site.url, headers={"Authorization": f"Bearer {site.tokens['root']}"}) as h:
        for path in pages:
            r = h.get(path)
            assert r.status_code == 200, (path, r.status_code)
            assert not outside.findall(r.content), (path, outside.findall(r.content)[:3])
            if r.headers["content-type"].startswith("text/html"):
                assert "default-src 'self'" in r.headers["content-security-policy"]


def test_the_overview_updates_while_jobs_run(browser: Any, site: Site) -> None:
    from playwright.sync_api import expect

    page = _signed_in(browser, site, "root")
    before = site.root.list_jobs("wc")[0].id
    site.root.put_file("census@master:/more.csv", b"age\n41\n")
    after = site.root.list_jobs("wc")[0].id
    assert after != before
    row = page.locator("#graph tr", has=page.get_by_role("link", name="wc", exact=True))
    expect(row).to_contain_text(short_id(after), timeout=20_000)  # swapped in by the page's own polling


def test_tusk_ui_serves_the_dashboard_on_an_embedded_store(tmp_path: Path) -> None:
    env = {"TUSK_HOME": str(tmp_path / "home"), "TUSK_USER": "me", "PATH": "/usr/bin:/bin"}
    with Client(settings=Settings.from_env(env=env)) as c:
        c.create_repo("solo")
    proc = subprocess.Popen([sys.executable, "-m", "tusk", "ui", "--no-browser"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
        assert match, line
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(match.group(1) + "/ui/repos")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert r.status_code == 200 and "solo" in r.text
        assert httpx.get(match.group(1) + "/v2/health/live").status_code == 200  # OIP is still there
    finally:
        proc.terminate()
        proc.wait(30)
    refused = subprocess.run([sys.executable, "-m", "tusk", "ui", "--host", "0.0.0.0", "--no-browser"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "loopback" in refused.stderr
