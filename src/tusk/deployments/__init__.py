"""Deployments: what a deployment is (``spec``: its predictors, traffic split, shadow, batching, logging,
detectors) and the stored deployments with their revisions (``registry``: create, update, rollout, rollback,
history). Serving's request path (``tusk.serving``) reads them; this package knows nothing of HTTP."""
