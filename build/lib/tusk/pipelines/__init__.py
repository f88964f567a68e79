"""Pipelines: Pachyderm-compatible specs, datums, jobs, runtimes and executors."""
