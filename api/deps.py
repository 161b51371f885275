"""What routes need, made once per app: settings and clients, handed to views through FastAPI dependencies."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from elasticsearch import Elasticsearch
from fastapi import Request
from redis import Redis

from pipeline import store
from pipeline.controls import Controls
from pipeline.settings import Settings


@dataclass
class Services:
    """The app's clients (thread-safe, shared by the worker threads that run the sync routes)."""

    settings: Settings

    @cached_property
    def redis(self) -> Redis:
        return Redis.from_url(self.settings.redis_url)

    @cached_property
    def es(self) -> Elasticsearch:
        return store.connect(self.settings)

    @cached_property
    def indices(self) -> store.Indices:
        return store.Indices(self.settings.index_prefix)

    @cached_property
    def controls(self) -> Controls:
        return Controls(self.redis, self.settings, self.es, self.indices)


def services(request: Request) -> Services:
    return request.app.state.services
