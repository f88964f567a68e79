"""`tusk demo`: the census-income story, end to end, on the embedded default.

Versioned data with deferred processing, three training pipelines, models
gathered by reference, promotion to production, a bad model found and rolled
back, a shadow rollout, the lineage of a prediction back to the raw CSV, and
why v2 answered as it did (its explainer, trained beside it).
It runs the pipelines of ``examples/census-income`` in its own Tusk home, so
it never touches the user's repos, and it uses only the public SDK: the calls
a user would make.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tusk.config import Settings
from tusk.errors import InvalidArgument
from tusk.sdk import Client
from tusk.storage.objects import LocalObjectStore

__all__ = ["find_census_data", "find_example", "run_demo"]

Say = Callable[[str], None]
JobProgress = Callable[[str, int, int, int], None]  # (pipeline, datums done, total, failed)


def _has_census(directory: Path) -> bool:
    return (directory / "adult.data").is_file() or (directory / "adult.data.gz").is_file()


def find_census_data(start: Path) -> Path | None:
    """``shared/data/census-income`` beside (or above) the working directory or the Tusk checkout; else the
    gzip copy shipped in ``examples/census-income/uci``."""
    checkout = Path(__file__).resolve().parents[2]
    for base in [start, *start.parents, checkout, *checkout.parents]:
        for candidate in (base / "shared" / "data" / "census-income", base / "data" / "census-income"):
            if _has_census(candidate):
                return candidate
    example = find_example(start)
    return example / "uci" if example is not None and _has_census(example / "uci") else None


def find_example(start: Path) -> Path | None:
    """``examples/census-income`` as shipped in this package (``tusk/examples``), else above ``start``."""
    for base in [Path(__file__).resolve().parent, start, *start.parents]:
        candidate = base / "examples" / "census-income"
        if (candidate / "train_income.json").is_file():
            return candidate
    return None


def _stored_bytes(client: Client) -> int | None:
    objects = client.services.ctx.objects
    if not isinstance(objects, LocalObjectStore):
        return None
    return sum(p.stat().st_size for p in objects.root.rglob("*") if p.is_file() and ".tmp" not in p.parts)


def _mib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / (1 << 20):.1f} MiB"


class _Story:
    def __init__(self, say: Say, client: Client, example: Path, data: Path) -> None:
        self.say, self.c, self.example, self.data = say, client, example, data
        self.versions: dict[str, str] = {}  # copy_models commit → v1/v2/v3

    def step(self, text: str) -> None:
        self.say(f"\n[bold]{text}[/bold]")

    def pipeline(self, name: str) -> None:
        self.c.create_pipeline(self.example / f"{name}.json")

    def jobs_since(self, t0: float) -> str:
        jobs = [j for j in self.c.list_jobs() if j.created_at.timestamp() >= t0]
        parts = [f"{j.pipeline} ({j.datums_processed} run, {j.datums_skipped} reused)" for j in reversed(jobs)]
        return ", ".join(parts) if parts else "none"

    def version(self, commit: str) -> str:
        return self.versions.get(commit, commit[:8])

    def accuracy(self, repo: str) -> dict[str, Any]:
        return dict(json.loads(self.c.get_file(f"{repo}@master:/accuracy.json")))

    def push_dataset(self, name: str, message: str) -> None:
        before = _stored_bytes(self.c)
        commit = self.c.put_file("income_data@incoming:/census.csv", self.data / name / "census.csv",
                                 description=message)
        assert commit is not None
        grew = _stored_bytes(self.c)
        growth = f", {_mib(grew - before)} newly stored" if before is not None and grew is not None else ""
        self.say(f"   income_data@incoming ← {name}/census.csv ({_mib(commit.size_bytes)}{growth}), commit "
                 f"{commit.id[:8]}; master unchanged, so nothing ran")

    def release(self, label: str) -> str:
        """Move master to incoming (deferred processing): the training pipelines run; name the new model."""
        t0 = time.time()
        self.c.create_branch("income_data@master", head="incoming")
        model = self.c.inspect_commit("copy_models@master")
        self.versions[model.id] = label
        self.say(f"   income_data@master → incoming: jobs {self.jobs_since(t0)}")
        m = self.c.model_manifest(f"copy_models@{model.id}")
        income = m.metrics.get("/income/metrics.json", {})
        top = max(income.get("top_features", {"-": 0}).items(), key=lambda kv: kv[1])
        self.say(f"   model {label} = copy_models@{model.id[:8]}: {len(m.models)} models, {len(m.files)} files "
                 f"hashed; validation accuracy {income.get('accuracy')}, top feature {top[0]} ({top[1]})")
        return model.id

    def promote(self, commit: str, to: str) -> None:
        t0 = time.time()
        move = self.c.promote_model(f"copy_models@{commit}", to)
        self.say(f"   tusk model promote copy_models@{commit[:8]} --to {to}  ({move.actor}, "
                 f"{move.moved_at:%H:%M:%S}); jobs {self.jobs_since(t0)}")


def _lineage_lines(node: dict[str, Any], depth: int = 0) -> list[str]:
    how = f"← {node['pipeline']} v{node['pipeline_version']}" if node.get("job") else f"({node.get('origin')})"
    lines = [f"   {'  ' * depth}{node['repo']}@{node['commit'][:8]} {how}"]
    for child in node.get("inputs", []):
        lines += _lineage_lines(child, depth + 1)
    return lines


def _require_ml() -> None:
    """The demo trains and serves scikit-learn models: without the ``ml`` extra it cannot start."""
    for module in ("sklearn", "pandas", "joblib"):
        try:
            __import__(module)
        except ImportError:
            raise InvalidArgument(f"tusk demo trains scikit-learn models and needs {module!r}: "
                                  "pip install 'tusk[ml]'") from None


def run_demo(say: Say, data_dir: Path | None = None, home: Path | None = None, example_dir: Path | None = None,
             job_progress: JobProgress | None = None, settings: Settings | None = None) -> Client:
    """Run the census-income story, narrating through ``say``; return the client for inspection.

    By default in a new embedded home (SQLite + local objects); ``settings``
    runs it elsewhere (the tests run it on PostgreSQL + S3 too).
    """
    _require_ml()
    data_dir = data_dir or find_census_data(Path.cwd())
    example = example_dir or find_example(Path.cwd())
    if data_dir is None or not _has_census(data_dir):
        raise InvalidArgument("the UCI census files were not found; pass --data DIR (with adult.data, adult.test,"
                              " or their .gz)")
    if example is None:
        raise InvalidArgument("examples/census-income was not found; run from a Tusk checkout or pass --example")
    home = home or Path(tempfile.mkdtemp(prefix="tusk-demo-"))
    prepared = home / "datasets"
    done = subprocess.run([sys.executable, "prepare.py", "--data", str(data_dir), "--out", str(prepared)],
                          cwd=example, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise InvalidArgument(f"preparing the census data failed ({example / 'prepare.py'} exited with code "
                              f"{done.returncode}): {last}")
    client = Client(settings=settings or Settings.for_home(home), job_progress=job_progress)
    story = _Story(say, client, example, prepared)
    say(f"[bold]Tusk demo[/bold]: the census-income story, in {home}")
    say(f"   data: {data_dir}; pipelines: {example}")

    story.step("1. Versioned data, deferred processing: new data lands on a side branch")
    for repo in ("income_data", "requests", "labels"):
        client.create_repo(repo)
    for name in ("train_income", "train_outlier", "train_drift", "copy_models"):
        story.pipeline(name)
    story.say("   pipelines train_income, train_outlier, train_drift read income_data@master; copy_models "
              "gathers their output by reference (empty_files + symlinks)")
    story.push_dataset("v1", "census data, first release")

    story.step("2. Release it: move master, the models train, each model commit gets a manifest")
    v1 = story.release("v1")
    copied = client.list_datums(client.list_jobs("copy_models")[0].id)[0]
    story.say(f"   copy_models stored {copied.upload_bytes} bytes of its own: every model file is a reference")

    story.step("3. Promote v1 to production; the predict pipeline reads copy_models@production")
    story.promote(v1, "production")
    t0 = time.time()
    with client.modify("requests@master", "four batches of traffic") as batch:
        for f in sorted((prepared / "requests").glob("*.csv")):
            batch.put_file(f"/{f.name}", f)
    with client.modify("labels@master", "the incomes that came true") as batch:
        for f in sorted((prepared / "labels").glob("*.csv")):
            batch.put_file(f"/{f.name}", f)
    for name in ("predict", "evaluate"):
        story.pipeline(name)
    say(f"   jobs {story.jobs_since(t0)}")
    say(f"   production accuracy on labelled traffic: {story.accuracy('evaluate')['accuracy']} (model v1)")

    story.step("4. v2 trains on a vendor dataset with an extra column, vendor_score")
    story.push_dataset("v2", "vendor dataset")
    v2 = story.release("v2")
    m1, m2 = (client.model_manifest(f"copy_models@{v}").metrics["/income/metrics.json"] for v in (v1, v2))
    say(f"   validation accuracy {m1['accuracy']} → {m2['accuracy']}: v2 looks better, so it is promoted")
    story.promote(v2, "production")
    acc2 = story.accuracy("evaluate")
    say(f"   production accuracy on labelled traffic: [red]{acc2['accuracy']}[/red] (model v2)")
    top = max(m2["top_features"].items(), key=lambda kv: kv[1])
    say(f"   the problem: v2's manifest ranks {top[0]} first ({top[1]}); in the vendor's training data it was a "
        "proxy of the label, in live traffic it is not")

    story.step("5. Roll back: one command, a branch move")
    t0 = time.time()
    move = client.rollback_model("copy_models@production")
    took = time.time() - t0
    say(f"   tusk model rollback copy_models --to production: production → {story.version(move.to_commit or '')} "
        f"in {took:.1f} s; jobs {story.jobs_since(t0)}")
    back = story.accuracy("evaluate")
    say(f"   production accuracy: {back['accuracy']} (model {story.version(back['model_commits'][0])}); the v1 "
        "predictions were reused, not recomputed")

    story.step("6. v3 trains on new data (8,000 more rows, no vendor column); shadow it first")
    story.push_dataset("v3", "census data plus 8,000 newer rows")
    v3 = story.release("v3")
    story.promote(v3, "shadow")
    t0 = time.time()
    for name in ("predict_shadow", "evaluate_shadow"):
        story.pipeline(name)
    say(f"   jobs {story.jobs_since(t0)}")
    live, shadow = story.accuracy("evaluate"), story.accuracy("evaluate_shadow")
    agree = _agreement(client)
    say(f"   on the same traffic: production (v1) {live['accuracy']}, shadow (v3) {shadow['accuracy']}, "
        f"{agree:.1%} of predictions agree; production answers were never touched")
    story.promote(v3, "production")
    say(f"   production accuracy: {story.accuracy('evaluate')['accuracy']} (model v3)")
    for move in client.model_history("copy_models@production"):
        say(f"   history: {move.moved_at:%H:%M:%S} {move.reason:<8} {story.version(move.from_commit or '-'):>4} → "
            f"{story.version(move.to_commit or '')} by {move.actor}")

    story.step("7. Lineage: from a prediction back to the raw CSV")
    trace = client.lineage("predict@master:/batch-1.csv")
    datum = trace["datum"]
    say(f"   predict@master:/batch-1.csv was written by datum {datum['id'][:8]} from "
        + ", ".join(f"{i['repo']}@{i['commit'][:8]}:{i['path']}" for i in datum["inputs"]))
    for line in _lineage_lines(trace["upstream"]):
        say(line)
    final = client.model_manifest("copy_models@production")
    training = final.training or {}
    say(f"   model v3 manifest {final.digest[:16]}: trained from "
        + ", ".join(f"{s['repo']}@{s['commit'][:8]}" for s in training.get("sources", []))
        + f"; {len(final.files)} files, each with blake3/sha256/md5")
    origin = final.upstream.get("/income/model.joblib")
    if origin:
        trained = client.model_manifest(f"{origin['repo']}@{origin['commit']}").training or {}
        git = (trained.get("code") or {}).get("git") or {}
        say(f"   /income/model.joblib is {origin['repo']}@{origin['commit'][:8]}:{origin['path']}, trained by "
            f"{trained.get('pipeline')} v{trained.get('pipeline_version')} job {str(trained.get('job'))[:8]}"
            + (f", code at git {git.get('commit', '')[:10]}{' (uncommitted changes)' if git.get('dirty') else ''}"
               if git else ""))
    story.step("8. Serve it: the production model over HTTP, hot swap by branch move, drift, request log")
    _serve(story, prepared, v1, v3)
    story.step("9. Explain it: per-column attributions from the explainer trained beside each model")
    _explain(story, prepared, v1, v2)
    story.step("10. A team server: the same store over the REST API, with tokens and roles")
    _team(story)

    report = client.fsck()
    say(f"   fsck: {report.commits} commits, {report.chunks} chunks verified, "
        f"{'no problems' if report.ok else f'{len(report.problems)} problem(s)'}")
    say(f"\nTry it yourself: TUSK_HOME={home} tusk model list; tusk lineage predict@master:/batch-1.csv")
    return client


def _tensors(frame: Any) -> list[dict[str, Any]]:
    """OIP inputs: one tensor per column (strings as BYTES, missing values as null)."""
    out = []
    for column in frame.columns:
        values = [None if v != v else v for v in frame[column].tolist()]  # NaN → null (missing)
        numeric = frame[column].dtype.kind in "if"
        out.append({"name": column, "shape": [len(values)], "data": values,
                    "datatype": ("INT64" if frame[column].dtype.kind == "i" else "FP64") if numeric else "BYTES"})
    return out


def _serve(story: _Story, prepared: Path, v1: str, v3: str) -> None:
    import httpx
    import pandas as pd

    from tusk.root.server import serve_in_thread
    from tusk.serving.app import create_app

    c, say = story.c, story.say
    c.create_deployment({
        "name": "census",
        "predictors": [{"name": "production", "model": "copy_models@production:/income/model.joblib"}],
        "detectors": {"reference": "income_data@master:/census.csv", "label": "income",
                      "drift": {"window": 500, "every": 250}},
        "logging": {"flush_rows": 1000, "flush_seconds": 1}})
    say("   tusk deploy create: predictor production follows copy_models@production:/income/model.joblib; "
        "detectors fit on income_data@master:/census.csv")
    batch = pd.read_csv(prepared / "requests" / "batch-1.csv")
    with serve_in_thread(create_app(c.services, poll=0.2)) as url, httpx.Client(base_url=url, timeout=60) as h:
        infer = "/v2/models/census/infer"
        r = h.post(infer, json={"inputs": _tensors(batch.head(1).drop(columns=["age"]))})
        say(f"   a request without the age column: {r.status_code} {r.json()['error'][:60]}...")
        r = h.post(infer, json={"inputs": _tensors(batch.head(1))})
        say(f"   columns the model does not use are ignored and reported: {r.json()['parameters']['ignored_inputs']}")
        live = batch
        answers: list[Any] = []
        served = set()
        for start in range(0, len(live), 50):
            r = h.post(infer, json={"inputs": _tensors(live.iloc[start:start + 50])})
            answers += r.json()["outputs"][0]["data"]
            served.add(r.headers["x-tusk-model-commit"])
        piped = pd.read_csv(io.BytesIO(c.get_file("predict@master:/batch-1.csv")))["prediction"].tolist()
        same = [">50K" if a else "<=50K" for a in answers] == piped  # predict.py writes the class as a label
        say(f"   {len(answers)} rows of batch-1 over OIP V2: answered by {', '.join(story.version(v) for v in served)}"
            f" (X-Tusk-Model-Commit); identical to the predict pipeline's output: {same}")

        def serving(commit: str) -> bool:
            return h.post(infer, json={"inputs": _tensors(live.head(1))}).headers["x-tusk-model-commit"] == commit

        for action, target in (("rollback", v1), ("promote", v3)):
            t0 = time.time()
            if action == "rollback":
                c.rollback_model("copy_models@production")
            else:
                c.promote_model(f"copy_models@{v3}", "production")
            while not serving(target) and time.time() - t0 < 60:
                time.sleep(0.05)
            say(f"   tusk model {action}: the server answers with {story.version(target)} {time.time() - t0:.1f} s "
                "later (verified beside the old model, then swapped)")
        shifted = live.copy()
        shifted["age"] = shifted["age"] + 12
        for start in range(0, len(shifted), 50):
            h.post(infer, json={"inputs": _tensors(shifted.iloc[start:start + 50])})
        time.sleep(0.5)
        r = h.post(infer, json={"inputs": _tensors(shifted.head(1)), "parameters": {"detect": True}})
        drift = r.json()["parameters"].get("drift") or {}
        worst = min((drift.get("p_values") or {"-": 1.0}).items(), key=lambda kv: kv[1])
        say(f"   traffic aged by 12 years: drift detected {drift.get('detected')}, lowest p-value {worst[0]} "
            f"{worst[1]:.1e} (threshold {drift.get('threshold', 0):.1e}); also in /metrics as tusk_drift_p_value")
    logged = c.list_commits("census-requests@master")
    rows = sum(1 for f in c.walk_files("census-requests@master:/") if f.kind == "file"
               for _ in c.get_file(f"census-requests@master:{f.path}").splitlines())
    models = sorted({story.version(p["commit"]) for commit in logged for p in commit.provenance})
    say(f"   census-requests: {rows} requests in {len(logged)} commit(s), provenance {', '.join(models)}: "
        "logged traffic is data with lineage")


def _explain(story: _Story, prepared: Path, v1: str, v2: str) -> None:
    """v1 and v2 side by side (one deployment, two pinned predictors): what drives each one's predictions."""
    from collections import Counter

    import httpx
    import pandas as pd

    from tusk.root.server import serve_in_thread
    from tusk.serving.app import create_app

    c, say = story.c, story.say
    c.create_deployment({
        "name": "census-audit", "description": "v1 and v2 pinned, to explain them side by side",
        "predictors": [{"name": "v1", "model": f"copy_models@{v1}:/income/model.joblib", "weight": 1},
                       {"name": "v2", "model": f"copy_models@{v2}:/income/model.joblib", "weight": 0}],
        "logging": {"enabled": False}})
    say("   tusk deploy create census-audit: predictors v1 and v2 pinned to their commits; each model's "
        "/income/explainer.json was trained beside it by train_income and is verified with it")
    batch = pd.read_csv(prepared / "requests" / "batch-1.csv").head(50)
    tops: dict[str, list[tuple[str, float]]] = {}
    with serve_in_thread(create_app(c.services, deployments=["census-audit"], poll=0.2)) as url, \
            httpx.Client(base_url=url, timeout=60) as h:
        for name in ("v1", "v2"):
            r = h.post(f"/v2/models/census-audit/versions/{name}/explain", json={"inputs": _tensors(batch)})
            doc = r.json()
            if r.status_code != 200:
                say(f"   {name}: explain answered {r.status_code} {doc.get('error')}")
                return
            by_column = {o["name"]: o["data"] for o in doc["outputs"]}
            tops[name] = [max(((col, v[i]) for col, v in by_column.items()), key=lambda kv: abs(kv[1]))
                          for i in range(len(batch))]
            params = doc["parameters"]
            say(f"   POST /v2/models/census-audit/versions/{name}/explain: {len(batch)} rows, {params['method']} "
                f"attributions to {len(by_column)} input columns, in the {params['output'].replace('_', '-')} of "
                f"class {params['class']} (>50K), answered by {story.version(r.headers['x-tusk-model-commit'])}")
    for i in range(3):
        row = batch.iloc[i]
        (c1, a1), (c2, a2) = tops["v1"][i], tops["v2"][i]
        say(f"   row {i + 1}: v2's top attribution {c2}={row[c2]} ({a2:+.2f} log-odds); "
            f"v1's {c1}={row[c1]} ({a1:+.2f})")
    counts = {name: Counter(col for col, _ in t) for name, t in tops.items()}
    v2_top, v2_n = counts["v2"].most_common(1)[0]
    say(f"   over {len(batch)} rows, {v2_top} is v2's top attribution for {v2_n}; v1's are "
        + ", ".join(f"{col} {n}" for col, n in counts["v1"].most_common(3))
        + ": v2's individual predictions are explained by the vendor's score")


def _team(story: _Story) -> None:
    """Server mode: auth activated, an analyst who may read predictions but not move production."""
    from dataclasses import replace

    from tusk.errors import PermissionDenied
    from tusk.root import create_server_app
    from tusk.root.server import serve_in_thread

    c, say = story.c, story.say
    _, lead_token = c.activate_auth("ml-lead")
    _, analyst_token = c.create_token("analyst", "read-only access for reports")
    for repo in ("predict", "copy_models"):
        c.set_role(repo, "analyst", "reader")
    say("   tusk auth activate --admin ml-lead; a token for analyst, reader of predict and copy_models")
    with serve_in_thread(create_server_app(c.services, auth=True, serving=False, scheduler=False)) as url:
        def remote(token: str) -> Client:
            return Client(settings=replace(c.settings, address=url, token=token))

        with remote(analyst_token) as analyst, remote(lead_token) as lead:
            repos = [r.name for r in analyst.list_repos()]
            rows = len(analyst.get_file("predict@master:/batch-1.csv").splitlines()) - 1
            say(f"   TUSK_ADDRESS={url}: analyst sees {', '.join(repos)}; reads {rows} predictions of batch-1")
            try:
                analyst.promote_model("copy_models@production^", "production")
                say("   analyst promoted a model?!")
            except PermissionDenied as exc:
                say(f"   analyst tries tusk model promote: refused ({str(exc).split(';')[0]})")
            move = lead.model_history("copy_models@production")[0]
            who = lead.whoami()["user"]
            say(f"   {who} (cluster admin) reads the production history over HTTP: last move {move.reason} to "
                f"{story.version(move.to_commit or '')} by {move.actor}")


def _agreement(client: Client) -> float:
    same = total = 0
    for f in client.list_files("predict@master:/"):
        if not f.path.endswith(".csv"):
            continue
        a = client.get_file(f"predict@master:{f.path}").decode().splitlines()[1:]
        b = client.get_file(f"predict_shadow@master:{f.path}").decode().splitlines()[1:]
        same += sum(x.split(",")[0] == y.split(",")[0] for x, y in zip(a, b, strict=True))
        total += len(a)
    return same / total if total else 0.0
