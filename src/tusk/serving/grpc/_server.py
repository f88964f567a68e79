"""The OIP V2 gRPC endpoint: ``inference.GRPCInferenceService`` on the REST server's event loop (grpc.aio).

Every call goes through the REST endpoint's code (:class:`tusk.serving.app.Handlers`): the same routing
(version pin, traffic split, stickiness by the ``x-tusk-route-key`` metadata), batching, shadow copy, detectors,
metrics (protocol ``grpc``), request log and errors. What answered an inference goes out as trailing metadata,
with the names REST gives its headers (``x-tusk-model-commit``, ...). A deployment's explainer is the model
``{m}:explain`` (OIP has no explain call): ModelInfer on it answers REST's ``/explain``.

Auth as REST: with auth on, a token in the ``authorization: Bearer TOKEN`` metadata, and the caller must be a
reader of the deployment; ServerLive and ServerReady are open, as ``/v2/health/*`` are. Errors are gRPC status
codes with the REST message; an unexpected one says nothing but an incident id (the server's log has the rest).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc  # type: ignore[import-untyped]

from tusk.errors import InvalidArgument, TuskError
from tusk.serving.app import (
    Explanation,
    Handlers,
    authorize,
    internal_error,
    model_metadata,
    model_not_ready,
    server_metadata,
    status_of,
)
from tusk.serving.explanations import deployment_of
from tusk.serving.grpc import grpc_predict_v2_pb2 as pb
from tusk.serving.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from tusk.serving.grpc._codec import infer_response, metadata_response, request_body

__all__ = ["GrpcEndpoint", "Identify"]

log = logging.getLogger("tusk.serving")

# who calls, from the call's metadata (lower-case keys): a caller for authorize(), or None when serving alone;
# raises Unauthenticated. ServerLive and ServerReady ask no one.
Identify = Callable[[Mapping[str, str]], Awaitable[Any]]

_CODES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
          409: "FAILED_PRECONDITION", 413: "RESOURCE_EXHAUSTED", 415: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED",
          501: "UNIMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


async def _no_auth(metadata: Mapping[str, str]) -> Any:
    return None


def _metadata(context: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}


class _Service(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, handlers: Handlers, identify: Identify) -> None:
        self.h = handlers
        self.identify = identify

    async def _call(self, context: Any, method: str, answer: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await answer()
        except Exception as exc:
            status = status_of(exc)
            code = getattr(grpc.StatusCode, _CODES.get(status, "INTERNAL"))
            # as REST: a Tusk error says what was wrong; anything else only an incident id
            message = exc.message if isinstance(exc, TuskError) else internal_error(exc, f"gRPC {method}")
        await context.abort(code, message)  # raises: the call ends with this status

    async def ServerLive(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        state = self.h.state
        return pb.ServerReadyResponse(ready=state.started.is_set() and state.ready)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        async def answer() -> Any:
            await self.identify(_metadata(context))
            return pb.ServerMetadataResponse(**server_metadata())

        return await self._call(context, "ServerMetadata", answer)

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        async def answer() -> Any:
            name, explain = deployment_of(request.name)
            authorize(await self.identify(_metadata(context)), f"deployment/{name}")
            return metadata_response(model_metadata(self.h.state.get(name), request.version or None, explain))

        return await self._call(context, "ModelMetadata", answer)

    async def ModelReady(self, request: Any, context: Any) -> Any:
        async def answer() -> Any:
            name, explain = deployment_of(request.name)
            authorize(await self.identify(_metadata(context)), f"deployment/{name}")
            dep = self.h.state.get(name)
            return pb.ModelReadyResponse(ready=model_not_ready(dep, request.version or None, explain) is None)

        return await self._call(context, "ModelReady", answer)

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        async def answer() -> Any:
            started = time.perf_counter()
            metadata = _metadata(context)
            caller = await self.identify(metadata)

            async def read() -> Any:
                return request_body(request)

            if deployment_of(request.model_name)[1]:
                return await self._explain(context, request, caller, metadata, read)
            i = await self.h.run_inference(caller, request.model_name, request.model_version or None, read, {},
                                           metadata.get("x-tusk-route-key"), "grpc")
            try:
                response = infer_response(i.dep.name, i.served.commit, i.request_id, i.parameters, i.want,
                                          i.outputs)
            except Exception as exc:
                self.h.count_failure(i.dep, i.predictor, exc, "grpc", status_of(exc))
                raise
            context.set_trailing_metadata(tuple(i.provenance.items()))
            self.h.after(i, "grpc", started)
            return response

        return await self._call(context, "ModelInfer", answer)

    async def _explain(self, context: Any, request: Any, caller: Any, metadata: Mapping[str, str],
                       read: Callable[[], Awaitable[Any]]) -> Any:
        e: Explanation = await self.h.run_explanation(caller, request.model_name, request.model_version or None,
                                                      read, {}, metadata.get("x-tusk-route-key"), "grpc")
        try:
            response = infer_response(request.model_name, e.served.commit, e.request_id, e.parameters, e.want,
                                      e.outputs)
        except Exception as exc:
            self.h.count_failure(e.dep, e.predictor, exc, "grpc-explain", status_of(exc))
            raise
        context.set_trailing_metadata(tuple(e.provenance.items()))
        return response


class GrpcEndpoint:
    """The gRPC server of one serving process. ``reuse_port``: several worker processes share the port (the
    kernel spreads connections); off, a port already taken is an error rather than a silent share."""

    def __init__(self, handlers: Handlers, host: str, port: int, identify: Identify | None = None,
                 reuse_port: bool = False) -> None:
        self.handlers = handlers
        self.host, self.port = host, port
        self.identify = identify or _no_auth
        self.reuse_port = reuse_port
        self._server: Any = None

    async def start(self) -> int:
        """Listen and serve; returns the port (the one chosen, for port 0)."""
        options = [("grpc.max_receive_message_length", self.handlers.max_body),
                   ("grpc.so_reuseport", 1 if self.reuse_port else 0)]
        server = grpc.aio.server(options=options)
        register: Any = pb_grpc.add_GRPCInferenceServiceServicer_to_server  # generated, untyped
        register(_Service(self.handlers, self.identify), server)
        address = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        try:
            bound = int(server.add_insecure_port(address))
        except RuntimeError:
            bound = 0
        if not bound and self.port:
            raise InvalidArgument(f"cannot serve gRPC on {address}: the port is taken (or the host is not this "
                                  "machine's); pass --grpc-port N for another port, or --no-grpc")
        await server.start()
        self._server, self.port = server, bound
        log.info("OIP gRPC endpoint on %s:%d", self.host, bound)
        return bound

    async def stop(self, grace: float) -> None:
        """Refuse new calls, let those in flight finish (up to ``grace`` seconds), then close."""
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
