"""``tusk server``'s app: the REST API and the dashboard, the deployments' serving app, and the scheduler.

The one place they are put together (the API knows neither serving nor the scheduler); also where S3-enabled
pipelines' datums get their S3 endpoint (``tusk.s3gateway.datums``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from tusk.services import Services

__all__ = ["create_server_app"]


def create_server_app(services: Services, *, auth: bool = False, serving: bool = True, scheduler: bool = True,
                      deployments: list[str] | None = None, poll: float = 1.0, request_logging: bool = True,
                      close_services: bool = False) -> FastAPI:
    """The server's app. ``scheduler`` runs triggered jobs and cron ticks in the background (leases make
    several replicas safe); ``serving`` mounts the deployments' inference endpoints (``deployments``: only
    these; ``poll``: seconds between checks for moved branches and new revisions)."""
    from tusk.api import create_app
    from tusk.root.scheduler import Scheduler
    from tusk.s3gateway.datums import datum_gateways

    serving_app = None
    if serving:
        from tusk.serving.app import create_app as create_serving_app

        serving_app = create_serving_app(services, deployments, poll, request_logging)
    runner = Scheduler(services, poll=poll) if scheduler else None
    services.use_datum_gateways(datum_gateways)
    app = create_app(services, auth=auth, serving=serving_app, background=[runner] if runner else [],
                     close_services=close_services)
    app.state.scheduler = runner
    return app
