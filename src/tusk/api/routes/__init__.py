"""One router per resource; ``ROUTERS`` is the order they are mounted (and documented) in."""

from tusk.api.routes import (
    admin,
    algorithms,
    auth,
    branches,
    commits,
    deployments,
    files,
    images,
    jobs,
    models,
    pipelines,
    repos,
    secrets,
    transactions,
)

ROUTERS = [admin.router, auth.router, repos.router, branches.router, commits.router, files.router,
           transactions.router, pipelines.router, secrets.router, images.router, jobs.router, models.router,
           deployments.router, algorithms.router]

__all__ = ["ROUTERS"]
