"""The three real servers of the local stack: Kafka (KRaft), Elasticsearch and Redis, on loopback.

Each service knows how to install itself from the cache, start, tell when it is ready and report its
version. Ports come from the same settings the pipeline uses, so one env var moves both.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import uuid
import zipfile
from abc import ABC, abstractmethod
from pathlib import Path
from urllib.request import urlopen

from pipeline.settings import Settings
from stack import downloads
from stack.process import ManagedProcess, StackError, chown_tree, ensure_system_user, port_open, wait_until

ES_USER = "tickwatch-es"


def java_home(min_major: int = 17) -> Path:
    """JAVA_HOME, or the JDK behind `java` on PATH, provided it is at least `min_major`."""
    java = Path(os.environ["JAVA_HOME"]) / "bin" / "java" if "JAVA_HOME" in os.environ else None
    if java is None or not java.exists():
        found = shutil.which("java")
        if found is None:
            raise StackError(
                f"No Java found. Kafka and Elasticsearch need Java {min_major}+: "
                "apt-get install openjdk-17-jre-headless"
            )
        java = Path(found).resolve()
    out = subprocess.run([str(java), "-XshowSettings:properties", "-version"], capture_output=True, text=True)
    major = next(
        (line.split("=")[1].strip() for line in out.stderr.splitlines() if "java.specification.version" in line), "0"
    )
    if int(major.split(".")[-1] if major.startswith("1.") else major) < min_major:
        raise StackError(f"{java} is Java {major}; Kafka and Elasticsearch need Java {min_major}+.")
    return java.parent.parent


class Service(ABC):
    name: str

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.proc = ManagedProcess(self.name, settings.stack_dir)

    @property
    @abstractmethod
    def host_port(self) -> tuple[str, int]: ...

    @property
    def address(self) -> str:
        host, port = self.host_port
        return f"{host}:{port}"

    @abstractmethod
    def ready(self) -> bool:
        """The server answers its own protocol (not just an open port)."""

    @abstractmethod
    def version(self) -> str | None: ...

    @abstractmethod
    def _launch(self) -> None: ...

    start_timeout: float = 120.0

    def up(self) -> str:
        """Start unless already running; returns what happened, for the status table."""
        if self.proc.pid() is not None:
            wait_until(self.ready, timeout=self.start_timeout, what=self.name, proc=self.proc)
            return "already running"
        if port_open(*self.host_port):
            if self.ready():
                return "already running (not started by tickwatch; left alone)"
            raise StackError(
                f"Port {self.address} is taken by another program, so {self.name} cannot start. "
                f"Stop that program or set another address (see docs/configuration.md)."
            )
        self._launch()
        wait_until(self.ready, timeout=self.start_timeout, what=self.name, proc=self.proc)
        return "started"

    def down(self) -> bool:
        return self.proc.stop()


class Redis(Service):
    name = "redis"
    start_timeout = 30.0

    @property
    def host_port(self) -> tuple[str, int]:
        return self.settings.redis_host_port

    def _cli(self, *args: str) -> str | None:
        host, port = self.host_port
        try:
            out = subprocess.run(
                ["redis-cli", "-h", host, "-p", str(port), *args], capture_output=True, text=True, timeout=5
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout if out.returncode == 0 else None

    def ready(self) -> bool:
        return (self._cli("PING") or "").strip() == "PONG"

    def version(self) -> str | None:
        info = self._cli("INFO", "server") or ""
        return next(
            (line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("redis_version:")), None
        )

    def _launch(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise StackError("redis-server not found: apt-get install redis-server")
        data = self.settings.stack_dir / "redis"
        data.mkdir(parents=True, exist_ok=True)
        host, port = self.host_port
        self.proc.start(
            [
                server,
                "--bind",
                host,
                "--port",
                str(port),
                "--dir",
                str(data),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--daemonize",
                "no",
                # One database per concurrent test namespace (tests lease them, see tests/conftest.py).
                "--databases",
                "64",
            ]
        )


class Kafka(Service):
    name = "kafka"

    @property
    def host_port(self) -> tuple[str, int]:
        return self.settings.kafka_host_port

    def ready(self) -> bool:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        if not port_open(*self.host_port):
            return False
        try:
            admin = KafkaAdminClient(bootstrap_servers=self.address, request_timeout_ms=3000)
        except (KafkaError, OSError, ValueError):
            return False
        try:
            admin.list_topics()
            return True
        except (KafkaError, OSError):
            return False
        finally:
            admin.close()

    def version(self) -> str | None:
        return self.settings.kafka_version if self.ready() else None

    def _config(self, data_dir: Path) -> Path:
        host, port = self.host_port
        controller = f"{host}:{port + 1}"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{controller}",
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{controller}",
            "advertised.listeners": f"PLAINTEXT://{host}:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(data_dir),
            "num.partitions": str(self.settings.ticks_partitions),
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }
        path = self.settings.stack_dir / "kafka" / "server.properties"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{key}={value}\n" for key, value in props.items()))
        (path.parent / "log4j2.properties").write_text(
            "rootLogger.level=WARN\nrootLogger.appenderRef.console.ref=console\n"
            "appender.console.type=Console\nappender.console.name=console\n"
            "appender.console.layout.type=PatternLayout\n"
            "appender.console.layout.pattern=[%d] %p %m (%c)%n\n"
            "logger.kafka.name=kafka.server.KafkaRaftServer\nlogger.kafka.level=INFO\n"
        )
        return path

    def _launch(self) -> None:
        home = java_home(17)
        libs = downloads.kafka_libs(self.settings.cache_dir, self.settings.kafka_version)
        data_dir = self.settings.stack_dir / "kafka" / "data"
        config = self._config(data_dir)
        java = str(home / "bin" / "java")
        classpath = f"{libs}/*"
        log_config = f"-Dlog4j2.configurationFile={config.parent / 'log4j2.properties'}"
        if not (data_dir / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            result = subprocess.run(
                [
                    java,
                    log_config,
                    "-cp",
                    classpath,
                    "kafka.tools.StorageTool",
                    "format",
                    f"--cluster-id={cluster_id}",  # one form: an id may start with "-" (base64url)
                    "-c",
                    str(config),
                ],
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                raise StackError(f"Formatting Kafka's storage failed:\n{result.stdout}{result.stderr}")
        heap = self.settings.kafka_heap
        self.proc.start(
            [
                java,
                f"-Xms{heap}",
                f"-Xmx{heap}",
                "-XX:+UseG1GC",
                log_config,
                "-cp",
                classpath,
                "kafka.Kafka",
                str(config),
            ]
        )


class Elasticsearch(Service):
    name = "elasticsearch"
    start_timeout = 180.0

    @property
    def host_port(self) -> tuple[str, int]:
        return self.settings.es_host_port

    def _get(self, path: str) -> dict | None:
        try:
            with urlopen(f"{self.settings.es_url.rstrip('/')}{path}", timeout=5) as response:
                return json.load(response)
        except (OSError, ValueError):
            return None

    def ready(self) -> bool:
        health = self._get("/_cluster/health?wait_for_status=yellow&timeout=1s")
        return health is not None and health.get("status") in {"green", "yellow"}

    def version(self) -> str | None:
        # This distribution has no rest-root module, so `GET /` is absent; ask the node instead.
        nodes = self._get("/_nodes/_local/none")
        return next(iter(nodes["nodes"].values()))["version"] if nodes else None

    def _install(self) -> Path:
        version = self.settings.es_version
        home = self.settings.stack_dir / f"elasticsearch-{version}"
        if not (home / "bin" / "elasticsearch").exists():
            archive = downloads.elasticsearch_zip(self.settings.cache_dir, version)
            with zipfile.ZipFile(archive) as zipped:
                zipped.extractall(self.settings.stack_dir)
            for script in (home / "bin").iterdir():
                script.chmod(0o755)
        return home

    def _launch(self) -> None:
        jdk = java_home(17)
        home = self._install()
        data, logs, tmp = (self.settings.stack_dir / name for name in ("es-data", "es-logs", "es-tmp"))
        for folder in (data, logs, tmp):
            folder.mkdir(parents=True, exist_ok=True)
        host, port = self.host_port
        # Left over from a start with security on, these would make ES demand TLS settings again.
        (home / "config" / "elasticsearch.keystore").unlink(missing_ok=True)
        shutil.rmtree(home / "config" / "certs", ignore_errors=True)
        (home / "config" / "elasticsearch.yml").write_text(
            "cluster.name: tickwatch\nnode.name: tickwatch-1\n"
            f"path.data: {data}\npath.logs: {logs}\n"
            f"network.host: {host}\nhttp.port: {port}\ntransport.port: {port + 100}\n"
            "discovery.type: single-node\n"
            # A dev stack on a nearly full disk should keep working, not turn read-only.
            "cluster.routing.allocation.disk.threshold_enabled: false\n"
            "action.destructive_requires_name: true\n"
            # This distribution carries a minimal security module; loopback dev stack, plain HTTP.
            + ("xpack.security.enabled: false\n" if (home / "modules" / "x-pack-security").exists() else "")
        )
        user = None
        if os.geteuid() == 0:
            user = ensure_system_user(ES_USER)
            for path in (home, data, logs, tmp):
                chown_tree(path, user)
            self.settings.stack_dir.chmod(0o755)
        heap = self.settings.es_heap
        self.proc.start(
            [str(home / "bin" / "elasticsearch")],
            env={"ES_JAVA_HOME": str(jdk), "ES_JAVA_OPTS": f"-Xms{heap} -Xmx{heap}", "ES_TMPDIR": str(tmp)},
            user=user,
        )


def all_services(settings: Settings) -> list[Service]:
    return [Redis(settings), Kafka(settings), Elasticsearch(settings)]
