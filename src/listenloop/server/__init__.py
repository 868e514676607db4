"""The platform's HTTP server: FastAPI routers over the engine (REST API v1)."""

from listenloop.server.app import app_from_env, create_app

__all__ = ["app_from_env", "create_app"]
