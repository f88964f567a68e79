"""``create_s3_app(services)``: the S3 gateway, a Starlette app speaking the S3 REST API (path-style).

Each request is authenticated (SigV4; anonymous when auth is off), then routed by method, bucket, key and
query to one operation in ``reads`` or ``writes``. Operations are blocking code over the operations client
the REST API uses (``tusk.sdk.Client`` on the server's services), run in worker threads; a request body
reaches them as a file while it arrives (``tusk.api._body.with_body``), so uploads of any size stream.
Every failure is an S3 XML error document.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tusk.api._body import with_body
from tusk.auth import RoleService
from tusk.errors import TuskError
from tusk.s3gateway import reads, sigv4, writes
from tusk.s3gateway.calls import Call, Shared
from tusk.s3gateway.credentials import lookup_secret
from tusk.s3gateway.errors import S3Error, from_tusk
from tusk.s3gateway.multipart import Uploads
from tusk.s3gateway.outbucket import OUT_BUCKET, DatumScope, route_out
from tusk.s3gateway.payloads import ChunkSigner
from tusk.s3gateway.xmldocs import error_document
from tusk.sdk import Client
from tusk.services import Services
from tusk.versioning.context import acting_as

__all__ = ["create_s3_app"]

log = logging.getLogger("tusk.s3gateway")

Operation = Callable[[Call], Response]
BodyOperation = Callable[[Call, IO[bytes]], Response]

# Subresources S3 has and this gateway does not serve: NotImplemented, rather than a wrong answer.
_UNSERVED = frozenset({"acl", "tagging", "policy", "cors", "lifecycle", "website", "logging", "notification",
                       "replication", "encryption", "object-lock", "retention", "legal-hold", "torrent", "restore",
                       "select", "accelerate", "requestPayment", "analytics", "inventory", "metrics",
                       "ownershipControls", "publicAccessBlock", "intelligent-tiering", "versions", "attributes",
                       "policyStatus", "uploads-list"})


def _route(call: Call) -> tuple[Operation | None, BodyOperation | None]:
    """The operation a request asks for: (one without a body, one that reads it); MethodNotAllowed if none."""
    m, q = call.method, call.query
    unserved = _UNSERVED & q.keys()
    if unserved:
        raise S3Error("NotImplemented", f"?{sorted(unserved)[0]} is not served by the Tusk S3 gateway")
    if not call.bucket_name:
        if m == "GET":
            return reads.list_buckets_op, None
    elif not call.key:
        if m == "GET":
            if "location" in q:
                return reads.get_bucket_location, None
            if "versioning" in q:
                return reads.get_bucket_versioning, None
            if "uploads" in q:
                raise S3Error("NotImplemented", "ListMultipartUploads is not served: abort an upload by its id")
            return (lambda c: reads.list_objects(c, v2=q.get("list-type") == "2")), None
        if m == "HEAD":
            return reads.head_bucket, None
        if m in ("PUT", "DELETE") and q:  # PutBucketVersioning and the like: configuration is not served
            raise S3Error("NotImplemented", f"{m} /{call.bucket_name}?{sorted(q)[0]} is not served by the Tusk "
                                            "S3 gateway")
        if m == "PUT":
            return writes.create_bucket, None
        if m == "DELETE":
            return writes.delete_bucket, None
        if m == "POST" and "delete" in q:
            return None, writes.delete_objects
    else:
        upload = "uploadId" in q
        if m in ("GET", "HEAD") and not upload:
            return (lambda c: reads.get_object(c, head=m == "HEAD")), None
        if m == "GET":
            return writes.list_parts, None
        if m == "PUT":
            copy = "x-amz-copy-source" in call.headers
            if upload or "partNumber" in q:
                if not (upload and "partNumber" in q):
                    raise S3Error("InvalidArgument", "UploadPart needs both partNumber and uploadId")
                return (writes.upload_part_copy, None) if copy else (None, writes.upload_part)
            return (writes.copy_object, None) if copy else (None, writes.put_object)
        if m == "POST":
            if "uploads" in q:
                return writes.create_upload, None
            if upload:
                return None, writes.complete_upload
        if m == "DELETE":
            return (writes.abort_upload if upload else writes.delete_object), None
    raise S3Error("MethodNotAllowed", f"{m} is not allowed on this resource")


class Gateway:
    def __init__(self, services: Services, auth: bool, spool: Path, scope: DatumScope | None = None) -> None:
        self.services = services
        self.scope = scope
        self.shared = Shared(ops=Client(services=services, run_jobs=False), auth=auth,
                             roles=RoleService(services.ctx), uploads=Uploads(spool),
                             buckets=scope.inputs if scope is not None else None,
                             keys=scope.keys if scope is not None else None)

    def _call(self, request: Request) -> Call:
        """Who is calling (the signature checked), and what they ask; S3Error if the signature is wrong."""
        raw_headers: dict[str, list[str]] = {}
        for k, v in request.scope["headers"]:
            raw_headers.setdefault(k.decode("latin-1").lower(), []).append(v.decode("latin-1"))
        headers = {k: ",".join(v) for k, v in raw_headers.items()}
        query_pairs = sigv4.parse_query(request.scope.get("query_string", b"").decode("latin-1"))
        query = dict(query_pairs)
        path = request.scope["path"]
        bucket, _, key = path[1:].partition("/")
        sig = sigv4.parse_signature(headers, query_pairs)
        user = self.services.ctx.default_user
        signer = None
        if self.shared.keys is not None:  # a datum's endpoint: its own key, whatever the server's auth
            if sig is None:
                raise S3Error("AccessDenied", "this datum's S3 endpoint requires requests signed with the key in "
                                              "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY")
            if sig.credential.access_key not in self.shared.keys:
                raise S3Error("InvalidAccessKeyId", "that access key is not this datum's: use AWS_ACCESS_KEY_ID")
            user, secret = self.shared.keys[sig.credential.access_key]
            raw_path = request.scope.get("raw_path") or path.encode()
            key_bytes = sigv4.verify(sig, secret, request.method, raw_path.decode("latin-1"), query_pairs,
                                     raw_headers)
            signer = ChunkSigner(key_bytes, sig.amz_date, sig.credential.scope, sig.signature)
        elif sig is None:
            if self.shared.auth:
                raise S3Error("AccessDenied", "this gateway requires signed requests: derive an access key from "
                                              "your Tusk token with `python -m tusk.s3gateway.credentials`")
        elif self.shared.auth:
            user, secret = lookup_secret(self.services.ctx, sig.credential.access_key)
            raw_path = request.scope.get("raw_path") or path.encode()
            key_bytes = sigv4.verify(sig, secret, request.method, raw_path.decode("latin-1"), query_pairs,
                                     raw_headers)
            signer = ChunkSigner(key_bytes, sig.amz_date, sig.credential.scope, sig.signature)
        payload = sig.payload if sig is not None else headers.get("x-amz-content-sha256")
        return Call(self.shared, user, request.method, bucket, key, query, headers, payload, signer)

    def _run(self, request: Request, raw: IO[bytes] | None, state: dict[str, object]) -> Response:
        call = self._call(request)
        state["call"] = call
        if self.scope is not None and self.scope.out is not None and call.bucket_name == OUT_BUCKET:
            operation, body_operation = route_out(call, self.scope.out)
        else:
            operation, body_operation = _route(call)
        with acting_as(call.user):
            if operation is not None:
                return operation(call)
            assert body_operation is not None
            if raw is None:
                raise S3Error("InvalidRequest", "this operation needs a request body")
            return body_operation(call, raw)

    async def handle(self, request: Request) -> Response:
        request_id = secrets.token_hex(8).upper()
        state: dict[str, object] = {}
        try:
            if request.method in ("PUT", "POST"):
                response = await with_body(request, lambda raw: self._run(request, raw, state))
            else:
                response = await anyio.to_thread.run_sync(self._run, request, None, state)
        except S3Error as exc:
            response = self._error(request, exc, request_id)
        except TuskError as exc:
            response = self._error(request, from_tusk(exc), request_id)
        except Exception:
            incident = secrets.token_hex(4)
            log.exception("unexpected error %s in %s %s", incident, request.method, request.url.path)
            response = self._error(request, S3Error("InternalError", f"internal error {incident}: the server's "
                                                                     "log has the details"), request_id)
        response.headers["x-amz-request-id"] = request_id
        return response

    @staticmethod
    def _error(request: Request, exc: S3Error, request_id: str) -> Response:
        if exc.status >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, exc)
        if request.method == "HEAD":  # no body, as S3: clients read the status
            return Response(status_code=exc.status)
        body = error_document(exc.code, exc.message, request.url.path, request_id, exc.fields)
        return Response(body, exc.status, media_type="application/xml")


def create_s3_app(services: Services, *, auth: bool = False, spool: Path | None = None,
                  close_services: bool = False, scope: DatumScope | None = None) -> Starlette:
    """The gateway over ``services``: ``auth`` requires SigV4 with keys derived from Tusk tokens (anonymous
    access otherwise); ``spool`` holds multipart uploads until they complete (default:
    ``$TUSK_HOME/tmp/s3-uploads``); ``scope``: a datum's endpoint, serving its buckets only
    (``tusk.s3gateway.datums``)."""
    gateway = Gateway(services, auth, spool or services.settings.home / "tmp" / "s3-uploads", scope)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if close_services:
                services.close()

    methods = ["GET", "HEAD", "PUT", "POST", "DELETE"]
    return Starlette(routes=[Route("/{path:path}", gateway.handle, methods=methods)], lifespan=lifespan)
