"""The dashboard in a real browser (Debian chromium through Playwright) against a real server with auth on:
the census story a user walks (a job on the DAG and its global id, data, a failed datum, two models' metrics,
promote with a reason while the deployment's traffic moves, roll back, a prediction's lineage to the raw CSV;
an algorithm called from its page, a spec diff, Reprocess, a branch's head history), what a reader may not do,
axe-core accessibility checks on every page, no outside URLs, and screenshots into docs/ui/."""

from __future__ import annotations

import json
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

from tests.ui.story import FIRST_NOTE, ROWS, WC, build, tensors
from tusk.config import Settings
from tusk.ids import short_id
from tusk.root import create_server_app
from tusk.root.server import serve_in_thread
from tusk.sdk import Client
from tusk.services import Services

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
        for repo in ("income_data", "wc", "broken", "train_income", "income-requests", "deployment/income"):
            operator.set_role(repo, "rita", "reader")
        app = create_server_app(Services.open(settings), auth=True, poll=0.2, close_services=True)
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


def _shot(page: Any, name: str, full_page: bool = True) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


def _visit(page: Any, site: Site, path: str, name: str) -> None:
    response = page.goto(site.url + path)
    assert response is not None and response.status == 200, (path, response and response.status)
    _axe(page)
    _shot(page, name)


def _infer(site: Site, n: int, serving: str | None = None) -> None:
    """``n`` real inferences (three census rows each) through the server, once the deployment serves (and, with
    ``serving``, once that model commit answers: a promotion or rollback swaps the model a moment later)."""
    infer = {"inputs": tensors(3)}
    with httpx.Client(base_url=site.url, headers={"Authorization": f"Bearer {site.tokens['root']}"},
                      timeout=30) as h:
        deadline = time.monotonic() + 60
        while (r := h.post("/v2/models/income/infer", json=infer)).status_code != 200 or \
                (serving is not None and r.headers["x-tusk-model-commit"] != serving):
            assert time.monotonic() < deadline, (r.status_code, r.text[:300], r.headers.get("x-tusk-model-commit"))
            time.sleep(0.3)
        for _ in range(n - 1):
            r = h.post("/v2/models/income/infer", json=infer)
            assert r.status_code == 200, r.text


def _requests(page: Any, commit: str) -> int:
    """The requests the deployment page's live panel counts for predictor main and one model commit."""
    row = page.get_by_test_id(f"traffic-main-{short_id(commit)}")
    return int(row.get_by_role("cell").nth(2).inner_text()) if row.count() else 0


def test_the_census_story_through_the_pages(browser: Any, site: Site) -> None:
    """A job on the DAG and the commit set it ran in, a failed datum's log, two models' metrics side by side,
    promote with a reason and watch the deployment's traffic move to the new model, roll back, then follow a
    served prediction's lineage to the raw CSV."""
    page = _signed_in(browser, site, "root")
    from playwright.sync_api import expect

    ids = site.ids
    v1, v2 = ids["v1"], ids["v2"]
    # overview: the graph, each pipeline's last job state and datum counts, links per node
    expect(page.get_by_test_id("state-train_income")).to_have_text("success")
    expect(page.get_by_test_id("state-wc")).to_have_text("success")
    expect(page.get_by_test_id("state-broken")).to_have_text("failure")
    assert page.locator("svg.dag a[href='/ui/pipelines/train_income']").count() == 1
    expect(page.locator("svg.dag a[href='/ui/pipelines/train_income']")).to_contain_text("success · 1/1 datums")
    assert page.locator("svg.dag a[href='/ui/repos/income_data']").count() == 1
    _axe(page)
    _shot(page, "overview")
    for _ in range(40):  # keyboard only: Tab to the graph's train_income node, Enter opens the pipeline
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.getAttribute('href')") == "/ui/pipelines/train_income":
            break
    page.keyboard.press("Enter")
    page.wait_for_url(f"{site.url}/ui/pipelines/train_income")
    expect(page.get_by_role("button", name="Rerun")).to_be_visible()
    _axe(page)
    _shot(page, "pipeline")

    # the job that trained v2, and on the DAG every commit and job its global id (the data release) caused
    job = site.root.list_jobs("train_income")[0]
    assert job.output_commit == v2
    _visit(page, site, f"/ui/jobs/{job.id}", "job")
    page.get_by_role("link", name=short_id(job.global_id), exact=True).click()
    page.wait_for_url(f"{site.url}/ui/global/{job.global_id}")
    graph = page.locator("svg.dag")
    for name in ("train_income", "wc", "broken"):  # each touched node: marked ✓, linked to its job
        mine = site.root.list_jobs(name, global_id=job.global_id)[0]
        node = graph.locator(f"a[href='/ui/jobs/{mine.id}']")
        expect(node).to_contain_text(f"✓ {name}")
        expect(node).to_contain_text(f"job {short_id(mine.id)}")
        expect(page.get_by_test_id(f"global-{name}")).to_contain_text(short_id(mine.id))
    expect(graph.locator(f"a[href='/ui/repos/income_data/browse/{ids['raw2']}/']")).to_contain_text("✓ income_data")
    expect(graph.locator("a.node.untouched[href='/ui/repos/income-requests']")).to_contain_text("not in this set")
    assert graph.locator("path.edge.touched").count() == 3  # income_data → wc, broken, train_income
    expect(page.get_by_test_id("global-income_data")).to_contain_text(short_id(ids["raw2"]))
    _axe(page)
    _shot(page, "global-id")

    # data: repos, a repo with branches and commits, the file browser, previews, a diff
    _visit(page, site, "/ui/repos", "data-repos")
    _visit(page, site, "/ui/repos/income_data", "data-repo")
    expect(page.get_by_role("cell", name="census data, first release")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile(r"^staging"))).to_contain_text("master")  # its trigger
    expect(page.get_by_role("link", name="Moves of staging")).to_have_attribute(
        "href", "/ui/repos/income_data/branches/staging")
    release = site.root.inspect_commit(f"income_data@{ids['raw2']}").global_id  # its commit set
    expect(page.get_by_role("link", name=f"global {short_id(release)}").first).to_have_attribute(
        "href", f"/ui/global/{release}")
    _visit(page, site, "/ui/repos/income_data/browse/master/", "data-browse")
    page.get_by_role("link", name="census.csv", exact=True).click()
    table = page.get_by_test_id("preview-table")
    expect(table.locator("th").first).to_have_text("age")
    expect(table.locator("tbody tr")).to_have_count(200)  # the first 200 of 1,200 rows
    _axe(page)
    _shot(page, "data-preview-csv", full_page=False)  # (200 rows: the top of the page is the point)
    _visit(page, site, "/ui/repos/income_data/browse/master/notes.json", "data-preview-json")
    expect(page.locator("pre.code")).to_contain_text('"source": "UCI"')
    with page.expect_download() as download:
        page.get_by_role("link", name="Download", exact=True).click()
    assert json.loads(Path(download.value.path()).read_bytes()) == {"source": "UCI", "rows": ROWS}
    _visit(page, site, "/ui/repos/income_data/diff?new=master", "data-diff")
    expect(page.get_by_role("cell", name="/census.csv")).to_be_visible()

    # pipelines: the failed job shows its datum's error first; the datum's log
    _visit(page, site, "/ui/pipelines", "pipelines")
    failed = site.root.list_jobs("broken")[0]
    _visit(page, site, f"/ui/jobs/{failed.id}", "job-failed")
    failure = page.get_by_test_id("failed-datum")
    expect(failure).to_contain_text("column income is missing")
    first = page.locator("main section, main dl").first
    assert first.get_attribute("data-testid") == "failed-datum"  # the error is the top of the page
    failure.get_by_role("link").click()
    expect(page.get_by_test_id("datum-log")).to_contain_text("reading the census")
    _axe(page)
    _shot(page, "datum-log")

    # traffic before the promotion: v1 (production) answers; a second tab keeps the deployment page open
    _infer(site, 5, serving=v1)
    watch = page.context.new_page()
    watch.goto(f"{site.url}/ui/deployments/income")
    expect(watch.get_by_test_id(f"traffic-main-{short_id(v1)}")).to_be_visible()
    assert watch.get_by_test_id(f"traffic-main-{short_id(v2)}").count() == 0

    # models: both versions' metrics side by side, a chart per metric, promote v2 with a reason
    _visit(page, site, "/ui/models", "models")
    _visit(page, site, "/ui/models/train_income", "model")
    metrics = page.get_by_test_id("metrics-table")
    for v in (v1, v2):
        accuracy = json.loads(site.root.get_file(f"train_income@{v}:/metrics.json"))["accuracy"]
        expect(metrics).to_contain_text(str(accuracy))
    expect(metrics).to_contain_text("roc_auc")
    assert page.locator("svg.chart").count() >= 2  # accuracy, roc_auc, n_train, n_test
    page.locator(f"#to-{v2}").fill("production")
    page.get_by_role("button", name=f"Promote {short_id(v2)}").click()  # no reason yet: the browser holds it
    assert page.get_by_label(f"Why promote {short_id(v2)}").evaluate("e => e.validity.valueMissing")
    assert site.root.inspect_commit("train_income@production").id == v1
    page.get_by_label(f"Why promote {short_id(v2)}").fill(f"retrained on {2 * ROWS} rows")
    page.get_by_role("button", name=f"Promote {short_id(v2)}").click()
    expect(page.locator(".notice")).to_have_text("promoted")
    assert site.root.inspect_commit("train_income@production").id == v2
    expect(page.locator("#stage-production")).to_contain_text(short_id(v2))
    moves = site.root.model_history("train_income@production")
    assert (moves[0].actor, moves[0].reason, moves[0].note) == ("root", "promote", f"retrained on {2 * ROWS} rows")

    # the deployment's traffic moves to v2: the open tab's live panel refreshes itself
    _infer(site, 5, serving=v2)
    expect(watch.get_by_test_id(f"traffic-main-{short_id(v2)}")).to_be_visible(timeout=15_000)
    deadline = time.monotonic() + 15  # a refresh may land between two of the five: wait for the next ones
    while _requests(watch, v2) < 5:
        assert time.monotonic() < deadline, f"the live panel counts {_requests(watch, v2)} requests for v2, not 5"
        watch.wait_for_timeout(250)
    watch.reload()  # the predictors table (not live) names the commit main serves now
    expect(watch.get_by_role("row", name=re.compile(r"^main ")).first).to_contain_text(short_id(v2))
    _axe(watch)
    _shot(watch, "deployment-moved")

    # roll back, with a reason; traffic goes back to v1
    page.get_by_label("Why roll production back").fill("v2 drifts on the night batch")
    page.get_by_role("button", name="Roll production back").click()
    expect(page.locator(".notice")).to_have_text("rolled back")
    assert site.root.inspect_commit("train_income@production").id == v1
    history = page.locator("section[aria-labelledby='stage-production'] tbody tr")  # who, when, why: newest first
    expect(history).to_have_count(3)
    for row, (who, move, why) in enumerate([("root", "rollback", "v2 drifts on the night batch"),
                                             ("root", "promote", f"retrained on {2 * ROWS} rows")]):
        cells = history.nth(row).locator("td")  # When, Who, Move, Why, From, To
        expect(cells.nth(0)).not_to_be_empty()
        for i, text in ((1, who), (2, move), (3, why)):
            expect(cells.nth(i)).to_have_text(text)
    expect(history.nth(2).get_by_role("cell", name=FIRST_NOTE)).to_be_visible()  # as text, not markup
    _axe(page)
    _shot(page, "model-promoted")
    before = _requests(watch, v1)
    _infer(site, 5, serving=v1)
    expect(watch.get_by_test_id(f"traffic-main-{short_id(v1)}").get_by_role("cell").nth(2)).not_to_have_text(
        str(before), timeout=15_000)
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    with httpx.Client(base_url=site.url, cookies=cookies, follow_redirects=False) as h:  # what the browser stops
        form = {"csrf": cookies["tusk_csrf"], "ref": f"train_income@{v2}", "to": "production"}
        for note, says in (("", "say why"), (" ", "say why"), ("x" * 1001, "1000 or fewer"),
                           ("two\nlines", "control character")):
            r = h.post("/ui/models/train_income/promote", data=form | {"note": note})
            assert r.status_code == 400 and says in r.text, (note[:10], r.status_code, r.text[:300])
        r = h.post("/ui/models/train_income/rollback", data={"csrf": cookies["tusk_csrf"],
                                                              "ref": "train_income@production"})
        assert r.status_code == 400 and "say why" in r.text
    assert site.root.inspect_commit("train_income@production").id == v1  # none of them moved it
    _visit(page, site, f"/ui/models/train_income?manifest={v1}", "model-manifest")
    _visit(page, site, "/ui/repos/train_income/branches/production", "branch-history")  # the same moves
    moves = page.get_by_test_id("branch-moves").locator("tbody tr")
    expect(moves).to_have_count(3)
    expect(moves.nth(0)).to_contain_text("v2 drifts on the night batch")
    expect(moves.nth(2).get_by_role("cell", name=FIRST_NOTE)).to_be_visible()

    # lineage: from a served prediction (the newest request-log record, answered by v1) back to the raw CSV
    deadline = time.monotonic() + 20  # the request log commits every half second; the page reads it on load
    while True:
        watch.reload()
        recent = watch.get_by_role("table", name=re.compile("^Recent requests"))
        if recent.get_by_role("row").nth(1).get_by_role("link", name=f"train_income@{short_id(v1)}").count():
            break
        assert time.monotonic() < deadline, "no request-log record answered by v1 on the page"
        time.sleep(0.5)
    recent.get_by_role("link", name=re.compile("^Lineage of the prediction")).first.click()
    watch.wait_for_url(re.compile(r"/ui/lineage/prediction\?"))
    expect(watch.get_by_test_id("prediction")).to_contain_text("main")
    answered = watch.get_by_test_id("answered-by")
    expect(answered.get_by_role("link", name=f"train_income@{short_id(v1)}")).to_have_attribute(
        "href", f"/ui/repos/train_income/browse/{v1}/")
    trained = watch.get_by_test_id("trained-by")
    v1_job = site.root.inspect_commit(f"train_income@{v1}")
    training = next(j for j in site.root.list_jobs("train_income") if j.output_commit == v1)
    expect(trained.get_by_role("link", name=short_id(training.id), exact=True)).to_have_attribute(
        "href", f"/ui/jobs/{training.id}")
    expect(trained).to_contain_text("of pipeline train_income version 1")
    expect(trained.get_by_role("link", name=f"income_data@{short_id(ids['raw1'])}:/")).to_be_visible()
    assert v1_job.provenance[0]["commit"] == ids["raw1"]
    assert watch.locator("svg.dag a").count() == 3  # income_data → train_income → the prediction
    _axe(watch)
    _shot(watch, "lineage-prediction")
    watch.get_by_test_id("raw-data").get_by_role("link", name="/census.csv", exact=True).click()
    watch.wait_for_url(f"{site.url}/ui/repos/income_data/browse/{ids['raw1']}/census.csv")
    expect(watch.get_by_test_id("preview-table").locator("th").first).to_have_text("age")  # the raw CSV itself
    assert ids["raw1"] in watch.content()

    _the_algorithm_spec_diff_and_reprocess(page, site)
    _visit(page, site, "/ui/deployments", "deployments")
    _visit(page, site, "/ui/lineage?ref=train_income@master", "lineage")
    assert page.locator("svg.dag a").count() >= 2  # income_data → train_income
    _visit(page, site, "/ui/login", "login")


def _finished_job(site: Site, pipeline: str, after: str | None = None) -> str:
    deadline = time.monotonic() + 60
    while (job := site.root.list_jobs(pipeline)[0]).id == after or job.state in ("created", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    return job.id


def _the_algorithm_spec_diff_and_reprocess(page: Any, site: Site) -> None:
    """Call root/clean from its page; a new version of wc and the diff of its spec; Reprocess wc: every datum
    processed again, none skipped."""
    from playwright.sync_api import expect

    _visit(page, site, "/ui/algorithms", "algorithms")
    page.get_by_role("link", name="root/clean", exact=True).click()
    page.wait_for_url(f"{site.url}/ui/algorithms/root/clean")
    page.get_by_label("Version").select_option("1.0.0")
    page.get_by_label("Input", exact=True).fill('[" Bachelors", "HS-grad "]')
    page.get_by_role("button", name="Call root/clean").click()
    answer = page.get_by_test_id("algo-answer")
    expect(answer).to_contain_text('"bachelors"')
    expect(answer).to_contain_text("1.0.0 (commit")
    _axe(page)
    _shot(page, "algorithm")

    site.root.edit_pipeline("wc", WC | {"description": "line counts of the census files"})
    _finished_job(site, "wc")
    page.goto(f"{site.url}/ui/pipelines/wc")
    page.get_by_role("link", name="Diff of the spec from version 1 to 2").click()
    page.wait_for_url(f"{site.url}/ui/pipelines/wc/diff?old=1&new=2")
    expect(page.get_by_test_id("spec-diff").locator("ins")).to_contain_text(
        '+  "description": "line counts of the census files"')
    _axe(page)
    _shot(page, "pipeline-diff")

    before = _finished_job(site, "wc")
    page.goto(f"{site.url}/ui/pipelines/wc")
    page.get_by_role("button", name="Reprocess").click()
    expect(page.locator(".notice")).to_contain_text("every datum runs again")
    job = site.root.inspect_job(_finished_job(site, "wc", after=before))
    assert job.datums_processed == job.datums_total > 0 and job.datums_skipped == 0, job
    _visit(page, site, f"/ui/jobs/{job.id}", "job-reprocessed")
    expect(page.locator("dl.facts")).to_contain_text(f"{job.datums_total} processed, 0 skipped")


def test_the_deployment_page_shows_live_traffic_and_requests_and_rolls_out(browser: Any, site: Site) -> None:
    """The deployment page after real inferences: live rate and latency for the predictor and the commit that
    answered, drift p-values, the request-log records with their answers; then a rollout through its form."""
    from playwright.sync_api import expect

    page = _signed_in(browser, site, "root")
    commit = site.root.inspect_commit("train_income@production").id
    _infer(site, 1, serving=commit)
    page.goto(f"{site.url}/ui/deployments/income")  # the first sample of the live panel's window
    before = _requests(page, commit)
    _infer(site, 15)
    row = page.get_by_test_id(f"traffic-main-{short_id(commit)}")
    expect(row.get_by_role("cell").nth(2)).to_have_text(str(before + 15), timeout=15_000)  # it refreshes itself
    cells = row.get_by_role("cell").all_inner_texts()
    rate, p50 = cells[3], cells[5]
    assert rate.endswith("/s") and float(rate.removesuffix("/s")) > 0, cells
    assert p50.endswith(" ms") and float(p50.removesuffix(" ms")) > 0, cells
    expect(page.get_by_role("table", name="Latest drift-test p-value per feature")).to_contain_text("age")
    deadline = time.monotonic() + 15  # the request log commits every half second; the page reads it on load
    while page.get_by_role("table", name=re.compile("^Recent requests")).get_by_text("Bachelors").count() == 0:
        assert time.monotonic() < deadline, "no request-log record on the page"
        time.sleep(0.5)
        page.reload()
    _infer(site, 10)  # more traffic while the panel refreshes: its charts get a line over time
    expect(page.locator("#live svg.chart path.series").first).to_be_attached(timeout=15_000)
    recent = page.get_by_role("table", name=re.compile("^Recent requests"))
    expect(recent.get_by_role("link", name=f"train_income@{short_id(commit)}").first).to_have_attribute(
        "href", f"/ui/lineage?ref=train_income@{commit}")
    _axe(page)
    _shot(page, "deployment")

    page.get_by_label("main", exact=True).fill("3")
    page.get_by_label("canary", exact=True).fill("1")
    page.get_by_role("button", name="Roll out").click()
    expect(page.get_by_text("weights rolled out")).to_be_visible()
    info = site.root.inspect_deployment("income")
    assert {p.name: p.weight for p in info.predictors} == {"main": 3, "canary": 1}
    assert site.root.deployment_history("income")[0].reason == "rollout"
    expect(page.get_by_test_id("weight-canary")).to_have_text("1.0")


def test_a_reader_sees_no_write_controls_and_forged_writes_are_refused(browser: Any, site: Site) -> None:
    from playwright.sync_api import expect

    page = _signed_in(browser, site, "rita")
    page.goto(f"{site.url}/ui/models/train_income")
    assert page.get_by_role("button", name=re.compile("Promote|Roll")).count() == 0
    page.goto(f"{site.url}/ui/pipelines/wc")
    assert page.get_by_role("button", name=re.compile("Rerun|Reprocess|Stop|Start")).count() == 0
    job = site.root.list_jobs("broken")[0]
    page.goto(f"{site.url}/ui/jobs/{job.id}")
    assert page.locator("main form").count() == 0  # no write control at all
    _shot(page, "reader-pipeline")
    page.goto(f"{site.url}/ui/algorithms")  # rita has no role on root/clean: not listed, no page, no form
    expect(page.get_by_role("heading", name="Algorithms")).to_be_visible()
    assert page.get_by_role("link", name="root/clean").count() == 0
    assert page.goto(f"{site.url}/ui/algorithms/root/clean").status == 404
    assert page.locator("main form").count() == 0
    page.goto(f"{site.url}/ui/deployments/income")
    expect(page.get_by_role("heading", name="Traffic")).to_be_visible()
    assert page.locator("main form").count() == 0 and page.get_by_role("button", name="Roll out").count() == 0

    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    v2 = f"train_income@{site.ids['v2']}"
    promote, rollback = "/ui/models/train_income/promote", "/ui/models/train_income/rollback"
    with httpx.Client(base_url=site.url, cookies=cookies, follow_redirects=False) as h:
        # a reader's own session, with its CSRF token: refused by the rollout and promote routes' own checks
        r = h.post("/ui/deployments/income/rollout", data={"csrf": cookies["tusk_csrf"], "weight-main": "0",
                                                           "weight-canary": "1"})
        assert r.status_code == 403 and "writer" in r.text, r.text
        r = h.post(promote, data={"csrf": cookies["tusk_csrf"], "ref": v2, "to": "production",
                                  "note": "a reader's try"})
        assert r.status_code == 403 and "writer" in r.text, r.text
        r = h.post(rollback, data={"csrf": cookies["tusk_csrf"], "ref": "train_income@production",
                                   "note": "a reader's try"})
        assert r.status_code == 403 and "writer" in r.text, r.text
        # no CSRF token, or another site's form: refused before anything runs
        assert h.post(promote, data={"ref": v2, "to": "x"}).status_code == 403
        r = h.post(promote, headers={"Origin": "https://evil.example"},
                   data={"csrf": cookies["tusk_csrf"], "ref": v2, "to": "x"})
        assert r.status_code == 403
        r = h.post("/ui/algorithms/root/clean/call", data={"csrf": cookies["tusk_csrf"], "input": "[]"})
        assert r.status_code == 403 and "rita is not a reader of algorithm/root/clean" in r.text, r.text
        for path in ("/ui/pipelines/wc/rerun", "/ui/pipelines/wc/reprocess", "/ui/pipelines/wc/stop",
                     f"/ui/jobs/{job.id}/stop"):
            r = h.post(path, data={"csrf": cookies["tusk_csrf"]})
            assert r.status_code == 403 and ("owner" in r.text or "writer" in r.text), (path, r.text)
        # the session cookie is no key to the API
        assert h.post("/api/v1/models/promote", json={"ref": v2, "to": "x"}).status_code == 401
    with httpx.Client(base_url=site.url, follow_redirects=False) as anon:
        assert anon.post("/api/v1/models/promote", json={"ref": v2, "to": "x"}).status_code == 401
        assert anon.post(promote, data={"ref": v2, "to": "x"}).status_code == 403
        r = anon.get("/ui/repos/income_data")
        assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")
        assert anon.get("/ui/overview/graph", headers={"HX-Request": "true"}).headers["hx-redirect"] == \
            "/ui/login?next=/"
    assert "x" not in [b.name for b in site.root.list_branches("train_income")]


def _a_record(site: Site) -> str:
    """A prediction's page: the first record of a request-log file (after one inference, if none is logged yet)."""
    deadline = time.monotonic() + 20
    while not (logged := [c for c in site.root.list_commits("income-requests@master") if c.provenance]):
        if time.monotonic() > deadline:
            raise AssertionError("the request log committed nothing")
        _infer(site, 1)
        time.sleep(0.5)
    path = next(f.path for f in site.root.walk_files(f"income-requests@{logged[0].id}:/") if f.kind == "file")
    return f"/ui/lineage/prediction?ref=income-requests@{logged[0].id}:{path}&line=0"


def test_no_page_or_asset_refers_to_another_host(site: Site) -> None:
    job = site.root.list_jobs("broken")[0]
    pages = ["/", "/ui/overview/graph", "/ui/repos", "/ui/repos/income_data", "/ui/repos/income_data/browse/master/",
             "/ui/repos/income_data/browse/master/census.csv", "/ui/repos/income_data/diff?new=master",
             "/ui/pipelines", "/ui/pipelines/wc", f"/ui/jobs/{job.id}", f"/ui/global/{job.global_id}", "/ui/models",
             "/ui/models/train_income", "/ui/deployments", "/ui/deployments/income", "/ui/deployments/income/live",
             "/ui/lineage?ref=wc@master", _a_record(site), "/ui/login", "/ui/algorithms", "/ui/algorithms/root/clean",
             "/ui/pipelines/wc/diff", "/ui/repos/income_data/branches/master", "/ui/static/htmx.min.js",
             "/ui/static/tusk.css"]
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
    site.root.put_file("income_data@master:/more.txt", b"41\n")
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
