"""What routes need, made once per app: the service context, handed to views through a FastAPI dependency."""

from __future__ import annotations

from fastapi import Request

from pipeline.context import Context


def services(request: Request) -> Context:
    """The app's clients (thread-safe, shared by the worker threads that run the sync routes)."""
    context: Context = request.app.state.services
    return context
