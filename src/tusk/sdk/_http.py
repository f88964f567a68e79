# mypy: disable-error-code="no-any-return"
"""HttpOperations: the operations of ``tusk.Client`` sent to a ``tusk server`` over its REST API.

``tusk.Client`` uses this transport when ``TUSK_ADDRESS`` names a server (with ``TUSK_TOKEN`` when the server
has auth on), so the CLI and user code do not change. Same methods, same results, and every ``TuskError``
class the in-process transport raises is raised here too. Writes wait for the jobs they trigger (as the
in-process transport runs them inline) unless ``run_jobs`` is False. Files stream both ways; a batch of
changes (``modify``) crosses as one tar stream and lands as one commit.
"""

from __future__ import annotations

import base64
import contextlib
import io
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter

import tusk.errors as errors
from tusk.algorithms.registry import AlgoResponse, AlgorithmHandle, AlgorithmVersion
from tusk.auth import RoleBinding, TokenInfo
from tusk.config import Settings
from tusk.deployments.registry import DeploymentInfo, DeploymentRevision
from tusk.deployments.spec import DeploymentSpec, load_deployment_specs
from tusk.documents import load_documents
from tusk.errors import FileNotFound, InvalidArgument, InvalidRef, StorageUnavailable, TuskError
from tusk.ids import Digest
from tusk.models.loaders import LoadedModel
from tusk.models.local import load_dir
from tusk.models.manifest import Manifest
from tusk.models.records import BranchMove, ModelInfo
from tusk.pipelines.code import describe_code
from tusk.pipelines.codestore import PipelineCode, hash_code
from tusk.pipelines.datums import Datum, DatumInput
from tusk.pipelines.records import DatumInfo, JobInfo, PipelineInfo
from tusk.pipelines.spec import PipelineSpec, parse_spec
from tusk.sdk._images import RemoteImageMethods
from tusk.sdk._operations import Operations, Progress, Source, file_ref, writable
from tusk.sdk._pipelines import CodeUpload, JobProgress, SpecSource, same_name
from tusk.sdk._secrets import RemoteSecretMethods
from tusk.sdk._transactions import preview_kind
from tusk.transfer import JOBS_HEADER, BatchWriter, Pipe, tar_directory, untar_directory
from tusk.versioning.archive import ArchiveReport
from tusk.versioning.files import write_file_atomically
from tusk.versioning.loading import Loader
from tusk.versioning.records import BranchInfo, CommitInfo, DiffEntry, FileInfo, FsckReport, GcReport, RepoInfo
from tusk.versioning.refs import FileRef, parse_file_ref, parse_ref
from tusk.versioning.transactions import Preview, TransactionInfo
from tusk.versioning.trees import EMPTY_TREE
from tusk.versioning.triggers import BranchTrigger

if TYPE_CHECKING:
    from tusk.services import Services

__all__ = ["HttpModification", "HttpOperations"]

_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _load(kind: Any, data: Any) -> Any:
    adapter = _ADAPTERS.get(kind)
    if adapter is None:
        adapter = _ADAPTERS[kind] = TypeAdapter(kind)
    return adapter.validate_python(data)


def _q(part: str) -> str:
    return quote(part, safe="")


def _raise(response: httpx.Response) -> None:
    """The server's error as the same TuskError class the embedded client would raise."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):  # /v1/algo's shape
        body, err = err, err.get("message")
    message = str(err or f"HTTP {response.status_code} from {response.request.url}")
    kind = getattr(errors, str(body.get("error_type", "")), None) if isinstance(body, dict) else None
    if not (isinstance(kind, type) and issubclass(kind, TuskError)):
        kind = next((c for c in (errors.NotFound, errors.Conflict, errors.PermissionDenied, errors.Unauthenticated,
                                 errors.InvalidArgument, errors.Timeout, errors.StorageUnavailable)
                     if c.http_status == response.status_code), TuskError)
    exc = kind(message)
    if isinstance(body, dict) and body.get("stacktrace"):
        exc.stacktrace = body["stacktrace"]  # type: ignore[attr-defined]
    raise exc


class _Reader(Pipe):
    """A streamed response as a binary file; closing it closes the response."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.iter_bytes())
        self._response = response

    def close(self) -> None:
        self._response.close()
        super().close()


class HttpModification(Loader):
    """``client.modify(...)`` against a server: the same calls as ``Modification``, sent as one batch."""

    def __init__(self, client: HttpOperations, repo: str, target: str, description: str | None,
                 progress: Progress | None) -> None:
        self.client, self.repo, self.target = client, repo, target
        self.description, self.progress = description, progress
        self.batch = BatchWriter()
        self.skipped = self.batch.skipped

    @property
    def ops(self) -> list[dict[str, Any]]:
        return self.batch.ops

    @property
    def changes(self) -> int:
        return len(self.batch.ops)

    def put_bytes(self, path: str, data: bytes, append: bool = False) -> None:
        self.batch.put_bytes(path, data, append)

    def put_stream(self, path: str, stream: BinaryIO, append: bool = False) -> None:
        self.batch.put_stream(path, stream, append)

    def put_file(self, path: str, source: Path, append: bool = False) -> None:
        self.batch.put_file(path, source, append)

    def put_tree(self, path: str, source: Path) -> int:
        return self.batch.put_tree(path, source)

    def delete(self, path: str, missing_ok: bool = False) -> None:
        self.batch.delete(path, missing_ok)

    def count_children(self, path: str) -> int:
        try:
            return len(self.client.list_files(f"{self.repo}@{self.target}:{path}"))
        except FileNotFound:
            return 0

    def copy(self, src: FileRef, dst_path: str) -> None:
        self.batch.copy(str(src), dst_path)

    def land(self) -> CommitInfo | None:
        def counted() -> Iterator[bytes]:
            for piece in self.batch.chunks():
                if self.progress is not None:
                    self.progress(len(piece))
                yield piece

        url = f"{self.client._commit_url(self.repo, self.target)}/batch"
        body = self.client._json("POST", url, content=counted(), params=self.client._write_params(self.description),
                                 headers={"Content-Type": "application/x-tar"})
        return _load(CommitInfo | None, body["commit"])


class HttpAlgorithm(AlgorithmHandle):
    def __init__(self, client: HttpOperations, ref: str) -> None:
        self._client = client
        self.ref = ref

    def pipe(self, data: Any) -> AlgoResponse:
        kw: dict[str, Any] = {"content": data, "headers": {"Content-Type": "application/octet-stream"}} \
            if isinstance(data, bytes) else {"json": data}
        body = self._client._json("POST", f"/v1/algo/{self.ref.strip('/')}", **kw)
        result, meta = body["result"], body["metadata"]
        if meta.get("content_type") == "binary":
            result = base64.b64decode(result)
        return AlgoResponse(result, meta)


class HttpOperations(RemoteSecretMethods, RemoteImageMethods, Operations):
    """The operations against ``settings.address`` (``transport``: an httpx transport, e.g. for tests)."""

    def __init__(self, settings: Settings, run_jobs: bool = True, job_progress: JobProgress | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not settings.address:
            raise InvalidArgument("a remote client needs an address (TUSK_ADDRESS=http://host:port)")
        super().__init__(settings, run_jobs, job_progress)
        headers = {"X-Tusk-User": settings.user}
        if settings.token:
            headers["Authorization"] = f"Bearer {settings.token}"
        self.http = httpx.Client(base_url=settings.address.rstrip("/"), headers=headers, transport=transport,
                                 timeout=httpx.Timeout(30.0, read=None), follow_redirects=True)

    @property
    def services(self) -> Services:
        raise InvalidArgument(f"this client talks to {self.settings.address}; it has no in-process services")

    @property
    def remote(self) -> bool:
        return True

    @property
    def runtime_note(self) -> str | None:
        return None

    def close(self) -> None:
        self.http.close()

    # -- transport -------------------------------------------------------------
    def _send(self, method: str, url: str, stream: bool = False, allow: int | None = None, **kw: Any
              ) -> httpx.Response:
        """The response, or its error raised as a TuskError (except an ``allow`` status, the caller's to handle)."""
        try:
            request = self.http.build_request(method, url, **kw)
            response = self.http.send(request, stream=stream)
        except httpx.TransportError as exc:
            raise StorageUnavailable(f"cannot reach the Tusk server at {self.settings.address}: {exc}; "
                                     "is `tusk server` running there? (unset TUSK_ADDRESS to work embedded)"
                                     ) from None
        if response.status_code >= 400 and response.status_code != allow:
            if stream:
                response.read()
            _raise(response)
        if (kw.get("params") or {}).get("wait") == "true":  # a write that waited for its jobs: which they were
            waited = response.headers.get(JOBS_HEADER, "")
            self.last_jobs = [self.inspect_job(j) for j in waited.split(",") if j]
        return response

    def _json(self, method: str, url: str, **kw: Any) -> Any:
        response = self._send(method, url, **kw)
        return None if response.status_code == 204 or not response.content else response.json()

    def _get(self, kind: Any, url: str, **params: Any) -> Any:
        return _load(kind, self._json("GET", url, params={k: v for k, v in params.items() if v is not None}))

    def _wait(self, wait: bool | None = None) -> dict[str, Any]:
        return {"wait": "true" if (self.run_jobs if wait is None else wait) else "false"}

    def _write_params(self, description: str | None = None, **extra: Any) -> dict[str, Any]:
        params = self._wait() | {k: v for k, v in extra.items() if v is not None}
        if description is not None:
            params["description"] = description
        return params

    def _commit_url(self, repo: str, ref: str) -> str:
        return f"/api/v1/repos/{_q(repo)}/commits/{_q(ref)}"

    def _file_url(self, kind: str, ref: FileRef) -> str:
        return f"{self._commit_url(ref.repo, ref.ref_text)}/{kind}/{quote(ref.path.lstrip('/'))}"

    # -- repos -------------------------------------------------------------------
    def create_repo(self, name: str, description: str = "") -> RepoInfo:
        return _load(RepoInfo, self._json("POST", "/api/v1/repos", json={"name": name, "description": description}))

    def inspect_repo(self, name: str) -> RepoInfo:
        return self._get(RepoInfo, f"/api/v1/repos/{_q(name)}")

    def list_repos(self) -> list[RepoInfo]:
        return self._get(list[RepoInfo], "/api/v1/repos")

    def delete_repo(self, name: str, force: bool = False) -> None:
        self._json("DELETE", f"/api/v1/repos/{_q(name)}", params={"force": str(force).lower()})

    # -- branches ------------------------------------------------------------------
    def create_branch(self, ref: str, head: str | None = None, trigger: BranchTrigger | None = None) -> BranchInfo:
        repo, branch, anc = parse_ref(ref, default_branch=None)
        if anc:
            raise InvalidRef(f"{ref}: a branch name cannot carry ancestry")
        body: dict[str, Any] = {"name": branch, "head": head,
                                "trigger": vars(trigger) if trigger is not None else None}
        return _load(BranchInfo, self._json("POST", f"/api/v1/repos/{_q(repo)}/branches", json=body,
                                            params=self._wait()))

    def list_branches(self, repo: str) -> list[BranchInfo]:
        return self._get(list[BranchInfo], f"/api/v1/repos/{_q(repo)}/branches")

    def delete_branch(self, ref: str) -> None:
        repo, branch, _ = parse_ref(ref, default_branch=None)
        self._json("DELETE", f"/api/v1/repos/{_q(repo)}/branches/{_q(branch)}")

    # -- commits -------------------------------------------------------------------
    def start_commit(self, ref: str, description: str = "") -> CommitInfo:
        repo, branch, anc = parse_ref(ref)
        if anc:
            raise InvalidRef(f"{ref}: start a commit on a branch, not an ancestry ref")
        return _load(CommitInfo, self._json("POST", f"/api/v1/repos/{_q(repo)}/commits",
                                            json={"branch": branch, "description": description}))

    def finish_commit(self, ref: str, description: str | None = None) -> CommitInfo:
        repo, name, _ = parse_ref(ref)
        return _load(CommitInfo, self._json("POST", f"{self._commit_url(repo, name)}/finish",
                                            json={"description": description}, params=self._wait()))

    def inspect_commit(self, ref: str) -> CommitInfo:
        repo, name, anc = parse_ref(ref)
        return self._get(CommitInfo, self._commit_url(repo, f"{name}^{anc}" if anc else name))

    def inspect_commit_set(self, global_id: str) -> list[CommitInfo]:
        return self._get(list[CommitInfo], f"/api/v1/commitsets/{_q(global_id)}")

    def list_commits(self, ref: str, limit: int | None = None, offset: int = 0) -> list[CommitInfo]:
        repo, _, branch = ref.partition("@")
        return self._get(list[CommitInfo], f"/api/v1/repos/{_q(repo)}/commits", branch=branch or None,
                         limit=limit, offset=offset or None)

    def wait_commit(self, ref: str, timeout: float | None = None) -> CommitInfo:
        repo, name, _ = parse_ref(ref)
        params = {"timeout": timeout} if timeout is not None else {}
        return _load(CommitInfo, self._json("POST", f"{self._commit_url(repo, name)}/wait", params=params))

    def squash_commit(self, ref: str) -> None:
        repo, name, _ = parse_ref(ref, default_branch=None)
        self._json("POST", f"{self._commit_url(repo, name)}/squash")

    def delete_commit(self, ref: str) -> None:
        repo, name, _ = parse_ref(ref, default_branch=None)
        self._json("DELETE", self._commit_url(repo, name))

    # -- files ---------------------------------------------------------------------
    def modify(self, ref: str, description: str | None = None, progress: Progress | None = None
               ) -> HttpModification:
        target = writable(file_ref(ref))
        return HttpModification(self, target.repo, target.ref, description, progress)

    def put_file(self, dest: str | FileRef, source: Source, *, append: bool = False, recursive: bool = False,
                 description: str | None = None, progress: Progress | None = None) -> CommitInfo | None:
        ref = writable(file_ref(dest))
        if isinstance(source, str | Path) and Path(source).is_dir():
            if not recursive:
                raise InvalidArgument(f"{source} is a directory; pass recursive=True (-r) to put it")
            mod = self.modify(f"{ref.repo}@{ref.ref}", description, progress)
            mod.put_tree(ref.path, Path(source))
            return mod.land()
        if isinstance(source, str | Path) and not Path(source).exists():
            raise InvalidArgument(f"no such local file or directory: {source}")
        if ref.path == "/":
            raise InvalidArgument("a file needs a path inside the repo, not '/'")

        def body() -> Iterator[bytes]:
            if isinstance(source, bytes):
                yield source
                return
            fh = open(source, "rb") if isinstance(source, str | Path) else source  # noqa: SIM115
            try:
                while piece := fh.read(1 << 20):
                    if progress is not None:
                        progress(len(piece))
                    yield piece
            finally:
                if fh is not source:
                    fh.close()

        url = self._file_url("files", ref)
        landed = self._json("PUT", url, content=body(), params=self._write_params(description, append="true" if append
                                                                                   else None),
                            headers={"Content-Type": "application/octet-stream"})
        return _load(CommitInfo | None, landed["commit"])

    def open_file(self, ref: str) -> BinaryIO:
        response = self._send("GET", self._file_url("files", file_ref(ref)), stream=True)
        return io.BufferedReader(_Reader(response), buffer_size=1 << 20)

    def get_file(self, ref: str, start: int = 0, end: int | None = None) -> bytes:
        return b"".join(self.iter_file(ref, start, end))

    def iter_file(self, ref: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The file's bytes, or bytes ``[start, end)`` of it (an HTTP Range: the server reads only those chunks)."""
        fref = file_ref(ref)
        if start < 0 or (end is not None and end < 0):
            raise InvalidArgument(f"{ref}: a byte range is [start, end) with start, end >= 0 (got {start}, {end})")
        ranged = start > 0 or end is not None
        if end is not None and end <= start:  # nothing to read, but a missing file or a directory still says so
            if self.inspect_file(ref).kind != "file":
                raise InvalidArgument(f"{ref} is a directory; get it recursively")
            return iter(())
        headers = {"Range": f"bytes={start}-{'' if end is None else end - 1}"} if ranged else {}
        response = self._send("GET", self._file_url("files", fref), stream=True, allow=416, headers=headers)
        if response.status_code == 416:  # the range starts at or past the end: empty, as a slice is
            response.close()
            return iter(())
        skip = start if ranged and response.status_code == 200 else 0  # a server that ignored the Range
        left = None if end is None else end - start

        def chunks() -> Iterator[bytes]:
            nonlocal skip, left
            try:
                for data in response.iter_bytes():
                    if skip:
                        data, skip = data[skip:], max(0, skip - len(data))
                    if left is not None:
                        data = data[:left]
                        left -= len(data)
                    if data:
                        yield data
                    if left == 0:
                        return
            except httpx.HTTPError as exc:  # the server hit an error after the first bytes (its log says which)
                raise TuskError(f"the server stopped sending {ref} part way: {exc}") from None
            finally:
                response.close()

        return chunks()

    def download(self, ref: str, dest: str | Path, progress: Progress | None = None) -> int:
        """A file, or every file of a directory, to ``dest``; each lands under a temporary name first."""
        fref, dest = file_ref(ref), Path(dest)
        root = self.inspect_file(ref)
        files = [root] if root.kind == "file" else [f for f in self.walk_files(ref) if f.kind == "file"]
        total = 0
        for f in files:
            rel = f.path[len(fref.path):].lstrip("/") if root.kind == "dir" else ""
            total += write_file_atomically(dest / rel if rel else dest,
                                           self.iter_file(f"{fref.repo}@{fref.ref_text}:{f.path}"), progress)
        return total

    def inspect_file(self, ref: str) -> FileInfo:
        return self._get(FileInfo, self._file_url("stat", file_ref(ref)))

    def list_files(self, ref: str, limit: int | None = None, offset: int = 0) -> list[FileInfo]:
        return self._get(list[FileInfo], self._file_url("tree", file_ref(ref)), limit=limit, offset=offset or None)

    def walk_files(self, ref: str) -> Iterator[FileInfo]:
        return iter(self._get(list[FileInfo], self._file_url("tree", file_ref(ref)), recursive="true"))

    def glob_files(self, ref: str) -> list[FileInfo]:
        fref = parse_file_ref(ref.split(":", 1)[0])
        pattern = ref.split(":", 1)[1] if ":" in ref else "/"
        return self._get(list[FileInfo], f"{self._commit_url(fref.repo, fref.ref_text)}/glob",
                         pattern=pattern)

    def diff_files(self, new: str, old: str | None = None, limit: int | None = None, offset: int = 0
                   ) -> list[DiffEntry]:
        nref = file_ref(new)
        return self._get(list[DiffEntry], f"{self._commit_url(nref.repo, nref.ref_text)}/diff",
                         path=nref.path, old=old, limit=limit, offset=offset or None)

    def delete_file(self, ref: str, description: str | None = None) -> CommitInfo | None:
        fref = writable(file_ref(ref))
        if fref.path == "/" and not fref.has_path:
            raise InvalidArgument(f"{ref}: name the path to delete, e.g. {fref.repo}@{fref.ref}:/dir")
        body = self._json("DELETE", self._file_url("files", fref), params=self._write_params(description))
        return _load(CommitInfo | None, body["commit"])

    def copy_file(self, src: str, dest: str, description: str | None = None) -> CommitInfo | None:
        dref = writable(file_ref(dest))
        body = self._json("POST", f"{self._commit_url(dref.repo, dref.ref)}/copy", json={"src": src,
                          "path": dref.path}, params=self._write_params(description))
        return _load(CommitInfo | None, body["commit"])

    def fsck(self, verify_chunks: bool = True, repair: bool = False) -> FsckReport:
        return _load(FsckReport, self._json("POST", "/api/v1/fsck", params={
            "verify_chunks": str(verify_chunks).lower(), "repair": str(repair).lower()}))

    def gc(self, dry_run: bool = False, grace: float | None = None) -> GcReport:
        params = {"dry_run": str(dry_run).lower()} | ({} if grace is None else {"grace": str(grace)})
        return _load(GcReport, self._json("POST", "/api/v1/gc", params=params))

    def extract(self, dest: str | Path | BinaryIO) -> ArchiveReport:
        raise InvalidArgument(self._on_the_store("extract"))

    def restore(self, src: str | Path | BinaryIO) -> ArchiveReport:
        raise InvalidArgument(self._on_the_store("restore"))

    # -- transactions --------------------------------------------------------------
    def _txn_url(self, txn_id: str) -> str:
        return f"/api/v1/transactions/{_q(txn_id)}"

    @staticmethod
    def _preview(request: dict[str, Any], answer: dict[str, Any]) -> Preview:
        kind = {"RepoInfo": RepoInfo, "CommitInfo": CommitInfo, "BranchInfo": BranchInfo}.get(
            preview_kind(request["op"]) or "")
        return None if kind is None or answer.get("result") is None else _load(kind, answer["result"])

    def start_transaction(self) -> TransactionInfo:
        return _load(TransactionInfo, self._json("POST", "/api/v1/transactions"))

    def add_transaction_request(self, txn_id: str, request: dict[str, Any]) -> tuple[TransactionInfo, Preview]:
        answer = self._json("POST", f"{self._txn_url(txn_id)}/requests", json=request)
        return _load(TransactionInfo, answer["transaction"]), self._preview(request, answer)

    def finish_transaction(self, txn_id: str) -> TransactionInfo:
        return _load(TransactionInfo, self._json("POST", f"{self._txn_url(txn_id)}/finish", params=self._wait()))

    def delete_transaction(self, txn_id: str) -> TransactionInfo:
        return _load(TransactionInfo, self._json("DELETE", self._txn_url(txn_id)))

    def inspect_transaction(self, txn_id: str) -> TransactionInfo:
        return self._get(TransactionInfo, self._txn_url(txn_id))

    def list_transactions(self) -> list[TransactionInfo]:
        return self._get(list[TransactionInfo], "/api/v1/transactions")

    def _on_the_store(self, verb: str) -> str:
        return (f"{verb} works on the store itself, not through the server {self.settings.address}: run `tusk "
                f"{verb}` where the store is, with the server's TUSK_DATABASE_URL and TUSK_OBJECTS_URL (and "
                "TUSK_CONTEXT=none)")

    # -- pipelines -----------------------------------------------------------------
    def pipeline_requests(self, name: str, call: dict[str, Any]) -> list[dict[str, Any]]:
        """The transaction requests of a batched create/update pipeline: the code is uploaded now (as outside a
        transaction), and the server checks it is stored when the request is added."""
        from tusk.pipelines.transacted import pipeline_request

        body = self._pipeline_request(call["source"], bool(call.get("reprocess")))
        uploaded = body.get("code")
        code = PipelineCode(Digest(uploaded["digest"]), uploaded["info"] | {"tree": uploaded["digest"]},
                            str(uploaded["info"].get("dir") or "")) if uploaded else PipelineCode(
            EMPTY_TREE, {"dir": None, "digest": None, "files": 0, "git": None, "tree": EMPTY_TREE,
                         "note": "created without code"})
        return [pipeline_request(name, doc, code, body["reprocess"]) for doc in body["specs"]]

    def _pipeline_request(self, source: SpecSource, reprocess: bool = False, with_code: bool = True
                          ) -> dict[str, Any]:
        """The specs as documents, and (``with_code``) the spec file's directory uploaded as their code."""
        if isinstance(source, PipelineSpec):
            # the fields set aside as ignored go too: the server warns about them, or refuses them. Only the
            # fields the spec sets: an unset pfs.branch with a trigger is named by the server (input_triggers)
            doc = source.model_dump(mode="json", by_alias=False, exclude={"ignored"}, exclude_unset=True) \
                | source.ignored
            docs, code_dir = [doc], None
        elif isinstance(source, dict):
            docs, code_dir = [source], None
        else:
            path = Path(source)
            if not path.is_file():
                raise InvalidArgument(f"no such spec file: {path}")
            docs, code_dir = load_documents(path, "pipeline spec"), path.resolve().parent
            for doc in docs:  # errors name the file and field here, before anything is sent
                parse_spec(doc, f" in {path}")
        request: dict[str, Any] = {"specs": docs, "reprocess": reprocess}
        if code_dir is not None and with_code:
            request["code"] = {"digest": self._store_code(code_dir), "info": describe_code(code_dir)}
        return request

    def finish_caused_jobs(self, wait: bool) -> list[JobInfo]:
        """The server waited for the jobs a write caused when it was asked to (``run_jobs``): those."""
        return list(self.last_jobs) if wait else []

    def has_code(self, digest: str) -> bool:
        try:
            self._json("GET", f"/api/v1/code/{digest}")
            return True
        except errors.NotFound:
            return False

    def store_code(self, directory: str | Path) -> str:
        return self._store_code(Path(directory))

    def _store_code(self, code_dir: Path) -> str:
        """The digest of the code directory's tree, stored on the server: hashed here, uploaded only when the
        server does not hold that tree already."""
        digest = hash_code(code_dir).digest
        if self.has_code(digest):
            return digest
        uploaded = self._json("POST", "/api/v1/code", content=tar_directory(code_dir),
                              headers={"Content-Type": "application/x-tar"})
        return str(uploaded["digest"])

    def run_pending_jobs(self, progress: JobProgress | None = None, *, wait_for_held: bool = True
                         ) -> list[JobInfo]:  # (the server always waits for the jobs its replicas hold)
        return _load(list[JobInfo], self._json("POST", "/api/v1/jobs/run-pending"))

    def create_pipeline(self, source: SpecSource, wait: bool | None = None, *, code: CodeUpload | None = None
                        ) -> list[PipelineInfo]:
        return _load(list[PipelineInfo], self._json("POST", "/api/v1/pipelines",
                                                    json=self._pipeline_request(source), params=self._wait(wait)))

    def update_pipeline(self, source: SpecSource, reprocess: bool = False, wait: bool | None = None, *,
                        code: CodeUpload | None = None) -> list[PipelineInfo]:
        return _load(list[PipelineInfo], self._json("PUT", "/api/v1/pipelines",
                                                    json=self._pipeline_request(source, reprocess),
                                                    params=self._wait(wait)))

    def edit_pipeline(self, name: str, spec: dict[str, Any], reprocess: bool = False, wait: bool | None = None
                      ) -> list[PipelineInfo]:
        same_name(name, spec)
        code = self.inspect_pipeline(name).code or {}
        request: dict[str, Any] = {"specs": [spec], "reprocess": reprocess}
        if code.get("tree"):  # the code the current version runs, stored on the server already
            request["code"] = {"digest": code["tree"], "info": code}
        return _load(list[PipelineInfo], self._json("PUT", "/api/v1/pipelines", json=request,
                                                    params=self._wait(wait)))

    def rerun_pipeline(self, name: str, reprocess: bool = False, wait: bool | None = None) -> PipelineInfo:
        return _load(PipelineInfo, self._json("POST", f"/api/v1/pipelines/{_q(name)}/rerun",
                                              json={"reprocess": reprocess}, params=self._wait(wait)))

    def run_cron(self, pipeline: str, name: str | None = None, wait: bool | None = None) -> list[Any]:
        return _load(list[CommitInfo], self._json("POST", f"/api/v1/pipelines/{_q(pipeline)}/cron",
                                                  json={"input": name}, params=self._wait(wait)))

    def tick_due_crons(self) -> list[Any]:
        return _load(list[CommitInfo], self._json("POST", "/api/v1/crons/tick",
                                                  params=self._wait()))

    def holding_job_starts(self) -> contextlib.AbstractContextManager[None]:
        raise InvalidArgument("holding job starts is the server's own: each request's jobs start once the server "
                              "has answered it")

    def pipeline_exists(self, name: str) -> bool:
        try:
            self.inspect_pipeline(name)
        except errors.PipelineNotFound:
            return False
        return True

    def inspect_pipeline(self, name: str) -> PipelineInfo:
        return self._get(PipelineInfo, f"/api/v1/pipelines/{_q(name)}")

    def pipeline_versions(self, name: str) -> list[dict[str, object]]:
        return self._json("GET", f"/api/v1/pipelines/{_q(name)}/versions")

    def list_pipelines(self) -> list[PipelineInfo]:
        return self._get(list[PipelineInfo], "/api/v1/pipelines")

    def delete_pipeline(self, name: str, keep_repo: bool = False) -> None:
        self._json("DELETE", f"/api/v1/pipelines/{_q(name)}", params={"keep_repo": str(keep_repo).lower()})

    def stop_pipeline(self, name: str) -> PipelineInfo:
        return _load(PipelineInfo, self._json("POST", f"/api/v1/pipelines/{_q(name)}/stop"))

    def start_pipeline(self, name: str) -> PipelineInfo:
        return _load(PipelineInfo, self._json("POST", f"/api/v1/pipelines/{_q(name)}/start"))

    def list_jobs(self, pipeline: str | None = None, global_id: str | None = None, limit: int | None = None,
                  offset: int = 0) -> list[JobInfo]:
        return self._get(list[JobInfo], "/api/v1/jobs", pipeline=pipeline, global_id=global_id, limit=limit,
                         offset=offset or None)

    def inspect_job(self, job_id: str) -> JobInfo:
        return self._get(JobInfo, f"/api/v1/jobs/{_q(job_id)}")

    def wait_job(self, job_id: str, timeout: float | None = None) -> JobInfo:
        params = {"timeout": timeout} if timeout is not None else {}
        self.last_jobs = []
        info = _load(JobInfo, self._json("POST", f"/api/v1/jobs/{_q(job_id)}/wait", params=params))
        self.last_jobs = [info]
        return info

    def stop_job(self, job_id: str) -> JobInfo:
        return _load(JobInfo, self._json("POST", f"/api/v1/jobs/{_q(job_id)}/stop"))

    def list_datums(self, job_id: str, limit: int | None = None, offset: int = 0, failed_first: bool = False
                    ) -> list[DatumInfo]:
        return self._get(list[DatumInfo], f"/api/v1/jobs/{_q(job_id)}/datums", limit=limit, offset=offset or None,
                         failed_first="true" if failed_first else None)

    def inspect_datum(self, job_id: str, datum_id: str) -> DatumInfo:
        return self._get(DatumInfo, f"/api/v1/jobs/{_q(job_id)}/datums/{_q(datum_id)}")

    def dry_run_datums(self, source: SpecSource) -> list[Datum]:
        request = self._pipeline_request(source, with_code=False)
        rows = self._json("POST", "/api/v1/pipelines/dry-run", json=request)
        return [Datum(tuple(DatumInput(**i) for i in row["inputs"])) for row in rows]

    def lineage(self, ref: str) -> dict[str, Any]:
        return self._json("GET", "/api/v1/lineage", params={"ref": ref})

    def logs(self, pipeline: str | None = None, job: str | None = None, datum: str | None = None,
             grep: str | None = None) -> list[tuple[str, str, str]]:
        params = {k: v for k, v in {"pipeline": pipeline, "job": job, "datum": datum, "grep": grep}.items() if v}
        return [(x["job"], x["datum"], x["line"]) for x in self._json("GET", "/api/v1/logs", params=params)]

    # -- models --------------------------------------------------------------------
    def list_models(self, repo: str | None = None, limit: int | None = None) -> list[ModelInfo]:
        return self._get(list[ModelInfo], "/api/v1/models", repo=repo, limit=limit)

    def model_manifest(self, ref: str) -> Manifest:
        return Manifest.from_dict(self._json("GET", "/api/v1/models/manifest", params={"ref": ref}))

    def verify_model(self, ref: str) -> Manifest:
        return Manifest.from_dict(self._json("POST", "/api/v1/models/verify", params={"ref": ref}))

    def export_model(self, ref: str, dest: str | Path) -> Manifest:
        response = self._send("GET", "/api/v1/models/export", params={"ref": ref}, stream=True)
        try:
            reader = io.BufferedReader(_Reader(response), buffer_size=1 << 20)
            untar_directory(reader, Path(dest))
        finally:
            response.close()
        from tusk.models.local import MANIFEST_FILE

        return Manifest.loads((Path(dest) / MANIFEST_FILE).read_bytes())

    def load_model(self, ref: str) -> LoadedModel:
        """Fetch the model's files, then verify every one against the manifest here before loading it."""
        fref = parse_file_ref(ref)
        with tempfile.TemporaryDirectory(prefix="tusk-model-") as where:
            manifest = self.export_model(ref, where)
            return load_dir(where, fref.path if fref.has_path else None, manifest)

    def promote_model(self, ref: str, to: str, note: str | None = None) -> BranchMove:
        body = {"ref": ref, "to": to} | ({"note": note} if note is not None else {})
        return _load(BranchMove, self._json("POST", "/api/v1/models/promote", json=body, params=self._wait()))

    def rollback_model(self, ref: str, steps: int = 1, note: str | None = None) -> BranchMove:
        body = {"ref": ref, "steps": steps} | ({"note": note} if note is not None else {})
        return _load(BranchMove, self._json("POST", "/api/v1/models/rollback", json=body, params=self._wait()))

    def model_history(self, ref: str) -> list[BranchMove]:
        return self._get(list[BranchMove], "/api/v1/models/history", ref=ref)

    # -- deployments ---------------------------------------------------------------
    @staticmethod
    def _deployment_doc(spec: DeploymentSpec | dict[str, Any] | str | Path) -> dict[str, Any]:
        if isinstance(spec, DeploymentSpec):
            return spec.model_dump(mode="json", exclude_none=True)
        if isinstance(spec, dict):
            return spec
        specs = load_deployment_specs(Path(spec))
        if len(specs) != 1:
            raise InvalidArgument(f"{spec} holds {len(specs)} deployment specs; pass one at a time")
        return specs[0].model_dump(mode="json", exclude_none=True)

    def create_deployment(self, spec: DeploymentSpec | dict[str, Any] | str | Path) -> DeploymentInfo:
        return _load(DeploymentInfo, self._json("POST", "/api/v1/deployments", json=self._deployment_doc(spec)))

    def update_deployment(self, spec: DeploymentSpec | dict[str, Any] | str | Path) -> DeploymentInfo:
        doc = self._deployment_doc(spec)
        return _load(DeploymentInfo, self._json("PUT", f"/api/v1/deployments/{_q(str(doc.get('name', '')))}",
                                                json=doc))

    def rollout(self, name: str, weights: dict[str, float]) -> DeploymentInfo:
        return _load(DeploymentInfo, self._json("POST", f"/api/v1/deployments/{_q(name)}/rollout",
                                                json={"weights": weights}))

    def rollback_deployment(self, name: str, revision: int | None = None) -> DeploymentInfo:
        return _load(DeploymentInfo, self._json("POST", f"/api/v1/deployments/{_q(name)}/rollback",
                                                json={"revision": revision}))

    def inspect_deployment(self, name: str) -> DeploymentInfo:
        return self._get(DeploymentInfo, f"/api/v1/deployments/{_q(name)}")

    def list_deployments(self) -> list[DeploymentInfo]:
        return self._get(list[DeploymentInfo], "/api/v1/deployments")

    def deployment_history(self, name: str) -> list[DeploymentRevision]:
        return self._get(list[DeploymentRevision], f"/api/v1/deployments/{_q(name)}/history")

    def delete_deployment(self, name: str) -> None:
        self._json("DELETE", f"/api/v1/deployments/{_q(name)}")

    # -- algorithms ----------------------------------------------------------------
    def publish_algorithm(self, directory: str | Path, name: str, version: str) -> AlgorithmVersion:
        path = Path(directory)
        if not path.is_dir():
            raise InvalidArgument(f"no such directory: {path}")
        parts = name.strip("/").split("/")
        if len(parts) != 2:
            raise InvalidArgument(f"invalid algorithm {name!r}: use owner/name (give the version with --version)")
        url = f"/api/v1/algorithms/{_q(parts[0])}/{_q(parts[1])}/{_q(version)}"
        return _load(AlgorithmVersion, self._json("POST", url, content=tar_directory(path),
                                                  headers={"Content-Type": "application/x-tar"}))

    def list_algorithms(self, name: str | None = None) -> list[AlgorithmVersion]:
        return self._get(list[AlgorithmVersion], "/api/v1/algorithms", name=name)

    def algo(self, ref: str) -> AlgorithmHandle:
        return HttpAlgorithm(self, ref)

    # -- auth ----------------------------------------------------------------------
    def whoami(self) -> dict[str, Any]:
        return self._json("GET", "/api/v1/auth/whoami")

    def create_token(self, user: str | None = None, description: str = "", ttl_seconds: float | None = None
                     ) -> tuple[TokenInfo, str]:
        body = self._json("POST", "/api/v1/auth/tokens", json={"user": user, "description": description,
                                                               "ttl_seconds": ttl_seconds})
        return _load(TokenInfo, body["info"]), body["token"]

    def list_tokens(self, user: str | None = None) -> list[TokenInfo]:
        return self._get(list[TokenInfo], "/api/v1/auth/tokens", user=user)

    def revoke_token(self, token_id: str) -> TokenInfo:
        return _load(TokenInfo, self._json("DELETE", f"/api/v1/auth/tokens/{_q(token_id)}"))

    def set_role(self, resource: str, user: str, role: str | None) -> RoleBinding | None:
        body = self._json("PUT", "/api/v1/auth/roles", json={"resource": resource, "user": user,
                                                             "role": role or "none"})
        return _load(RoleBinding | None, body)

    def list_roles(self, resource: str | None = None, user: str | None = None) -> list[RoleBinding]:
        return self._get(list[RoleBinding], "/api/v1/auth/roles", resource=resource, user=user)

    def activate_auth(self, admin: str) -> tuple[TokenInfo, str]:
        raise InvalidArgument("auth is activated where the database is: run `tusk auth activate` without "
                              "TUSK_ADDRESS, on the server's machine, then start the server with --auth")
