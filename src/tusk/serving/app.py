"""The serving HTTP app: Open Inference Protocol V2, MLflow-style ``/invocations``, ``/metrics``, algorithms.

Endpoints (OIP V2 REST, as specified)::

    GET  /v2/health/live            GET  /v2/health/ready           GET  /v2
    GET  /v2/models/{m}[/versions/{v}]            GET  .../ready
    POST /v2/models/{m}[/versions/{v}]/infer
    POST /v2/models/{m}[/versions/{v}]/explain   (also: the model ``{m}:explain``)

A model name ``m`` is a deployment; a version ``v`` is a predictor's name or
the model commit it serves (8+ characters), which bypasses the traffic split.
``explain`` answers per-column attributions from the explainer trained beside
the model (:mod:`~tusk.serving.explanations`).
Also: ``POST /invocations`` (MLflow: dataframe_split, dataframe_records,
instances, inputs, or CSV), ``GET /metrics`` (Prometheus) and
``POST /v1/algo/{owner}/{name}[/{version}]``.

Every inference response names what answered it, in headers
(``X-Tusk-Model-Commit``, ``X-Tusk-Model-Repo``, ``X-Tusk-Predictor``,
``X-Tusk-Global-Id``, ``X-Tusk-Deployment-Revision``) and in the OIP
``model_version``. Inference takes the binary tensor data extension
(:mod:`~tusk.serving.binary`) and gzip/deflate bodies both ways, within a body
limit (:mod:`~tusk.serving.bodies`). Errors are ``{"error": message,
"error_type": class}`` with a 4xx status for anything the client can fix; a
malformed payload is never a 500, and a 500 says nothing but an incident id
(the details go to the server's log). ``/v1/algo`` keeps its own shape,
``{"error": {"message", "error_type"[, "stacktrace"]}}``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import tusk
from tusk.errors import InputError, NotReady, TuskError, UnsupportedMediaType
from tusk.models.explainers import Attributions
from tusk.services import Services
from tusk.serving.binary import HEADER, BinarySection, split_request
from tusk.serving.bodies import compress, parse_json, read_body, response_coding
from tusk.serving.detectors import Detection
from tusk.serving.explanations import deployment_of, explainer_metadata, explainer_not_ready, explainer_of
from tusk.serving.live import LiveDeployment, Predictor, ServingState
from tusk.serving.metrics import CONTENT_TYPE, METRICS, render, visible
from tusk.serving.reqlog import RequestRecord
from tusk.serving.routing import choose, cookie_name
from tusk.serving.tensors import (
    Rows,
    columns_from_records,
    datatype_of,
    decode_inputs,
    encode_binary_output,
    encode_output,
    rows_from_json,
)

__all__ = ["Explanation", "Handlers", "Inference", "create_app"]

log = logging.getLogger("tusk.serving")

_OUTPUTS = ("predict", "predict_proba")
_INPUT_ERRORS = (ValueError, TypeError, KeyError, IndexError)  # what a model raises on input it cannot take
_SHADOW_BACKLOG = 256  # queued shadow copies beyond this are dropped (and counted), never waited for
_COMPRESS_MIN = 512  # smaller responses are sent as they are: compressing them saves nothing
_COMPRESS_INLINE = 64 << 10  # larger responses are compressed on a worker thread, not on the event loop


def _default(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)  # numpy arrays of objects (string labels), numpy scalars
    if callable(tolist):
        return tolist()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body, default=_default, option=orjson.OPT_SERIALIZE_NUMPY), status, headers,
                    media_type="application/json")


def _internal(exc: BaseException, request: Request) -> str:
    return internal_error(exc, f"{request.method} {request.url.path}")


def internal_error(exc: BaseException, where: str) -> str:
    """Log an unexpected error with its stack trace; the client gets only the incident id (no paths, no code)."""
    incident = secrets.token_hex(4)
    log.error("unexpected error %s in %s", incident, where, exc_info=exc)
    return f"internal error {incident}: the server's log has the details"


def status_of(exc: BaseException) -> int:
    """The HTTP status an error answers with (gRPC maps it to its own codes)."""
    return exc.http_status if isinstance(exc, TuskError) else 500


def _error(exc: BaseException, request: Request) -> Response:
    if isinstance(exc, TuskError):
        return _json({"error": exc.message, "error_type": type(exc).__name__}, exc.http_status)
    return _json({"error": _internal(exc, request), "error_type": "InternalError"}, 500)


def _authorize(request: Request, resource: str) -> None:
    authorize(request.scope.get("tusk_caller"), resource)


def authorize(caller: Any, resource: str) -> None:
    """With auth on (the API server puts the caller in the scope; the gRPC server identifies one from the
    metadata), the caller must be a reader of the deployment or algorithm; serving alone (no caller) is open."""
    if caller is not None:
        caller.require(resource, "reader")


def _may_debug(request: Request, resource: str) -> bool:
    """An algorithm's stack trace (its own frames only) goes to those who may change it: its writers, or
    anyone when there is no auth. Other callers get the message alone."""
    caller = request.scope.get("tusk_caller")
    if caller is None or not caller.state.auth:
        return True
    try:
        caller.require(resource, "writer")
    except TuskError:
        return False
    return True


def _algorithm_rights(request: Request) -> Callable[[str, str, str | None], None] | None:
    """What an algorithm call may do: nested calls with the caller's rights, its model with its publisher's."""
    caller = request.scope.get("tusk_caller")
    if caller is None:
        return None

    def check(resource: str, role: str, user: str | None) -> None:
        if user is None:
            caller.require(resource, role)
        elif caller.state.auth:
            caller.state.roles.check(user, resource, role)

    return check


def _may_read(request: Request) -> Callable[[str], bool]:
    """Whether the caller may read a deployment or algorithm (always, when serving alone with no caller)."""
    caller = request.scope.get("tusk_caller")
    if caller is None:
        return lambda resource: True
    return lambda resource: bool(caller.can(resource, "reader"))


@dataclass(frozen=True)
class Inference:
    """One OIP inference, answered by a model but not yet sent: what REST and gRPC each encode their way."""

    dep: LiveDeployment
    predictor: Predictor
    served: Any  # the Served model that answered
    set_cookie: bool  # REST: (re)set the sticky-routing cookie
    rows: Rows
    wanted: list[tuple[str, bool]]  # the outputs to answer, each with whether REST sends it binary
    outputs: dict[str, Any]  # the model's outputs by name
    parameters: dict[str, Any]  # the response's parameters: predictor, model_repo, global_id, ...
    request_id: str | None

    @property
    def want(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.wanted)

    @property
    def provenance(self) -> dict[str, str]:
        """What answered, as REST sends it in headers and gRPC in trailing metadata."""
        return _headers(self.dep, self.predictor, self.served)


@dataclass(frozen=True)
class Explanation:
    """One explanation, answered by a predictor's explainer but not yet sent (REST and gRPC encode it)."""

    dep: LiveDeployment
    predictor: Predictor
    served: Any  # the Served model whose explainer answered
    set_cookie: bool
    wanted: list[tuple[str, bool]]  # the input columns whose attributions to answer, each with binary or not
    outputs: dict[str, Any]  # attributions by input column
    parameters: dict[str, Any]  # predictor, model_repo, global_id, explainer, method, output, class, base_value
    request_id: str | None

    @property
    def want(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.wanted)

    @property
    def provenance(self) -> dict[str, str]:
        return _headers(self.dep, self.predictor, self.served)


# reads a request's OIP body (a JSON-shaped dict) and its binary tensor data, if any
BodyReader = Callable[[], Awaitable[tuple[Any, BinarySection | None]]]


class Handlers:
    def __init__(self, state: ServingState, max_body_bytes: int) -> None:
        self.state = state
        self.max_body = max_body_bytes
        self._background: set[asyncio.Task[Any]] = set()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- health and metadata -------------------------------------------------
    async def live(self, request: Request) -> Response:
        return _json({"live": True})

    async def ready(self, request: Request) -> Response:
        """Ready once the first load is done and some deployment serves (or none is deployed): one broken
        deployment does not take the others out of a load balancer. ``?strict=true``: every deployment serves.
        Deployments that do not serve are named, with the reason, in ``waiting`` (200 or 400)."""
        strict = request.query_params.get("strict", "").lower() in ("1", "true", "yes")
        state = self.state
        if not state.started.is_set():
            return _json({"ready": False, "waiting": "starting"}, 400)
        problems = state.not_ready()
        ok = state.ready_strict if strict else state.ready
        if not problems:
            return _json({"ready": ok}, 200 if ok else 400)
        may_read = _may_read(request)  # an open route: only deployments the caller may read are named
        waiting = {name: reasons for name, reasons in problems.items() if may_read(f"deployment/{name}")}
        if len(waiting) < len(problems):
            waiting["(others)"] = [f"{len(problems) - len(waiting)} deployment(s) you may not read"]
        return _json({"ready": ok, "waiting": waiting}, 200 if ok else 400)

    async def server_metadata(self, request: Request) -> Response:
        return _json(server_metadata())

    async def model_metadata(self, request: Request) -> Response:
        try:
            name, explain = deployment_of(request.path_params["model"])
            _authorize(request, f"deployment/{name}")
            dep = self.state.get(name)
            return _json(model_metadata(dep, request.path_params.get("version"), explain))
        except Exception as exc:
            return _error(exc, request)

    async def model_ready(self, request: Request) -> Response:
        """200 when every predictor that takes traffic has a model (or the one ``/versions/{v}`` names);
        else 400 with the reason, e.g. the model that failed to load and why."""
        try:
            name, explain = deployment_of(request.path_params["model"])
            _authorize(request, f"deployment/{name}")
            dep = self.state.get(name)
            reason = model_not_ready(dep, request.path_params.get("version"), explain)
        except Exception as exc:
            return _error(exc, request)
        if reason:
            return _json({"name": request.path_params["model"], "ready": False, "reason": reason}, 400)
        return _json({"name": request.path_params["model"], "ready": True})

    async def metrics(self, request: Request) -> Response:
        """Prometheus text; with auth on (a token is needed), only the deployments and algorithms the caller
        may read."""
        text = render()
        if request.scope.get("tusk_caller") is not None:
            text = await asyncio.to_thread(visible, text, _may_read(request))
        return Response(text, media_type=CONTENT_TYPE)

    # -- inference -------------------------------------------------------------
    def _route(self, dep: LiveDeployment, request: Request, version: str | None) -> tuple[Predictor, bool]:
        return self.route(dep, version, request.cookies, request.headers.get("x-tusk-route-key"))

    @staticmethod
    def route(dep: LiveDeployment, version: str | None, cookies: Mapping[str, str],
              route_key: str | None) -> tuple[Predictor, bool]:
        """The predictor for this request, and whether to (re)set the sticky cookie: ``version`` pins one;
        else the traffic split, sticky by the route key or the cookie when the deployment is sticky."""
        if version:
            return dep.by_version(version), False
        pinned = cookies.get(cookie_name(dep.name)) if dep.spec.sticky else None
        key = route_key if dep.spec.sticky else None
        name = choose(dep.weights, draw=random.random(), key=key, pinned=pinned)
        return dep.predictors[name], dep.spec.sticky and pinned != name and not key

    async def infer(self, request: Request) -> Response:
        if deployment_of(request.path_params["model"])[1]:  # {m}:explain, as OIP clients name the explainer
            return await self.explain(request)
        started = time.perf_counter()
        try:
            inference = await self.run_inference(request.scope.get("tusk_caller"), request.path_params["model"],
                                                 request.path_params.get("version"), self._reader(request),
                                                 request.cookies,
                                                 request.headers.get("x-tusk-route-key"), "v2")
        except Exception as exc:
            return _error(exc, request)  # counted by run_inference
        i = inference
        try:
            response, blobs = _oip_response(i.dep.name, i.served.commit, i.wanted, i.outputs, i.parameters,
                                            i.request_id)
            return await self._answer(request, response, blobs, i.dep, i.predictor, i.served, i.set_cookie, i.rows,
                                      i.want, i.outputs, "v2", started, i.request_id)
        except Exception as exc:
            return self._failed(request, i.dep, i.predictor, exc, "v2")

    def _reader(self, request: Request) -> BodyReader:
        """What reads a REST request's body (within the body limit) and splits off its binary tensors."""
        async def read() -> tuple[Any, BinarySection | None]:
            raw = await read_body(request, self.max_body)
            return split_request(raw, request.headers.get(HEADER))

        return read

    async def run_inference(self, caller: Any, model: str, version: str | None, read: BodyReader,
                            cookies: Mapping[str, str], route_key: str | None, protocol: str) -> Inference:
        """An OIP V2 inference, whatever the transport: authorize, read and decode the request, route it
        (version, traffic split, stickiness), predict through the batcher, detect. A failure is counted in the
        metrics and raised; the transport answers it, encodes the outputs, then calls :meth:`after`."""
        dep: LiveDeployment | None = None
        predictor: Predictor | None = None
        try:
            authorize(caller, f"deployment/{model}")
            dep = self.state.get(model)
            body, request_id, params, rows = await _decoded(read)
            wanted = _wanted(body.get("outputs"), params)
            want = tuple(name for name, _ in wanted)
            predictor, set_cookie = self.route(dep, version, cookies, route_key)
            result, served, ignored = await self._predict(dep, predictor, rows, want)
            detection = await self._detect(dep, served, rows, inline=bool(params.get("detect")))
            parameters: dict[str, Any] = {"predictor": predictor.name, "model_repo": served.repo,
                                          "global_id": served.global_id}
            if ignored:
                parameters["ignored_inputs"] = ignored
            if detection is not None:
                parameters.update(_detection(detection))
            return Inference(dep, predictor, served, set_cookie, rows, wanted, result.outputs, parameters,
                             request_id)
        except Exception as exc:
            self.count_failure(dep, predictor, exc, protocol, status_of(exc))
            raise

    # -- explanations ------------------------------------------------------------
    async def explain(self, request: Request) -> Response:
        """Per-column attributions of each row, by the explainer of the model that answers (see
        :mod:`~tusk.serving.explanations`); the response is an OIP inference response."""
        try:
            e = await self.run_explanation(request.scope.get("tusk_caller"), request.path_params["model"],
                                           request.path_params.get("version"), self._reader(request),
                                           request.cookies,
                                           request.headers.get("x-tusk-route-key"), "v2")
        except Exception as exc:
            return _error(exc, request)  # counted by run_explanation
        try:
            response, blobs = _oip_response(request.path_params["model"], e.served.commit, e.wanted, e.outputs,
                                            e.parameters, e.request_id)
            out = await self._respond(request, response, blobs, e.provenance)
        except Exception as exc:
            return self._failed(request, e.dep, e.predictor, exc, "v2-explain")
        if e.set_cookie:
            out.set_cookie(cookie_name(e.dep.name), e.predictor.name, httponly=True, samesite="lax")
        return out

    async def run_explanation(self, caller: Any, model: str, version: str | None, read: BodyReader,
                              cookies: Mapping[str, str], route_key: str | None, protocol: str) -> Explanation:
        """An explanation, whatever the transport: authorize, read and decode the request as an inference, route
        it as one, then explain the rows with the answering model's explainer (on a worker thread: it costs more
        than a prediction, and is not batched). ``model`` is ``m`` or ``m:explain``. Counted in the metrics
        with protocol ``{protocol}-explain``; not logged, not shadowed."""
        dep: LiveDeployment | None = None
        predictor: Predictor | None = None
        protocol = f"{protocol}-explain"
        try:
            name, _ = deployment_of(model)
            authorize(caller, f"deployment/{name}")
            dep = self.state.get(name)
            body, request_id, params, rows = await _decoded(read)
            predictor, set_cookie = self.route(dep, version, cookies, route_key)
            served = predictor.current()
            explainer = explainer_of(dep, predictor, served)
            ignored = rows.check(served.feature_names, served.n_features)
            columns = tuple(explainer.columns)
            wanted = _wanted(body.get("outputs"), params, columns, columns, "this explainer")
            target = params.get("class")
            if target is not None and not isinstance(target, str | int):
                raise InputError(f"parameters.class must be a class label, got {target!r}")
            x = rows.model_input(served.feature_names)
            try:
                attributions: Attributions = await asyncio.to_thread(explainer.explain, x, target)
            except _INPUT_ERRORS as exc:
                raise InputError(f"the model rejected the input: {exc}") from exc
            parameters: dict[str, Any] = {"predictor": predictor.name, "model_repo": served.repo,
                                          "global_id": served.global_id, "explainer": explainer.path,
                                          "method": attributions.method, "output": attributions.output,
                                          "base_value": attributions.base_value}
            if attributions.target is not None:
                parameters["class"] = attributions.target
            if ignored:
                parameters["ignored_inputs"] = ignored
            outputs = {c: attributions.values[:, i] for i, c in enumerate(attributions.columns)}
            served.metric("requests", protocol, "200").inc()
            return Explanation(dep, predictor, served, set_cookie, wanted, outputs, parameters, request_id)
        except Exception as exc:
            self.count_failure(dep, predictor, exc, protocol, status_of(exc))
            raise

    async def invocations(self, request: Request) -> Response:
        """MLflow scoring protocol: ``{"predictions": [...]}``."""
        started = time.perf_counter()
        dep: LiveDeployment | None = None
        predictor: Predictor | None = None
        try:
            dep = self._invocation_target(request)
            _authorize(request, f"deployment/{dep.spec.name}")
            rows = await _invocation_rows(request, self.max_body)
            predictor, set_cookie = self._route(dep, request, None)
            want = ("predict",)
            result, served, _ = await self._predict(dep, predictor, rows, want)
            await self._detect(dep, served, rows, inline=False)
            return await self._answer(request, {"predictions": result.outputs["predict"]}, [], dep, predictor,
                                      served, set_cookie, rows, want, result.outputs, "invocations", started,
                                      None)
        except Exception as exc:
            return self._failed(request, dep, predictor, exc, "invocations")

    def _invocation_target(self, request: Request) -> LiveDeployment:
        name = request.path_params.get("model") or request.headers.get("x-tusk-deployment")
        if name:
            return self.state.get(name)
        if len(self.state.deployments) == 1:
            return next(iter(self.state.deployments.values()))
        raise InputError("several deployments are served here: name one with the X-Tusk-Deployment header or "
                         "POST /deployments/{name}/invocations")

    async def _predict(self, dep: LiveDeployment, predictor: Predictor, rows: Rows,
                       want: tuple[str, ...]) -> tuple[Any, Any, list[str]]:
        """(batch output, the Served model that answered, input columns the model does not use)."""
        served = predictor.current()
        ignored = rows.check(served.feature_names, served.n_features)
        result = await predictor.batcher.submit(rows, frozenset(want))
        return result, result.served_by, ignored

    async def _detect(self, dep: LiveDeployment, served: Any, rows: Rows, inline: bool) -> Detection | None:
        detectors = dep.detectors
        if detectors is None:
            if inline and dep.detector_error:
                raise NotReady(dep.detector_error)
            return None
        def observe() -> Detection:  # on the detector thread, DataFrame included: nothing here blocks the loop
            detection, report = detectors.observe(rows.frame(served.feature_names or detectors.features))
            if detection.outlier is not None:
                served.metric("scored").inc(len(detection.outlier))
                served.metric("outliers").inc(sum(detection.outlier))
            if report is not None:
                METRICS.drift_tests.labels(dep.name).inc()
                METRICS.drift.labels(dep.name).set(1 if report.drift else 0)
                for feature, p in report.p_values.items():
                    METRICS.drift_p.labels(dep.name, feature).set(p)
            return detection

        future = asyncio.get_running_loop().run_in_executor(self.state.detector_pool, observe)
        if inline:
            return await future
        future.add_done_callback(_log_failure)
        return None

    async def _answer(self, request: Request, doc: dict[str, Any], blobs: list[bytes], dep: LiveDeployment,
                      predictor: Predictor, served: Any, set_cookie: bool, rows: Rows, want: tuple[str, ...],
                      outputs: dict[str, Any], protocol: str, started: float, request_id: str | None) -> Response:
        """The response with provenance headers (and the sticky cookie), its binary outputs after the JSON, and
        compressed if the client asks; then metrics, log and shadow copy."""
        out = await self._respond(request, doc, blobs, _headers(dep, predictor, served))
        if set_cookie:
            out.set_cookie(cookie_name(dep.name), predictor.name, httponly=True, samesite="lax")
        self._after(dep, predictor, served, rows, want, outputs, protocol, started, request_id)
        return out

    @staticmethod
    async def _respond(request: Request, doc: dict[str, Any], blobs: list[bytes], headers: dict[str, str]
                       ) -> Response:
        """The JSON document with its binary outputs after it, compressed if the client asks."""
        content = orjson.dumps(doc, default=_default, option=orjson.OPT_SERIALIZE_NUMPY)
        media_type = "application/json"
        if blobs:  # the binary tensor data extension: the JSON's length in a header, the tensors after it
            headers[HEADER] = str(len(content))
            content = b"".join([content, *blobs])
            media_type = "application/octet-stream"
        coding = response_coding(request.headers.get("accept-encoding"))
        headers["vary"] = "Accept-Encoding"
        # compressed whole, binary tensors too: Inference-Header-Content-Length stays the uncompressed JSON's length
        if coding is not None and len(content) >= _COMPRESS_MIN:
            content = (await asyncio.to_thread(compress, content, coding) if len(content) > _COMPRESS_INLINE
                       else compress(content, coding))
            headers["content-encoding"] = coding
        return Response(content, 200, headers, media_type=media_type)

    def after(self, inference: Inference, protocol: str, started: float) -> None:
        """Once the answer is encoded: metrics, the request log and the shadow copy (none awaited)."""
        i = inference
        self._after(i.dep, i.predictor, i.served, i.rows, i.want, i.outputs, protocol, started, i.request_id)

    def _after(self, dep: LiveDeployment, predictor: Predictor, served: Any, rows: Rows, want: tuple[str, ...],
               outputs: dict[str, Any], protocol: str, started: float, request_id: str | None) -> None:
        """Metrics, the request log and the shadow copy: all after the answer is ready, none awaited."""
        elapsed = time.perf_counter() - started
        served.metric("requests", protocol, "200").inc()
        served.metric("latency").observe(elapsed)
        served.metric("rows").inc(rows.n)
        if dep.log is not None:
            record = _log_record(dep, predictor, served, protocol, elapsed, rows, outputs, want)
            record["id"] = request_id
            dep.log.record(record)
        shadow = dep.shadow
        if shadow is not None:
            if shadow.batcher.pending >= _SHADOW_BACKLOG or shadow.served is None:
                METRICS.shadow.labels(dep.name, shadow.name, "", "dropped").inc()
            else:
                self._spawn(self._shadow(dep, shadow, rows, want, protocol))

    async def _shadow(self, dep: LiveDeployment, shadow: Predictor, rows: Rows, want: tuple[str, ...],
                      protocol: str) -> None:
        started = time.perf_counter()
        try:
            result, served, _ = await self._predict(dep, shadow, rows, want)
        except Exception as exc:
            version = shadow.served.commit if shadow.served else ""
            METRICS.shadow.labels(dep.name, shadow.name, version, "error").inc()
            if dep.log is not None:
                dep.log.record(RequestRecord(ts=time.time(), deployment=dep.name, revision=dep.revision,
                                             predictor=shadow.name, shadow=True, protocol=protocol, error=str(exc),
                                             inputs=rows))
            return
        served.metric("shadow", "ok").inc()
        if dep.log is not None:
            dep.log.record(_log_record(dep, shadow, served, protocol, time.perf_counter() - started, rows,
                                       result.outputs, want))

    @classmethod
    def _failed(cls, request: Request, dep: LiveDeployment | None, predictor: Predictor | None, exc: BaseException,
                protocol: str) -> Response:
        """Count the failure against what was chosen so far, and answer ``{"error": ..., "error_type": ...}``."""
        response = _error(exc, request)
        cls.count_failure(dep, predictor, exc, protocol, response.status_code)
        return response

    @staticmethod
    def count_failure(dep: LiveDeployment | None, predictor: Predictor | None, exc: BaseException, protocol: str,
                      status: int) -> None:
        """A failed request in the metrics, against the deployment and predictor chosen so far."""
        name = dep.name if dep else ""
        pname = predictor.name if predictor else ""
        version = predictor.served.commit if predictor and predictor.served else ""
        METRICS.errors.labels(name, pname, version, type(exc).__name__).inc()
        METRICS.requests.labels(name, pname, version, protocol, str(status)).inc()

    # -- algorithms ------------------------------------------------------------
    async def algo(self, request: Request) -> Response:
        p = request.path_params
        ref = f"{p['owner']}/{p['name']}" + (f"/{p['version']}" if p.get("version") else "")
        outcome = "ok"
        try:
            _authorize(request, f"algorithm/{p['owner']}/{p['name']}")
            data = _algo_input(request.headers.get("content-type"), await read_body(request, self.max_body))
            response = await asyncio.to_thread(self.state.services.algorithms.call, ref, data, None, 0,
                                               _algorithm_rights(request))
            result = response.result
            meta = dict(response.metadata, content_type="json")
            if isinstance(result, bytes):
                result, meta["content_type"] = base64.b64encode(result).decode(), "binary"
            elif isinstance(result, str):
                meta["content_type"] = "text"
            return _json({"result": result, "metadata": meta})
        except TuskError as exc:
            outcome = type(exc).__name__
            err: dict[str, Any] = {"message": exc.message, "error_type": type(exc).__name__}
            if getattr(exc, "stacktrace", None) and _may_debug(request, f"algorithm/{p['owner']}/{p['name']}"):
                err["stacktrace"] = exc.stacktrace  # type: ignore[attr-defined]  # its own frames, for its authors
            return _json({"error": err}, exc.http_status)
        except Exception as exc:
            outcome = "InternalError"
            return _json({"error": {"message": _internal(exc, request), "error_type": "InternalError"}}, 500)
        finally:
            METRICS.algo_calls.labels(f"{p['owner']}/{p['name']}", p.get("version") or "latest", outcome).inc()


_ALGO_TYPES = "application/json (the default), text/* (UTF-8 unless its charset says otherwise) or " \
              "application/octet-stream (bytes)"


def _algo_input(content_type: str | None, raw: bytes) -> Any:
    """An algorithm's input by Content-Type: JSON (also without one), text, or bytes; others are refused."""
    ctype, *params = (part.strip() for part in (content_type or "application/json").split(";"))
    ctype = ctype.lower()
    if ctype == "application/json" or (ctype.startswith("application/") and ctype.endswith("+json")):
        return parse_json(raw) if raw else None
    if ctype.startswith("text/"):
        charset = next((v.strip('"') for k, _, v in (p.partition("=") for p in params) if k.lower() == "charset"),
                       "utf-8")
        try:
            return raw.decode(charset)
        except LookupError:
            raise UnsupportedMediaType(f"unknown charset {charset!r} in Content-Type {ctype}") from None
        except UnicodeDecodeError as exc:
            raise InputError(f"the {ctype} body is not {charset} text (byte {exc.start} is {raw[exc.start]:#04x}); "
                             "send bytes as application/octet-stream") from None
    if ctype == "application/octet-stream":
        return raw
    raise UnsupportedMediaType(f"an algorithm takes {_ALGO_TYPES}, not {ctype}")


async def _decoded(read: BodyReader) -> tuple[dict[str, Any], str | None, dict[str, Any], Rows]:
    """An OIP request read and checked: (body, its id, its parameters, its input rows)."""
    body, binary = await read()
    if not isinstance(body, dict):
        raise InputError("the request body must be a JSON object with inputs")
    request_id = _request_id(body)
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        raise InputError("parameters must be an object")
    return body, request_id, params, decode_inputs(body.get("inputs"), binary)


def _oip_response(model: str, version: str, wanted: Sequence[tuple[str, bool]], values: Mapping[str, Any],
                  parameters: dict[str, Any], request_id: str | None) -> tuple[dict[str, Any], list[bytes]]:
    """An OIP REST response body and its binary sections: the wanted outputs, each as JSON or binary."""
    outputs, blobs = [], []
    for name, as_binary in wanted:
        if as_binary:
            tensor, blob = encode_binary_output(name, values[name])
            outputs.append(tensor)
            blobs.append(blob)
        else:
            outputs.append(encode_output(name, values[name]))
    response: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": outputs,
                                "parameters": parameters}
    if request_id is not None:
        response["id"] = request_id
    return response, blobs


def _request_id(body: dict[str, Any]) -> str | None:
    """The request's ``id``: a string if given (OIP), echoed in the response."""
    if "id" not in body:
        return None
    value = body["id"]
    if not isinstance(value, str):
        kind = {bool: "a boolean", int: "a number", float: "a number", list: "an array", dict: "an object"}.get(
            type(value), "null")
        raise InputError(f"id must be a string (it is echoed in the response), got {kind}")
    return value


def server_metadata() -> dict[str, Any]:
    return {"name": "tusk", "version": tusk.__version__,
            "extensions": ["binary_tensor_data", "tusk_invocations", "tusk_algorithms", "tusk_metrics",
                           "tusk_explain"]}


def model_metadata(dep: LiveDeployment, version: str | None, explain: bool = False) -> dict[str, Any]:
    """OIP model metadata of a deployment, or of the one predictor a version names (``explain``: of its
    explainer, the model ``{m}:explain``)."""
    predictors = [dep.by_version(version)] if version else list(dep.predictors.values())
    doc = _metadata(dep, predictors)
    return explainer_metadata(doc, predictors) if explain else doc


def model_not_ready(dep: LiveDeployment, version: str | None, explain: bool = False) -> str | None:
    """Why the deployment (or the predictor a version names, or with ``explain`` its explainer) cannot answer
    yet; None when it can."""
    predictors = [dep.by_version(version)] if version else list(dep.predictors.values())
    if explain:
        return explainer_not_ready(dep, predictors)
    reasons = [f"predictor {p.name}: {p.error or 'loading'}" for p in predictors if p.served is None]
    return "; ".join(reasons) or None


def _log_record(dep: LiveDeployment, predictor: Predictor, served: Any, protocol: str, elapsed: float, rows: Rows,
                outputs: dict[str, Any], want: tuple[str, ...]) -> RequestRecord:
    """What the request log keeps of one answer (main or shadow): who answered, with which model, and the data."""
    return RequestRecord(ts=time.time(), deployment=dep.name, revision=dep.revision, predictor=predictor.name,
                         model_repo=served.repo, model_commit=served.commit, model_branch=predictor.follows or "",
                         global_id=served.global_id, protocol=protocol, shadow=predictor is dep.shadow,
                         latency_ms=round(elapsed * 1000, 3), inputs=rows, outputs={k: outputs[k] for k in want})


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("detector failed: %s", future.exception())


def _flag(params: dict[str, Any], key: str, where: str, default: bool) -> bool:
    value = params.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InputError(f"{where}{key} must be true or false, got {value!r}")
    return value


def _wanted(outputs: Any, params: dict[str, Any], known: tuple[str, ...] = _OUTPUTS,
            default: tuple[str, ...] = ("predict",), what: str = "this model") -> list[tuple[str, bool]]:
    """The outputs to answer (of ``known``; ``default`` when none are named), each with whether it goes binary:
    its own ``parameters.binary_data``, else the request's ``parameters.binary_data_output`` (the binary
    tensor data extension)."""
    binary = _flag(params, "binary_data_output", "parameters.", False)
    if outputs is None:
        return [(name, binary) for name in default]
    if not isinstance(outputs, list) or not outputs:
        raise InputError("outputs must be a non-empty list of {\"name\": ...}")
    wanted: list[tuple[str, bool]] = []
    for i, o in enumerate(outputs):
        name = o.get("name") if isinstance(o, dict) else None
        if name not in known:
            raise InputError(f"outputs[{i}]: unknown output {name!r}; {what} has {', '.join(known)}")
        if any(name == seen for seen, _ in wanted):
            raise InputError(f"outputs[{i}]: {name} is requested twice")
        out_params = o.get("parameters") or {}
        if not isinstance(out_params, dict):
            raise InputError(f"outputs[{i}].parameters must be an object")
        for key, extension in (("classification", "classification"), ("shared_memory_region", "shared memory")):
            if out_params.get(key) is not None:
                raise InputError(f"outputs[{i}]: the {extension} extension is not supported here; "
                                 f"ask for {name} without parameters.{key}")
        wanted.append((name, _flag(out_params, "binary_data", f"outputs[{i}].parameters.", binary)))
    return wanted


def _headers(dep: LiveDeployment, predictor: Predictor, served: Any) -> dict[str, str]:
    return {"x-tusk-deployment-revision": str(dep.revision), "x-tusk-predictor": predictor.name,
            "x-tusk-model-repo": served.repo, "x-tusk-model-commit": served.commit,
            "x-tusk-global-id": served.global_id}


def _detection(d: Detection) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if d.outlier is not None:
        out["outlier"] = d.outlier
        out["outlier_score"] = d.outlier_score
    if d.drift is not None:
        out["drift"] = {"detected": d.drift.drift, "p_values": d.drift.p_values, "threshold": d.drift.threshold,
                        "window": d.drift.window}
    return out


def _metadata(dep: LiveDeployment, predictors: list[Predictor]) -> dict[str, Any]:
    served = next((p.served for p in predictors if p.served is not None), None)
    inputs: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    if served is not None:
        inputs = _input_tensors(served)
        impl = served.model.impl
        classes = served.model.classes  # a classifier's labels; a regressor predicts floats
        declared = getattr(impl, "oip_outputs", None) or {}  # what the model says it returns (ONNX: its graph)
        label_type = declared.get("predict") or (datatype_of(np.asarray(classes)) if classes is not None else "FP64")
        outputs.append({"name": "predict", "datatype": label_type, "shape": [-1]})
        if served.model.has_predict_proba:
            outputs.append({"name": "predict_proba", "datatype": declared.get("predict_proba", "FP64"),
                            "shape": [-1, len(classes) if classes is not None else -1]})
    return {
        "name": dep.name,
        "versions": [p.served.commit for p in predictors if p.served is not None],
        "platform": f"tusk-{served.model.flavor}" if served else "tusk",
        "inputs": inputs,
        "outputs": outputs,
        "parameters": {"revision": dep.revision,
                       "predictors": [{"name": p.name, "model": p.spec.model, "weight": p.spec.weight,
                                       "commit": p.served.commit if p.served else None, "error": p.error}
                                      for p in predictors],
                       "shadow": dep.shadow.spec.model if dep.shadow else None},
    }


def _input_tensors(served: Any) -> list[dict[str, Any]]:
    """Input tensors: one per named feature (typed from the model's column transformer when it has one)."""
    if served.feature_names is None:
        declared = list((getattr(served.model.impl, "oip_inputs", None) or {}).values())
        return [{"name": "input-0", "datatype": declared[0] if len(declared) == 1 else "FP64",
                 "shape": [-1, served.n_features or -1]}]
    types = {**_feature_types(served.model.impl), **(getattr(served.model.impl, "oip_inputs", None) or {})}
    return [{"name": f, "datatype": types.get(f, "FP64"), "shape": [-1]} for f in served.feature_names]


def _feature_types(impl: Any) -> dict[str, str]:
    """BYTES for columns an sklearn ColumnTransformer one-hot/ordinal-encodes with string categories."""
    steps = [impl, *getattr(impl, "named_steps", {}).values()]
    out: dict[str, str] = {}
    for step in steps:
        for _, transformer, columns in getattr(step, "transformers_", []):
            inner = getattr(transformer, "steps", [(None, transformer)])[-1][1]
            categories = getattr(inner, "categories_", None)
            if categories is None or not isinstance(columns, list):
                continue
            for column, cats in zip(columns, categories, strict=False):
                if getattr(cats, "dtype", None) is not None and cats.dtype.kind in "OUS":
                    out[str(column)] = "BYTES"
    return out


async def _invocation_rows(request: Request, max_body: int) -> Rows:
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip()
    raw = await read_body(request, max_body)
    if ctype == "text/csv":
        from tusk.models.inputs import read_rows

        frame = read_rows(raw, "request.csv")
        if isinstance(frame, list):
            return rows_from_json(frame, "CSV")
        return columns_from_records(list(frame.columns), frame.to_numpy().tolist())
    body = parse_json(raw)
    if not isinstance(body, dict) or (len(body) != 1 and not ({"dataframe_split", "params"} >= set(body)
                                                            or {"dataframe_records", "params"} >= set(body)
                                                            or {"instances", "params"} >= set(body)
                                                            or {"inputs", "params"} >= set(body))):
        raise InputError("the body must have exactly one of dataframe_split, dataframe_records, instances, inputs")
    if "dataframe_split" in body:
        split = body["dataframe_split"]
        if not isinstance(split, dict) or not isinstance(split.get("columns"), list) \
                or not isinstance(split.get("data"), list):
            raise InputError("dataframe_split needs columns (a list of names) and data (a list of rows)")
        return columns_from_records(split["columns"], split["data"])
    for key in ("dataframe_records", "instances", "inputs"):
        if key in body:
            return rows_from_json(body[key], key)
    raise InputError("the body must have one of dataframe_split, dataframe_records, instances, inputs")


def create_app(services: Services, deployments: list[str] | None = None, poll: float = 1.0,
               request_logging: bool = True, close_services: bool = False,
               max_body_bytes: int | None = None) -> Starlette:
    """The serving app. Startup loads every deployment's models (verified) before the first request; later
    deployments and branch moves are loaded by a watcher thread, and ``/v2/health/ready`` says whether they
    serve. ``max_body_bytes``: the largest request body, also once decompressed (default: the settings'
    ``TUSK_SERVING_MAX_BODY_BYTES``)."""
    state = ServingState(services, deployments, poll, request_logging)
    h = Handlers(state, max_body_bytes or services.settings.serving_max_body_bytes)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await asyncio.to_thread(state.start, asyncio.get_running_loop())
        try:
            yield
        finally:
            await asyncio.to_thread(state.stop)
            for dep in state.deployments.values():
                for p in dep.all_predictors():
                    await p.batcher.close()
            if close_services:
                services.close()

    routes: list[Route] = []

    def add(path: str, endpoint: Callable[[Request], Awaitable[Response]], methods: list[str]) -> None:
        routes.append(Route(path, endpoint, methods=methods))

    add("/v2/health/live", h.live, ["GET"])
    add("/v2/health/ready", h.ready, ["GET"])
    add("/v2", h.server_metadata, ["GET"])
    add("/v2/models/{model}", h.model_metadata, ["GET"])
    add("/v2/models/{model}/versions/{version}", h.model_metadata, ["GET"])
    add("/v2/models/{model}/ready", h.model_ready, ["GET"])
    add("/v2/models/{model}/versions/{version}/ready", h.model_ready, ["GET"])
    add("/v2/models/{model}/infer", h.infer, ["POST"])
    add("/v2/models/{model}/versions/{version}/infer", h.infer, ["POST"])
    add("/v2/models/{model}/explain", h.explain, ["POST"])
    add("/v2/models/{model}/versions/{version}/explain", h.explain, ["POST"])
    add("/invocations", h.invocations, ["POST"])
    add("/deployments/{model}/invocations", h.invocations, ["POST"])
    add("/metrics", h.metrics, ["GET"])
    add("/v1/algo/{owner}/{name}", h.algo, ["POST"])
    add("/v1/algo/{owner}/{name}/{version}", h.algo, ["POST"])
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.serving = state
    app.state.handlers = h  # what the gRPC endpoint (tusk.serving.grpc) answers with

    async def not_found(request: Request, exc: Exception) -> Response:
        return _json({"error": f"no such endpoint: {request.method} {request.url.path}", "error_type": "NotFound"},
                     404)

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return _json({"error": f"{request.method} is not allowed on {request.url.path}",
                      "error_type": "HTTPError"}, 405)

    async def unexpected(request: Request, exc: Exception) -> Response:
        """Anything a handler did not answer: a JSON 500 with an incident id, never a stack trace."""
        return _json({"error": _internal(exc, request), "error_type": "InternalError"}, 500)

    app.add_exception_handler(404, not_found)
    app.add_exception_handler(405, not_allowed)
    app.add_exception_handler(Exception, unexpected)
    return app

