"""The HTTP API: FastAPI views over the `pipeline` services (`tickwatch api`; app factory `api.app:create_app`)."""
