"""Per-invocation CLI state: output mode and the lazily opened client."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from tusk.ids import SHORT_ID, short_id
from tusk.units import human_size

if TYPE_CHECKING:
    from tusk.contexts import ContextFile
    from tusk.pipelines.s3 import DatumGateway
    from tusk.sdk import Client
    from tusk.services import Services

__all__ = ["ID_COLUMNS", "emit", "err", "job_progress", "out", "print_wide", "progress_bar", "state"]

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

# columns that hold commit, job, datum or global ids: printed short (tusk.ids.SHORT_ID characters, which any
# command takes back as an argument), never wrapped; --json keeps the full ids
ID_COLUMNS = frozenset({"commit", "parent", "head", "job", "datum", "global id", "global_id", "id", "from", "to"})

PROGRESS_THRESHOLD = 8 << 20  # show bars for transfers of 8 MiB or more


class _JobProgress:
    """A bar per pipeline while triggered jobs run inline (on a terminal).

    The first job also prints the runtime note (e.g. running unsandboxed), so
    the note appears when pipelines run, and other commands pay nothing for it.
    """

    def __init__(self, note: Callable[[], str | None]) -> None:
        self._bar: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._note: Callable[[], str | None] | None = note
        self._terminal: bool | None = None  # asked once: rich asks the OS anew each time (per datum, here)

    def __call__(self, pipeline: str, done: int, total: int, failed: int = 0) -> None:
        if self._note is not None:
            note, self._note = self._note(), None
            if note:
                err.print(f"[yellow]note:[/yellow] {escape(note)}")
        if self._terminal is None:
            self._terminal = err.is_terminal
        if not self._terminal:
            return
        if self._bar is None:
            self._bar = Progress(TextColumn("job {task.description}"), BarColumn(),
                                 TextColumn("{task.completed}/{task.total} datums"),
                                 TextColumn("{task.fields[failed]}", style="red"), console=err, transient=True)
            self._bar.start()
        if pipeline not in self._tasks:
            self._tasks[pipeline] = self._bar.add_task(escape(pipeline), total=total, failed="")
        self._bar.update(self._tasks[pipeline], completed=done, total=total,
                         failed=f"{failed} failed" if failed else "")

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def job_progress(note: Callable[[], str | None]) -> _JobProgress:
    """Bars for jobs that run inline, for callers that make their own client (``tusk demo``)."""
    return _JobProgress(note)


def _datum_gateways(services: Services) -> DatumGateway:
    """S3-enabled pipelines' datum endpoints, for jobs this CLI runs (the gateway loads only for them)."""
    from tusk.s3gateway.datums import datum_gateways

    return datum_gateways(services)


class _State:
    json: bool = False
    quiet_interrupt: bool = False  # a command that Ctrl-C ends normally (`subscribe commit`): exit 0, quietly
    _client: Client | None = None
    _progress: _JobProgress | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            from tusk.sdk import Client  # the SDK (SQLAlchemy, services) loads for commands that need it

            self._progress = _JobProgress(lambda: self.client.runtime_note)
            self._client = Client(job_progress=self._progress)
            if not self._client.remote:  # embedded: jobs run in this process
                self._client.services.use_datum_gateways(_datum_gateways)
            self._client.active_transaction = self.saved_transaction(self._client)
        return self._client

    @staticmethod
    def _transactions(client: Client) -> tuple[ContextFile, str] | None:
        """The config file that keeps the active transaction, and the key of the store ``client`` works on."""
        from tusk.contexts import ContextFile

        settings = client.settings
        if settings.config_path is None:
            return None
        return ContextFile(settings.config_path), settings.address or f"home:{settings.home}"

    def saved_transaction(self, client: Client) -> str | None:
        where = self._transactions(client)
        return where[0].active_transaction(where[1]) if where is not None else None

    def save_transaction(self, client: Client) -> None:
        """Keep the client's active transaction (or its absence) for the next commands."""
        where = self._transactions(client)
        if where is not None:
            where[0].set_active_transaction(where[1], client.active_transaction)

    @property
    def opened(self) -> Client | None:
        """The client, if this command opened one (no store is opened just to ask)."""
        return self._client

    def close(self) -> None:
        self.quiet_interrupt = False
        if self._progress is not None:
            self._progress.stop()
        if self._client is not None:
            self._client.close()
            self._client = None


state = _State()


def emit(data: Any, columns: Sequence[str], rows: Callable[[Any], Sequence[Any]] | None = None,
         title: str | None = None) -> None:
    """Print records as a Rich table, or as JSON with ``--json``."""
    items = data if isinstance(data, list) else [data]
    dicts = [d.to_dict() if hasattr(d, "to_dict") else d for d in items]
    if state.json:
        sys.stdout.write(json.dumps(dicts if isinstance(data, list) else dicts[0], indent=2, default=str) + "\n")
        return
    table = Table(title=title, header_style="bold")
    ids = [col in ID_COLUMNS for col in columns]
    for col, is_id in zip(columns, ids, strict=True):
        table.add_column(col.upper().replace("_", " "), no_wrap=is_id, min_width=SHORT_ID if is_id else None)
    for item, d in zip(items, dicts, strict=True):
        values = rows(item) if rows else [d.get(c) for c in columns]
        table.add_row(*["" if v is None else short_id(str(v)) if is_id else escape(str(v))
                        for v, is_id in zip(values, ids, strict=True)])
    print_wide(table)


def say(*objects: Any, **kwargs: Any) -> None:
    """Print to stdout as it is: names, refs and paths are the user's, and ``[x]`` in them is not markup."""
    kwargs.setdefault("highlight", False)
    out.print(*objects, markup=False, **kwargs)


def warn_plain(*objects: Any, **kwargs: Any) -> None:
    """Print to stderr as it is (see ``say``)."""
    kwargs.setdefault("highlight", False)
    err.print(*objects, markup=False, **kwargs)


def print_wide(renderable: Any) -> None:
    """Print to stdout; when it is not a terminal (a pipe, a file), at the renderable's full width, so a
    script reading the output never sees an id or a name cut short to fit 80 columns."""
    if out.is_terminal:
        out.print(renderable)
        return
    width = out.width
    out.width = max(width, Measurement.get(out, out.options.update_width(1 << 16), renderable).maximum)
    try:
        out.print(renderable)
    finally:
        out.width = width


class _BinarySpeed(TransferSpeedColumn):
    """Transfer speed in binary units (MiB/s), as sizes are shown everywhere else."""

    def render(self, task: Any) -> Any:
        from rich.text import Text

        speed = task.finished_speed or task.speed
        return Text("?" if speed is None else f"{human_size(int(speed))}/s", style="progress.data.speed")


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None] | None]:
    """A byte-progress callback with a Rich bar on a terminal for large transfers."""
    if not err.is_terminal or (total is not None and total < PROGRESS_THRESHOLD):
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=True), _BinarySpeed(),
               TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True, speed_estimate_period=5) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
