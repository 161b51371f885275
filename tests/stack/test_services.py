"""The local stack tooling: idempotent start, versions, and clear errors when a port is taken."""

from __future__ import annotations

import socket

import pytest

from pipeline.settings import Settings
from stack import Kafka, Redis, StackError, all_services


def test_up_twice_is_fine_and_reports_versions(real_stack: Settings):
    for service in all_services(real_stack):
        assert service.up().startswith("already running")
        assert service.ready()
    versions = {service.name: service.version() for service in all_services(real_stack)}
    assert versions["kafka"] == real_stack.kafka_version
    assert versions["elasticsearch"] == real_stack.es_version
    assert versions["redis"] and versions["redis"][0].isdigit()


def test_a_port_held_by_another_program_is_a_clear_error(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        service = Redis(Settings(redis_url=f"redis://127.0.0.1:{port}/0", stack_dir=tmp_path))
        with pytest.raises(StackError, match=f"Port 127.0.0.1:{port} is taken by another program"):
            service.up()


def test_down_leaves_alone_what_it_did_not_start(tmp_path):
    service = Kafka(Settings(stack_dir=tmp_path))
    assert service.down() is False
