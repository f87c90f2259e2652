#!/usr/bin/env python3
"""Real services for the test suite, run as local processes on 127.0.0.1 (no Docker).

Five services: ``redis`` (Debian ``redis-server``), ``moto`` (``moto_server`` from the project
venv), ``localstack`` (``localstack-core`` in host mode, Python 3.13 venv), ``elasticmq`` and
``kafka`` (both JVM programs whose runtime classpath Maven resolves from Maven Central).
Everything downloaded lives under ``.cache/services/`` (gitignored), logs under
``.cache/services/logs/<name>-<port>.log``. Stdlib only: the module runs before any venv exists.

Use it as a module (``start("kafka") -> Service``, ``prepare("kafka")``) or as a CLI::

    python scripts/services.py prepare [NAME ...|all]   # install/download only, idempotent
    python scripts/services.py start NAME               # print KEY=VALUE env, run until SIGTERM
    python scripts/services.py smoke [NAME ...|all]     # start, one real operation, stop

Traps this module exists to avoid (see ``../shared/SERVICES.md``):

- Every process runs in its own session (``start_new_session``), so ``stop()`` can signal the
  whole process group: LocalStack and the JVMs start threads/children that outlive a plain
  ``terminate()`` of the leader. ``redis-server`` therefore runs with ``--daemonize no``; a
  daemonised redis would leave the group and could not be stopped.
- Kafka 4.x poms lack an SLF4J binding; without one the broker logs *nothing* and looks hung.
  4.x gets ``log4j-slf4j-impl`` (the SLF4J 1.7 binding; ``log4j-slf4j2-impl`` is silent) at the
  ``log4j-core`` version Kafka resolves, 3.9.x gets ``slf4j-reload4j``. ``StorageTool format``
  calls ``System.exit``, so it runs as its own process before the broker. Ports are fixed before
  start, and then Kafka opens the client port only once the broker is ready.
- ElasticMQ builds queue URLs from ``node-address``, not from the bound port: both are set.
  Its stats endpoint (default port 9325) is disabled so parallel instances don't collide.
- LocalStack needs Python >= 3.12 and only works with its own pin list (``--no-deps``). A stale
  plux entry-point cache hides import errors behind "No component plugins found"; the cache is
  kept inside ``.cache/services`` (``XDG_CACHE_HOME``) and wiped on every (re)install. Its
  default SQS queue URLs use ``*.localhost.localstack.cloud``, which needs public DNS, so
  ``SQS_ENDPOINT_STRATEGY=path`` keeps them on 127.0.0.1.
- ``urllib`` would honour ``http_proxy``; every local HTTP call here bypasses proxies.
- A readiness failure stops the process and raises :class:`ServiceError` with the last 40
  log lines: a JVM that dies on a port clash or a missing class is then visible in CI output.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import html
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "services"
LOGS = CACHE / "logs"
SHARED = ROOT.parent / "shared"
HOST = "127.0.0.1"
NAMES = ("redis", "moto", "localstack", "elasticmq", "kafka")

# Kafka 4.x works with aiokafka 0.14 (verified with admin/produce/consume); override to pin.
KAFKA_VERSION = os.environ.get("ASYNCMQ_KAFKA_VERSION", "4.4.0")
ELASTICMQ_VERSION = "1.7.1"
LOCALSTACK_VERSION = "2026.3.0"
DEPENDENCY_PLUGIN_VERSION = "3.8.1"
LOG4J_FALLBACK_VERSION = "2.24.3"  # Kafka 4.0.x's log4j2; used only if no log4j jar resolved
RELOAD4J_FALLBACK_VERSION = "1.2.25"

READY_TIMEOUT = {"kafka": 90.0, "localstack": 120.0}
DEFAULT_READY_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
PREPARE_TIMEOUT = 1200.0
TAIL_LINES = 40

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServiceError(RuntimeError):
    """A service could not be prepared, started or checked."""


@dataclass
class Service:
    """A running local service; ``stop()`` (or leaving ``with``) ends it and removes its data."""

    name: str
    url: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    cleanup: list[Path] = field(default_factory=list, repr=False)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Terminate the process group, wait, kill after ``timeout``; idempotent."""
        proc, self.process = self.process, None
        if proc is not None:
            _terminate(proc, timeout)
        for path in self.cleanup:
            shutil.rmtree(path, ignore_errors=True)
        self.cleanup.clear()

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- process helpers


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(10)
    # The leader is gone; children it left in its group (JVM helpers, workers) go too.
    _signal_group(proc.pid, signal.SIGKILL)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file (empty if missing)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _launch(name: str, cmd: list[str], log_path: Path, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.Popen[bytes]:
    LOGS.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:  # the child keeps its own descriptor
        log.write(f"$ {' '.join(cmd)}\n".encode())
        log.flush()
        try:
            return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True)
        except OSError as exc:
            raise ServiceError(f"{name}: cannot run {cmd[0]}: {exc}") from exc


def _fail(service: Service, reason: str) -> ServiceError:
    service.stop()
    return ServiceError(f"{service.name}: {reason}; last {TAIL_LINES} lines of {service.log_path}:\n"
                        f"{tail(service.log_path)}")


def _wait_ready(service: Service, check: Callable[[], bool]) -> None:
    timeout = READY_TIMEOUT.get(service.name, DEFAULT_READY_TIMEOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = service.process
        if proc is None or proc.poll() is not None:
            raise _fail(service, f"exited early (code {proc and proc.returncode})")
        with contextlib.suppress(OSError):
            if check():
                return
        time.sleep(0.25)
    raise _fail(service, f"not ready after {timeout:.0f}s")


def _port_open(port: int) -> bool:
    with socket.create_connection((HOST, port), timeout=1):
        return True


def _http_answers(url: str) -> bool:
    """True once anything HTTP answers (an HTTP error status counts as an answer)."""
    try:
        with _NO_PROXY.open(url, timeout=2) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        exc.close()
    return True


def _run_step(name: str, cmd: list[str], log_path: Path, env: dict[str, str] | None = None,
              cwd: Path | None = None, timeout: float = PREPARE_TIMEOUT) -> None:
    """Run one install/download command to completion, output appended to ``log_path``."""
    LOGS.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"\n$ {' '.join(map(str, cmd))}\n".encode())
        log.flush()
        try:
            code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  env={**os.environ, **(env or {})}, cwd=cwd, timeout=timeout).returncode
        except (OSError, subprocess.TimeoutExpired) as exc:
            code, reason = -1, str(exc)
        else:
            reason = f"exit code {code}"
    if code != 0:
        raise ServiceError(f"{name}: {' '.join(map(str, cmd[:3]))} ... failed ({reason}); "
                           f"last {TAIL_LINES} lines of {log_path}:\n{tail(log_path)}")


def _say(message: str) -> None:
    print(f"[services] {message}", flush=True)


# --------------------------------------------------------------------------- Maven (JVM services)


def _pom(artifact: str, deps: list[tuple[str, str, str]]) -> str:
    dep_xml = "".join(f"\n    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
                      f"<version>{v}</version></dependency>" for g, a, v in deps)
    return f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.asyncmq-cloud.services</groupId><artifactId>{artifact}</artifactId>
  <version>0</version><packaging>pom</packaging>
  <dependencies>{dep_xml}
  </dependencies>
  <build><plugins><plugin>
    <groupId>org.apache.maven.plugins</groupId><artifactId>maven-dependency-plugin</artifactId>
    <version>{DEPENDENCY_PLUGIN_VERSION}</version>
  </plugin></plugins></build>
</project>
"""


def _maven_copy(name: str, home: Path, deps: list[tuple[str, str, str]], libs: Path) -> None:
    """Resolve ``deps`` with their runtime closure into ``libs`` (local repo under the cache)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "pom.xml").write_text(_pom(home.name, deps))
    _run_step(name, ["mvn", "-B", "-ntp", "-f", str(home / "pom.xml"),
                     f"-Dmaven.repo.local={CACHE / 'm2'}", "dependency:copy-dependencies",
                     "-DincludeScope=runtime", f"-DoutputDirectory={libs}"],
              LOGS / f"prepare-{name}.log")


def _jar_version(libs: Path, artifact: str) -> str | None:
    for jar in libs.glob(f"{artifact}-*.jar"):
        match = re.fullmatch(rf"{re.escape(artifact)}-(\d[\w.\-]*)\.jar", jar.name)
        if match:
            return match.group(1)
    return None


def _java_cmd(libs: Path, heap: tuple[str, str], *args: str) -> list[str]:
    return ["java", f"-Xms{heap[0]}", f"-Xmx{heap[1]}", "-Djava.awt.headless=true",
            "-cp", f"{libs}/*", *args]


# --------------------------------------------------------------------------- prepare


def _prepare_redis() -> None:
    if shutil.which("redis-server"):
        return
    if os.geteuid() != 0:
        raise ServiceError("redis: redis-server missing; run: apt-get install -y redis-server")
    _say("redis: installing Debian package redis-server")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    log = LOGS / "prepare-redis.log"
    try:
        _run_step("redis", ["apt-get", "install", "-y", "-q", "redis-server"], log, env, timeout=600)
    except ServiceError:
        _run_step("redis", ["apt-get", "update", "-q"], log, env, timeout=600)
        _run_step("redis", ["apt-get", "install", "-y", "-q", "redis-server"], log, env, timeout=600)


def _moto_server() -> Path | None:
    candidates = [Path(sys.executable).parent / "moto_server", ROOT / ".venv" / "bin" / "moto_server"]
    found = shutil.which("moto_server")
    candidates += [Path(found)] if found else []
    return next((path for path in candidates if path.exists()), None)


def _prepare_moto() -> None:
    if _moto_server() is None:
        raise ServiceError("moto: moto_server not found; install the dev extra: pip install -e '.[dev]'")


def _localstack_paths() -> tuple[Path, Path, Path]:
    venv = CACHE / "localstack-venv"
    return venv, venv / "bin" / "python", CACHE / "localstack-home" / "cache"


def _prepare_localstack() -> None:
    venv, python, xdg_cache = _localstack_paths()
    constraints = SHARED / f"localstack-{LOCALSTACK_VERSION}-constraints.txt"
    if not constraints.exists():
        raise ServiceError(f"localstack: pin list {constraints} is missing")
    stamp = hashlib.sha256(constraints.read_bytes() + LOCALSTACK_VERSION.encode()).hexdigest()
    marker = venv / ".asyncmq-installed"
    if marker.exists() and marker.read_text() == stamp:
        return
    log = LOGS / "prepare-localstack.log"
    if not python.exists():
        _say(f"localstack: creating Python 3.13 venv {venv}")
        _run_step("localstack", ["python3.13", "-m", "venv", str(venv)], log, {"PYENV_VERSION": "3.13.0"})
    _say(f"localstack: pip install localstack-core=={LOCALSTACK_VERSION} (pinned, --no-deps; log {log})")
    _run_step("localstack", [str(python), "-m", "pip", "install", "-q", "--no-deps", "-r", str(constraints),
                             f"localstack-core=={LOCALSTACK_VERSION}"], log)
    shutil.rmtree(xdg_cache, ignore_errors=True)  # stale plux cache hides import errors
    _run_step("localstack", [str(python), "-c", "import localstack.aws.app"], log,
              {"XDG_CACHE_HOME": str(xdg_cache)}, timeout=300)
    marker.write_text(stamp)


def _elasticmq_libs() -> Path:
    return CACHE / f"elasticmq-{ELASTICMQ_VERSION}" / "libs"


def _prepare_elasticmq() -> None:
    libs = _elasticmq_libs()
    if (libs / ".complete").exists():
        return
    _say(f"elasticmq: resolving org.elasticmq:elasticmq-server_2.13:{ELASTICMQ_VERSION} with Maven")
    shutil.rmtree(libs, ignore_errors=True)
    _maven_copy("elasticmq", libs.parent, [("org.elasticmq", "elasticmq-server_2.13", ELASTICMQ_VERSION)], libs)
    (libs / ".complete").write_text(ELASTICMQ_VERSION)


def _kafka_home(version: str = KAFKA_VERSION) -> Path:
    return CACHE / f"kafka-{version}"


def _kafka_logging_deps(libs: Path, version: str) -> list[tuple[str, str, str]]:
    """The SLF4J binding the published pom lacks, at the versions Kafka itself resolved."""
    if int(version.split(".")[0]) < 4:
        slf4j = _jar_version(libs, "slf4j-api") or "1.7.36"
        reload4j = _jar_version(libs, "reload4j") or RELOAD4J_FALLBACK_VERSION
        return [("org.slf4j", "slf4j-reload4j", slf4j), ("ch.qos.reload4j", "reload4j", reload4j)]
    log4j = _jar_version(libs, "log4j-core") or _jar_version(libs, "log4j-api") or LOG4J_FALLBACK_VERSION
    group = "org.apache.logging.log4j"
    return [(group, "log4j-api", log4j), (group, "log4j-core", log4j), (group, "log4j-slf4j-impl", log4j)]


_LOG4J2_PROPERTIES = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
"""
_LOG4J_PROPERTIES = """\
log4j.rootLogger=INFO, out
log4j.appender.out=org.apache.log4j.ConsoleAppender
log4j.appender.out.layout=org.apache.log4j.PatternLayout
log4j.appender.out.layout.ConversionPattern=[%d] %p %m (%c)%n
"""


def _prepare_kafka(version: str = KAFKA_VERSION) -> None:
    home = _kafka_home(version)
    libs = home / "libs"
    if (libs / ".complete").exists():
        return
    _say(f"kafka: resolving org.apache.kafka:kafka_2.13:{version} with Maven")
    shutil.rmtree(libs, ignore_errors=True)
    kafka = [("org.apache.kafka", "kafka_2.13", version)]
    _maven_copy("kafka", home, kafka, libs)
    logging_deps = _kafka_logging_deps(libs, version)
    _say(f"kafka: adding SLF4J binding {', '.join(f'{a}:{v}' for _, a, v in logging_deps)}")
    _maven_copy("kafka", home, kafka + logging_deps, libs)
    (home / "log4j2.properties").write_text(_LOG4J2_PROPERTIES)
    (home / "log4j.properties").write_text(_LOG4J_PROPERTIES)
    (libs / ".complete").write_text(version)


_PREPARE: dict[str, Callable[[], None]] = {
    "redis": _prepare_redis,
    "moto": _prepare_moto,
    "localstack": _prepare_localstack,
    "elasticmq": _prepare_elasticmq,
    "kafka": _prepare_kafka,
}


def prepare(name: str) -> float:
    """Install/download what ``name`` needs (idempotent); returns the seconds it took."""
    if name not in _PREPARE:
        raise ServiceError(f"unknown service {name!r}; choose from {', '.join(NAMES)}")
    began = time.monotonic()
    _PREPARE[name]()
    elapsed = time.monotonic() - began
    _say(f"{name}: prepared ({elapsed:.1f}s)")
    return elapsed


# --------------------------------------------------------------------------- start


def _start_redis() -> Service:
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="redis-"))
    log = LOGS / f"redis-{port}.log"
    cmd = ["redis-server", "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
           "--daemonize", "no", "--dir", str(data), "--logfile", ""]
    url = f"redis://{HOST}:{port}/0"
    service = Service("redis", url, {"REDIS_URL": url}, log, _launch("redis", cmd, log), [data])
    _wait_ready(service, lambda: _redis_command(port, "PING") == "PONG")
    return service


def _start_moto() -> Service:
    server = _moto_server()
    if server is None:
        raise ServiceError("moto: moto_server not found")
    port = free_port()
    log = LOGS / f"moto-{port}.log"
    url = f"http://{HOST}:{port}"
    service = Service("moto", url, {"AWS_ENDPOINT_URL": url}, log,
                      _launch("moto", [str(server), "-H", HOST, "-p", str(port)], log))
    _wait_ready(service, lambda: _http_answers(f"{url}/moto-api/"))
    return service


def _start_localstack() -> Service:
    _venv, python, xdg_cache = _localstack_paths()
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="localstack-"))
    log = LOGS / f"localstack-{port}.log"
    url = f"http://{HOST}:{port}"
    env = {
        "GATEWAY_LISTEN": f"{HOST}:{port}", "LOCALSTACK_HOST": f"{HOST}:{port}",
        "SERVICES": "sqs,s3,sts", "SQS_ENDPOINT_STRATEGY": "path", "DNS_ADDRESS": "0",
        "SKIP_SSL_CERT_DOWNLOAD": "1", "DISABLE_EVENTS": "1", "LOCALSTACK_VOLUME_DIR": str(data / "volume"),
        "XDG_CACHE_HOME": str(xdg_cache), "PYTHONUNBUFFERED": "1",
    }
    proc = _launch("localstack", [str(python), "-m", "localstack.runtime.main"], log, env, cwd=data)
    service = Service("localstack", url, {"LOCALSTACK_ENDPOINT_URL": url}, log, proc, [data])
    _wait_ready(service, lambda: _http_ok(f"{url}/_localstack/health"))
    return service


def _http_ok(url: str) -> bool:
    with _NO_PROXY.open(url, timeout=2) as resp:
        resp.read()
        return 200 <= resp.status < 300


def _elasticmq_conf(port: int) -> str:
    return f"""include classpath("application.conf")
node-address {{ protocol = http, host = "{HOST}", port = {port}, context-path = "" }}
rest-sqs {{ enabled = true, bind-port = {port}, bind-hostname = "{HOST}", sqs-limits = strict }}
rest-stats {{ enabled = false }}
aws {{ region = us-east-1, accountId = "000000000000" }}
"""


def _start_elasticmq() -> Service:
    libs = _elasticmq_libs()
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="elasticmq-"))
    (data / "elasticmq.conf").write_text(_elasticmq_conf(port))
    log = LOGS / f"elasticmq-{port}.log"
    url = f"http://{HOST}:{port}"
    cmd = _java_cmd(libs, ("64m", "256m"), f"-Dconfig.file={data / 'elasticmq.conf'}", "org.elasticmq.server.Main")
    service = Service("elasticmq", url, {"ELASTICMQ_ENDPOINT_URL": url}, log,
                      _launch("elasticmq", cmd, log, cwd=data), [data])
    _wait_ready(service, lambda: _http_answers(f"{url}/?Action=ListQueues"))
    return service


def _kafka_properties(broker: int, controller: int, data: Path, version: str) -> str:
    lines = [
        "process.roles=broker,controller", "node.id=1", f"controller.quorum.voters=1@{HOST}:{controller}",
        f"listeners=PLAINTEXT://{HOST}:{broker},CONTROLLER://{HOST}:{controller}",
        f"advertised.listeners=PLAINTEXT://{HOST}:{broker}", "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        f"log.dirs={data / 'logs'}", "num.partitions=1", "default.replication.factor=1",
        "offsets.topic.replication.factor=1", "offsets.topic.num.partitions=1",
        "transaction.state.log.replication.factor=1", "transaction.state.log.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
    ]
    if int(version.split(".")[0]) >= 4:
        lines += ["share.coordinator.state.topic.replication.factor=1", "share.coordinator.state.topic.min.isr=1"]
    return "\n".join(lines) + "\n"


def _start_kafka(version: str = KAFKA_VERSION) -> Service:
    home = _kafka_home(version)
    libs = home / "libs"
    broker, controller = free_port(), free_port()
    data = Path(tempfile.mkdtemp(prefix="kafka-"))
    props = data / "server.properties"
    props.write_text(_kafka_properties(broker, controller, data, version))
    log = LOGS / f"kafka-{broker}.log"
    logging = [f"-Dlog4j2.configurationFile={home / 'log4j2.properties'}",
               f"-Dlog4j.configuration=file:{home / 'log4j.properties'}", f"-Dkafka.logs.dir={data}"]
    # A cluster id is a base64url UUID without padding (what `kafka-storage random-uuid` prints).
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    fmt = _java_cmd(libs, ("128m", "256m"), *logging, "kafka.tools.StorageTool",
                    "format", "-t", cluster_id, "-c", str(props))
    try:
        _run_step("kafka", fmt, log, cwd=data, timeout=90)
    except ServiceError:
        shutil.rmtree(data, ignore_errors=True)
        raise
    cmd = _java_cmd(libs, ("256m", "512m"), *logging, "kafka.Kafka", str(props))
    bootstrap = f"{HOST}:{broker}"
    service = Service("kafka", bootstrap, {"KAFKA_BOOTSTRAP_SERVERS": bootstrap}, log,
                      _launch("kafka", cmd, log, cwd=data), [data])
    _wait_ready(service, lambda: _port_open(broker))
    return service
