"""The local real stack (Kafka, Elasticsearch, Redis) for development, tests and the demo: no Docker needed."""

from stack.process import StackError
from stack.services import Elasticsearch, Kafka, Redis, Service, all_services

__all__ = ["Elasticsearch", "Kafka", "Redis", "Service", "StackError", "all_services"]
