"""The mlac-audit REST service: FastAPI routes, job store, artifact store, scheduler, auth."""
