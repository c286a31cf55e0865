"""End-to-end tests through a real Prefect server, work pool and worker."""
