#!/usr/bin/env python3
"""Real services for the test suite, run as local processes on 127.0.0.1 (no Docker).

Six services: ``redis`` (Debian ``redis-server``), ``moto`` (``moto_server`` from the project
venv), ``localstack`` (``localstack-core`` in host mode, Python 3.13 venv), ``ministack``
(MiniStack, its own venv: it pins botocore exactly), ``elasticmq`` and ``kafka`` (both JVM
programs whose runtime classpath Maven resolves from Maven Central).
Everything downloaded lives under ``.cache/services/`` (gitignored), logs under
``.cache/services/logs/<name>-<port>.log``. Stdlib only: the module runs before any venv exists.

Use it as a module (``start("kafka") -> Service``, ``prepare("kafka")``) or as a CLI::

    python scripts/services.py prepare [NAME ...|all]   # install/download only, idempotent
    python scripts/services.py start NAME               # print KEY=VALUE env, run until SIGTERM
    python scripts/services.py up --env-file F [NAME ...|all]  # start several at once, write F, run until SIGTERM
    python scripts/services.py smoke [NAME ...|all]     # start, one real operation, stop

Traps this module exists to avoid:

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
  Ctrl-C or a pytest-timeout during a start stops the half-started process too. Only a
  SIGKILLed parent leaves its services behind (they are in their own sessions); the log file
  name carries the port, the first log line the command.
- ``prepare`` holds a per-service file lock (``.cache/services/.prepare-NAME.lock``): parallel
  pytest runs share the cache. Maven runs with ``-U`` so a failed download it cached is retried.

Environment: ``ASYNCMQ_KAFKA_VERSION`` picks another broker version (default below, verified
with aiokafka 0.14; 3.9.1 verified too).
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import contextlib
import fcntl
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
HOST = "127.0.0.1"
NAMES = ("redis", "moto", "localstack", "elasticmq", "kafka", "ministack")

# Newest broker verified with aiokafka 0.14 (admin, idempotent and transactional produce, group
# consume/commit, offsets); ASYNCMQ_KAFKA_VERSION=3.9.1 selects the 3.9 line (also verified).
KAFKA_VERSION = os.environ.get("ASYNCMQ_KAFKA_VERSION", "4.4.0")
ELASTICMQ_VERSION = "1.7.1"
LOCALSTACK_VERSION = "2026.3.0"
MINISTACK_VERSION = "1.5.33"
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


# --------------------------------------------------------------------------- processes


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
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _failure(name: str, reason: str, log_path: Path) -> ServiceError:
    return ServiceError(f"{name}: {reason}; last {TAIL_LINES} lines of {log_path}:\n{tail(log_path)}")


def _spawn(name: str, cmd: list[str], log_path: Path, env: dict[str, str] | None,
           cwd: Path | None) -> subprocess.Popen[bytes]:  # fmt: skip
    """Start ``cmd`` in its own session, output appended to ``log_path``."""
    LOGS.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:  # the child keeps its own descriptor
        log.write(f"\n$ {' '.join(map(str, cmd))}\n".encode())
        log.flush()
        try:
            return subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            raise ServiceError(f"{name}: cannot run {cmd[0]}: {exc}") from exc


#: Install steps running now (``prepare`` stops them on SIGTERM: each runs in its own session).
_STEPS: set[subprocess.Popen[bytes]] = set()


def _stop_steps(signum: int, _frame: object) -> None:
    for proc in list(_STEPS):
        _signal_group(proc.pid, signal.SIGTERM)
    os._exit(128 + signum)


def _run_step(name: str, cmd: list[str], log_path: Path, env: dict[str, str] | None = None,
              cwd: Path | None = None, timeout: float = PREPARE_TIMEOUT) -> None:  # fmt: skip
    """Run one install/format command to completion; on timeout or Ctrl-C its group is killed."""
    proc = _spawn(name, cmd, log_path, env, cwd)
    _STEPS.add(proc)
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _terminate(proc, STOP_TIMEOUT)
        raise _failure(name, f"{cmd[0]} timed out after {timeout:.0f}s", log_path) from None
    except BaseException:
        _terminate(proc, STOP_TIMEOUT)
        raise
    finally:
        _STEPS.discard(proc)
    if code != 0:
        raise _failure(name, f"{' '.join(map(str, cmd[:3]))} ... failed (exit code {code})", log_path)


def _boot(service: Service, cmd: list[str], check: Callable[[], bool], env: dict[str, str] | None = None,
          cwd: Path | None = None) -> Service:  # fmt: skip
    """Spawn the service and poll ``check`` until it answers; anything else stops it again."""
    timeout = READY_TIMEOUT.get(service.name, DEFAULT_READY_TIMEOUT)
    deadline = time.monotonic() + timeout
    try:
        service.process = proc = _spawn(service.name, cmd, service.log_path, env, cwd)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ServiceError(f"exited early (code {proc.returncode})")
            with contextlib.suppress(OSError):
                if check():
                    return service
            time.sleep(0.25)
        raise ServiceError(f"not ready after {timeout:.0f}s")
    except ServiceError as exc:
        service.stop()
        raise _failure(service.name, str(exc), service.log_path) from None
    except BaseException:  # Ctrl-C, pytest-timeout: never leave the process behind
        service.stop()
        raise


def _port_open(port: int) -> bool:
    with socket.create_connection((HOST, port), timeout=1):
        return True


def _http_status(url: str) -> int:
    """The HTTP status ``url`` answers with (an error status is an answer too); proxies bypassed."""
    try:
        with _NO_PROXY.open(url, timeout=2) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


def _say(message: str) -> None:
    print(f"[services] {message}", flush=True)


# --------------------------------------------------------------------------- prepare


def _pom(artifact: str, deps: list[tuple[str, str, str]]) -> str:
    dep_xml = "".join(
        f"\n    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version></dependency>"
        for g, a, v in deps
    )
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


def _maven_copy(name: str, home: Path, deps: list[tuple[str, str, str]]) -> Path:
    """Copy ``deps`` and their runtime closure into ``home/libs`` (Maven's local repo in the cache)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "pom.xml").write_text(_pom(home.name, deps))
    # -U: retry artifacts whose earlier failed lookup Maven cached in the local repository.
    goal = "-B -ntp -U dependency:copy-dependencies -DincludeScope=runtime".split()
    paths = [f"-Dmaven.repo.local={CACHE / 'm2'}", f"-DoutputDirectory={home / 'libs'}"]
    _run_step(name, ["mvn", "-f", str(home / "pom.xml"), *goal, *paths], LOGS / f"prepare-{name}.log")
    return home / "libs"


def _jar_version(libs: Path, artifact: str) -> str | None:
    for jar in libs.glob(f"{artifact}-*.jar"):
        match = re.fullmatch(rf"{re.escape(artifact)}-(\d[\w.\-]*)\.jar", jar.name)
        if match:
            return match.group(1)
    return None


def _prepare_redis() -> None:
    if shutil.which("redis-server"):
        return
    if os.geteuid() != 0:
        raise ServiceError("redis: redis-server missing; run: apt-get install -y redis-server")
    _say("redis: installing Debian package redis-server")
    env, log = {"DEBIAN_FRONTEND": "noninteractive"}, LOGS / "prepare-redis.log"
    install = ["apt-get", "install", "-y", "-q", "redis-server"]
    try:
        _run_step("redis", install, log, env, timeout=600)
    except ServiceError:  # package lists missing or stale on a fresh machine
        _run_step("redis", ["apt-get", "update", "-q"], log, env, timeout=600)
        _run_step("redis", install, log, env, timeout=600)


def _moto_server() -> Path | None:
    candidates = [Path(sys.executable).parent / "moto_server", ROOT / ".venv" / "bin" / "moto_server"]
    found = shutil.which("moto_server")
    candidates += [Path(found)] if found else []
    return next((path for path in candidates if path.exists()), None)


def _prepare_moto() -> None:
    if _moto_server() is None:
        raise ServiceError("moto: moto_server not found; install the dev extra: pip install -e '.[dev]'")


LOCALSTACK_VENV = CACHE / "localstack-venv"
LOCALSTACK_XDG_CACHE = CACHE / "localstack-home" / "cache"  # where plux keeps its entry-point cache


def _pinned_venv(
    name: str,
    venv: Path,
    constraints: Path,
    requirement: str,
    create: tuple[list[str], dict[str, str] | None],
    check: Callable[[Path, Path], None],
) -> None:
    """Install ``requirement`` with its pin list (``--no-deps``) into a venv of its own, once per
    pin list; ``create`` makes the venv (command, env), ``check(python, log)`` proves the install."""
    python = venv / "bin" / "python"
    if not constraints.exists():
        raise ServiceError(f"{name}: pin list {constraints} is missing")
    stamp = hashlib.sha256(constraints.read_bytes() + requirement.encode()).hexdigest()
    marker = venv / ".asyncmq-installed"
    if marker.exists() and marker.read_text() == stamp:
        return
    log = LOGS / f"prepare-{name}.log"
    if not python.exists():
        _say(f"{name}: creating venv {venv}")
        _run_step(name, create[0], log, create[1], timeout=300)
    pip = [str(python), "-m", "pip", "install", "-q", "--no-deps", "-r", str(constraints), requirement]
    uv = Path(sys.executable).parent / "uv"  # scripts/_venv.sh installs it (decision 61)
    if uv.exists() and not os.environ.get("ASYNCMQ_CLOUD_NO_UV"):
        _say(f"{name}: uv pip install {requirement} (pinned, --no-deps; log {log})")
        try:
            _run_step(name, [str(uv), "pip", "install", "--python", str(python), *pip[4:]], log)
        except ServiceError as exc:
            _say(f"{name}: uv failed ({exc}); installing with pip")
            _run_step(name, pip, log)
    else:
        _say(f"{name}: pip install {requirement} (pinned, --no-deps; log {log})")
        _run_step(name, pip, log)
    check(python, log)
    marker.write_text(stamp)


def _prepare_localstack() -> None:
    def check(python: Path, log: Path) -> None:
        shutil.rmtree(LOCALSTACK_XDG_CACHE, ignore_errors=True)  # a stale plux cache hides import errors
        probe = [str(python), "-c", "import localstack.aws.app"]  # fails loudly where plux would not
        _run_step("localstack", probe, log, {"XDG_CACHE_HOME": str(LOCALSTACK_XDG_CACHE)}, timeout=300)

    create = (["python3.13", "-m", "venv", str(LOCALSTACK_VENV)], {"PYENV_VERSION": "3.13.0"})
    constraints = ROOT / "localstack" / f"constraints-{LOCALSTACK_VERSION}.txt"
    _pinned_venv("localstack", LOCALSTACK_VENV, constraints, f"localstack-core=={LOCALSTACK_VERSION}", create, check)


MINISTACK_VENV = CACHE / "ministack-venv"


def _prepare_ministack() -> None:
    def check(python: Path, log: Path) -> None:
        _run_step("ministack", [str(python), "-c", "import ministack.app"], log, timeout=300)

    create = ([sys.executable, "-m", "venv", str(MINISTACK_VENV)], None)
    constraints = ROOT / "scripts" / "constraints" / f"ministack-{MINISTACK_VERSION}.txt"
    _pinned_venv("ministack", MINISTACK_VENV, constraints, f"ministack=={MINISTACK_VERSION}", create, check)


ELASTICMQ_HOME = CACHE / f"elasticmq-{ELASTICMQ_VERSION}"


def _prepare_elasticmq() -> None:
    if (ELASTICMQ_HOME / "libs" / ".complete").exists():
        return
    _say(f"elasticmq: resolving org.elasticmq:elasticmq-server_2.13:{ELASTICMQ_VERSION} with Maven")
    shutil.rmtree(ELASTICMQ_HOME / "libs", ignore_errors=True)
    libs = _maven_copy("elasticmq", ELASTICMQ_HOME, [("org.elasticmq", "elasticmq-server_2.13", ELASTICMQ_VERSION)])
    (libs / ".complete").write_text(ELASTICMQ_VERSION)


def _kafka_home(version: str) -> Path:
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


# Console logging at INFO for both log4j generations (4.x: log4j2, 3.9.x: reload4j).
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


def _prepare_kafka(version: str | None = None) -> None:
    version = version or KAFKA_VERSION
    home = _kafka_home(version)
    if (home / "libs" / ".complete").exists():
        return
    _say(f"kafka: resolving org.apache.kafka:kafka_2.13:{version} with Maven")
    shutil.rmtree(home / "libs", ignore_errors=True)
    kafka = [("org.apache.kafka", "kafka_2.13", version)]
    logging_deps = _kafka_logging_deps(_maven_copy("kafka", home, kafka), version)
    _say(f"kafka: adding SLF4J binding {', '.join(f'{a}:{v}' for _, a, v in logging_deps)}")
    libs = _maven_copy("kafka", home, kafka + logging_deps)
    (home / "log4j2.properties").write_text(_LOG4J2_PROPERTIES)
    (home / "log4j.properties").write_text(_LOG4J_PROPERTIES)
    (libs / ".complete").write_text(version)


_PREPARE: dict[str, Callable[[], None]] = {
    "redis": _prepare_redis,
    "moto": _prepare_moto,
    "localstack": _prepare_localstack,
    "elasticmq": _prepare_elasticmq,
    "kafka": _prepare_kafka,
    "ministack": _prepare_ministack,
}


@contextlib.contextmanager
def _prepare_lock(name: str) -> Iterator[None]:
    """One preparer per service at a time (parallel pytest runs share the cache)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".prepare-{name}.lock", "wb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _prepare_quietly(name: str) -> None:
    if name not in _PREPARE:
        raise ServiceError(f"unknown service {name!r}; choose from {', '.join(NAMES)}")
    with _prepare_lock(name):
        _PREPARE[name]()


def prepare(name: str) -> float:
    """Install/download what ``name`` needs (idempotent); prints progress, returns the seconds taken."""
    began = time.monotonic()
    _prepare_quietly(name)
    elapsed = time.monotonic() - began
    _say(f"{name}: prepared ({elapsed:.1f}s)")
    return elapsed


# --------------------------------------------------------------------------- start


def _java(libs: Path, heap: tuple[str, str], *args: str) -> list[str]:
    return ["java", f"-Xms{heap[0]}", f"-Xmx{heap[1]}", "-Djava.awt.headless=true", "-cp", f"{libs}/*", *args]


def _start_redis() -> Service:
    port, data = free_port(), Path(tempfile.mkdtemp(prefix="redis-"))
    url = f"redis://{HOST}:{port}/0"
    service = Service("redis", url, {"REDIS_URL": url}, LOGS / f"redis-{port}.log", cleanup=[data])
    # --daemonize no: a daemonised redis leaves our process group and could not be stopped.
    options = ("--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "")
    cmd = ["redis-server", "--port", str(port), "--bind", HOST, "--dir", str(data), *options]
    return _boot(service, cmd, lambda: _redis_command(port, "PING") == "PONG")


def _start_moto() -> Service:
    server = _moto_server()
    if server is None:
        raise ServiceError("moto: moto_server not found")
    port = free_port()
    url = f"http://{HOST}:{port}"
    service = Service("moto", url, {"AWS_ENDPOINT_URL": url}, LOGS / f"moto-{port}.log")
    # moto_atomic.py: moto's app with DynamoDB writes serialized (see its docstring).
    python = server.parent / "python"
    interpreter = str(python if python.exists() else sys.executable)
    cmd = [interpreter, str(ROOT / "scripts" / "moto_atomic.py"), HOST, str(port)]
    return _boot(service, cmd, lambda: _http_status(f"{url}/moto-api/") > 0)


def _start_localstack() -> Service:
    port, data = free_port(), Path(tempfile.mkdtemp(prefix="localstack-"))
    url = f"http://{HOST}:{port}"
    env = {
        "GATEWAY_LISTEN": f"{HOST}:{port}",
        "LOCALSTACK_HOST": f"{HOST}:{port}",
        "SERVICES": "sqs,s3,kms,sts",
        "SQS_ENDPOINT_STRATEGY": "path",  # queue URLs on 127.0.0.1, not *.localhost.localstack.cloud
        "DNS_ADDRESS": "0",
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        "DISABLE_EVENTS": "1",
        "LOCALSTACK_VOLUME_DIR": str(data / "volume"),
        "XDG_CACHE_HOME": str(LOCALSTACK_XDG_CACHE),
        "PYTHONUNBUFFERED": "1",
    }
    service = Service("localstack", url, {"LOCALSTACK_ENDPOINT_URL": url}, LOGS / f"localstack-{port}.log",
                      cleanup=[data])  # fmt: skip
    cmd = [str(LOCALSTACK_VENV / "bin" / "python"), "-m", "localstack.runtime.main"]
    return _boot(service, cmd, lambda: _http_status(f"{url}/_localstack/health") == 200, env, cwd=data)


def _start_ministack() -> Service:
    port, data = free_port(), Path(tempfile.mkdtemp(prefix="ministack-"))
    url = f"http://{HOST}:{port}"
    env = {"GATEWAY_PORT": str(port), "BIND_HOST": HOST, "MINISTACK_HOST": HOST, "SERVICES": "dynamodb,sqs,sts",
           "LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}  # fmt: skip
    service = Service("ministack", url, {"MINISTACK_ENDPOINT_URL": url}, LOGS / f"ministack-{port}.log",
                      cleanup=[data])  # fmt: skip
    cmd = [str(MINISTACK_VENV / "bin" / "python"), "-m", "ministack"]
    return _boot(service, cmd, lambda: _http_status(f"{url}/_ministack/health") == 200, env, cwd=data)


def _start_elasticmq() -> Service:
    port, data = free_port(), Path(tempfile.mkdtemp(prefix="elasticmq-"))
    url = f"http://{HOST}:{port}"
    service = Service("elasticmq", url, {"ELASTICMQ_ENDPOINT_URL": url}, LOGS / f"elasticmq-{port}.log",
                      cleanup=[data])  # fmt: skip
    # Queue URLs come from node-address, not from the bound port; the stats port would clash.
    (data / "elasticmq.conf").write_text(f"""include classpath("application.conf")
node-address {{ protocol = http, host = "{HOST}", port = {port}, context-path = "" }}
rest-sqs {{ enabled = true, bind-port = {port}, bind-hostname = "{HOST}", sqs-limits = strict }}
rest-stats {{ enabled = false }}
aws {{ region = us-east-1, accountId = "000000000000" }}
""")
    conf = f"-Dconfig.file={data / 'elasticmq.conf'}"
    cmd = _java(ELASTICMQ_HOME / "libs", ("64m", "256m"), conf, "org.elasticmq.server.Main")
    return _boot(service, cmd, lambda: _http_status(f"{url}/?Action=ListQueues") > 0, cwd=data)


#: SASL users of every broker this module starts (PLAIN and SCRAM-SHA-256/512), for the security tests.
KAFKA_SASL_USER = ("asyncmq", "asyncmq-secret")
KAFKA_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def _kafka_properties(broker: int, controller: int, sasl: int, data: Path, version: str) -> str:
    user, password = KAFKA_SASL_USER
    plain = f'org.apache.kafka.common.security.plain.PlainLoginModule required user_{user}="{password}";'
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    text = f"""process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{HOST}:{controller}
listeners=PLAINTEXT://{HOST}:{broker},SASL_PLAINTEXT://{HOST}:{sasl},CONTROLLER://{HOST}:{controller}
advertised.listeners=PLAINTEXT://{HOST}:{broker},SASL_PLAINTEXT://{HOST}:{sasl}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT
sasl.enabled.mechanisms={",".join(KAFKA_SASL_MECHANISMS)}
listener.name.sasl_plaintext.plain.sasl.jaas.config={plain}
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config={scram}
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config={scram}
log.dirs={data / "logs"}
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
"""
    if int(version.split(".")[0]) >= 4:
        text += "share.coordinator.state.topic.replication.factor=1\nshare.coordinator.state.topic.min.isr=1\n"
    return text


@dataclass
class KafkaService(Service):
    """A broker that can also be halted and resumed on the same ports and data (outage tests)."""

    command: list[str] = field(default_factory=list, repr=False)
    workdir: Path | None = field(default=None, repr=False)
    port: int = 0

    def halt(self, *, hard: bool = False) -> None:
        """Stop the broker process (SIGKILL with ``hard``) but keep its data and ports."""
        proc, self.process = self.process, None
        if proc is None:
            return
        if hard:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(10)
        else:
            _terminate(proc, STOP_TIMEOUT)

    def resume(self) -> None:
        """Start the halted broker again; returns once it accepts clients."""
        if self.process is None:
            _boot(self, self.command, lambda: _port_open(self.port), cwd=self.workdir)


def kafka_cluster_id(random_bytes: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """A KRaft cluster id as ``kafka-storage random-uuid`` prints it: base64url of a UUID, unpadded.

    Like Kafka's own ``Uuid.randomUuid()``, an id starting with ``-`` is drawn again: the
    storage tool would read it as an option (``argument --cluster-id/-t: expected one
    argument``), which made 1 start in 64 fail.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(random_bytes()).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def start_kafka(version: str | None = None) -> KafkaService:
    """A one-node KRaft broker on free ports: PLAINTEXT (``url``) and SASL_PLAINTEXT
    (``env["KAFKA_SASL_BOOTSTRAP_SERVERS"]``, user :data:`KAFKA_SASL_USER`, PLAIN and SCRAM)."""
    version = version or KAFKA_VERSION
    _prepare_quietly("kafka")
    home = _kafka_home(version)
    broker = free_port()
    controller, sasl = free_port(), free_port()
    while len({broker, controller, sasl}) < 3:  # two quick binds to port 0 can, rarely, hand out the same port
        controller, sasl = free_port(), free_port()
    data = Path(tempfile.mkdtemp(prefix="kafka-"))
    bootstrap, props = f"{HOST}:{broker}", data / "server.properties"
    user, password = KAFKA_SASL_USER
    env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "KAFKA_SASL_BOOTSTRAP_SERVERS": f"{HOST}:{sasl}",
           "KAFKA_SASL_USERNAME": user, "KAFKA_SASL_PASSWORD": password}  # fmt: skip
    props.write_text(_kafka_properties(broker, controller, sasl, data, version))
    logging = (f"-Dlog4j2.configurationFile={home / 'log4j2.properties'}",
               f"-Dlog4j.configuration=file:{home / 'log4j.properties'}", f"-Dkafka.logs.dir={data}")  # fmt: skip
    cmd = _java(home / "libs", ("256m", "512m"), *logging, "kafka.Kafka", str(props))
    service = KafkaService("kafka", bootstrap, env, LOGS / f"kafka-{broker}.log", cleanup=[data], command=cmd,
                           workdir=data, port=broker)  # fmt: skip
    # StorageTool calls System.exit, so it runs as its own process. SCRAM users are written at
    # format time (KRaft keeps them in the metadata log).
    cluster_id = kafka_cluster_id()
    scram = [
        arg
        for mech in KAFKA_SASL_MECHANISMS[1:]
        for arg in ("--add-scram", f"{mech}=[name={user},password={password}]")
    ]
    storage = ("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props), *scram)
    try:
        _run_step("kafka", _java(home / "libs", ("128m", "256m"), *logging, *storage), service.log_path, cwd=data,
                  timeout=READY_TIMEOUT["kafka"])  # fmt: skip
    except BaseException:
        service.stop()
        raise
    # With fixed ports, Kafka opens the client port only once the broker is ready.
    return _boot(service, cmd, lambda: _port_open(broker), cwd=data)  # type: ignore[return-value]


_START: dict[str, Callable[[], Service]] = {
    "redis": _start_redis,
    "moto": _start_moto,
    "localstack": _start_localstack,
    "elasticmq": _start_elasticmq,
    "kafka": start_kafka,
    "ministack": _start_ministack,
}


def start(name: str) -> Service:
    """Prepare (if needed) and start ``name`` on free ports; returns once it is ready.

    Raises:
        ServiceError: unknown name, install failed, or not ready in time (with the log's tail).
    """
    _prepare_quietly(name)
    return _START[name]()


# --------------------------------------------------------------------------- smoke operations
# Stdlib-only protocol calls, so the CLI smoke needs no client library.


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ServiceError("connection closed mid-reply")
        chunks += chunk
    return bytes(chunks)


def _redis_command(port: int, *args: str) -> str | None:
    """One RESP command; returns a simple/bulk/integer reply as text."""
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        raw = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    with socket.create_connection((HOST, port), timeout=5) as sock, sock.makefile("rb") as reply:
        sock.sendall(b"".join(parts))
        line = reply.readline().rstrip(b"\r\n").decode()
        kind, rest = line[:1], line[1:]
        if kind == "-":
            raise ServiceError(f"redis error: {rest}")
        if kind == "$":
            return None if rest == "-1" else reply.read(int(rest) + 2)[:-2].decode()
        return rest


def _redis_smoke(service: Service) -> str:
    port = int(service.url.rsplit(":", 1)[1].split("/")[0])
    value = uuid.uuid4().hex
    if _redis_command(port, "SET", "services:smoke", value) != "OK":
        raise ServiceError("redis: SET did not answer OK")
    if _redis_command(port, "GET", "services:smoke") != value:
        raise ServiceError("redis: GET returned another value")
    return "SET/GET round trip"


def _sqs_call(endpoint: str, action: str, path: str = "/", **params: str) -> str:
    """One SQS query-protocol call. Emulators route by the credential scope, never check the signature."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    body = urllib.parse.urlencode({"Action": action, "Version": "2012-11-05", **params}).encode()
    request = urllib.request.Request(
        endpoint + path,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "X-Amz-Date": stamp,
            "Authorization": f"AWS4-HMAC-SHA256 Credential=testing/{stamp[:8]}/us-east-1/sqs/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=00",
        },
    )
    try:
        with _NO_PROXY.open(request, timeout=15) as resp:
            return str(resp.read().decode())
    except urllib.error.HTTPError as exc:
        with exc:
            raise ServiceError(f"SQS {action} -> HTTP {exc.code}: {exc.read()[:500]!r}") from exc


def _xml_value(xml: str, tag: str) -> str:
    match = re.search(rf"<{tag}>(.*?)</{tag}>", xml, re.S)
    if match is None:
        raise ServiceError(f"no <{tag}> in reply: {xml[:300]}")
    return html.unescape(match.group(1))


def _sqs_smoke(service: Service) -> str:
    endpoint = service.url
    queue_url = _xml_value(_sqs_call(endpoint, "CreateQueue", QueueName=f"smoke-{uuid.uuid4().hex[:8]}"), "QueueUrl")
    path = urllib.parse.urlsplit(queue_url).path or "/"
    body = uuid.uuid4().hex
    try:
        _sqs_call(endpoint, "SendMessage", path, QueueUrl=queue_url, MessageBody=body)
        reply = _sqs_call(endpoint, "ReceiveMessage", path, QueueUrl=queue_url, WaitTimeSeconds="2")
    finally:
        _sqs_call(endpoint, "DeleteQueue", path, QueueUrl=queue_url)
    if _xml_value(reply, "Body") != body:
        raise ServiceError(f"{service.name}: received another message body")
    return f"SQS send/receive on {queue_url}"


def kafka_api_versions(bootstrap: str) -> dict[int, tuple[int, int]]:
    """ApiVersions v0 (every broker answers it): ``{api_key: (min_version, max_version)}``."""
    host, port = bootstrap.rsplit(":", 1)
    client = b"asyncmq-services"
    request = struct.pack(">hhih", 18, 0, 1, len(client)) + client
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        reply = _recv_exact(sock, size)
    _correlation, error, count = struct.unpack_from(">ihi", reply)
    if error:
        raise ServiceError(f"kafka: ApiVersions error code {error}")
    return {
        key: (low, high) for key, low, high in (struct.unpack_from(">hhh", reply, 10 + 6 * i) for i in range(count))
    }


def _kafka_smoke(service: Service) -> str:
    versions = kafka_api_versions(service.url)
    produce, fetch = versions[0], versions[1]
    return (
        f"ApiVersions: {len(versions)} APIs, Produce v{produce[0]}-{produce[1]}, "
        f"Fetch v{fetch[0]}-{fetch[1]} (Kafka {KAFKA_VERSION})"
    )


_SMOKE: dict[str, Callable[[Service], str]] = {
    "redis": _redis_smoke,
    "moto": _sqs_smoke,
    "localstack": _sqs_smoke,
    "elasticmq": _sqs_smoke,
    "kafka": _kafka_smoke,
    "ministack": _sqs_smoke,
}


# --------------------------------------------------------------------------- CLI


def _expand(names: list[str]) -> list[str]:
    chosen = list(NAMES) if not names or "all" in names else names
    unknown = [name for name in chosen if name not in NAMES]
    if unknown:
        raise ServiceError(f"unknown service(s) {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    return chosen


def _cli_prepare(names: list[str]) -> int:
    """Prepare ``names`` concurrently (each mostly waits on pip, uv or Maven); 1 if any failed."""
    failed = []

    def one(name: str) -> None:
        try:
            prepare(name)
        except ServiceError as exc:
            print(f"[services] {name}: prepare FAILED: {exc}", file=sys.stderr, flush=True)
            failed.append(name)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(len(names), 1)) as pool:
        list(pool.map(one, dict.fromkeys(names)))
    return 1 if failed else 0


def _cli_smoke(names: list[str]) -> int:
    failed = 0
    for name in names:
        began = time.monotonic()
        try:
            with start(name) as service:
                started = time.monotonic() - began
                result = _SMOKE[name](service)
            print(
                f"smoke {name}: ok  start {started:.1f}s  total {time.monotonic() - began:.1f}s  "
                f"{service.url}  {result}",
                flush=True,
            )
        except (ServiceError, OSError) as exc:
            failed += 1
            print(f"smoke {name}: FAILED after {time.monotonic() - began:.1f}s: {exc}", flush=True)
    print(f"smoke summary: {len(names) - failed} ok, {failed} failed", flush=True)
    return 1 if failed else 0


def _cli_start(name: str) -> int:
    stop_requested: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: stop_requested.append(signum))
    with start(name) as service:
        for key, value in service.env.items():
            print(f"{key}={value}", flush=True)
        print(
            f"[services] {name} ready at {service.url}; log {service.log_path}; SIGTERM/SIGINT stops it",
            file=sys.stderr,
            flush=True,
        )
        if _watch([service], stop_requested):
            return 1
    print(f"[services] {name} stopped", file=sys.stderr, flush=True)
    return 0


def _start_all(names: list[str]) -> tuple[list[Service], list[str]]:
    """Prepare and start ``names`` concurrently (each start mostly waits on a child process)."""

    started: list[Service] = []
    failed: list[str] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(names)) as pool:
        futures = {pool.submit(start, name): name for name in names}
        for future in concurrent.futures.as_completed(futures):
            name = futures[future]
            try:
                service = future.result()
            except (ServiceError, OSError) as exc:
                print(f"[services] {name}: start FAILED: {exc}", file=sys.stderr, flush=True)
                failed.append(name)
                continue
            started.append(service)
            _say(f"{name}: ready at {service.url}")
    return started, failed


def _cli_up(names: list[str], env_file: Path) -> int:
    """Start ``names`` together, write their variables to ``env_file``, run until SIGTERM/SIGINT.

    The test command starts every service once this way and hands the variables to pytest (whose
    plugin reuses a service named by its variable), so parallel pytest workers share them. A name
    given N times starts N instances; their variables are written comma-separated (the test
    command gives each pytest worker its own moto server this way: moto serves one request at
    a time).
    """
    stop_requested: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: stop_requested.append(signum))
    env_file.unlink(missing_ok=True)
    began = time.monotonic()
    services, failed = _start_all(names)
    try:
        if failed:
            return 1
        values: dict[str, list[str]] = {}
        for service in services:
            for key, value in service.env.items():
                values.setdefault(key, []).append(value)
        lines = [f"{key}={','.join(found)}" for key, found in values.items()]
        partial = env_file.with_suffix(".partial")
        partial.write_text("\n".join(lines) + "\n")
        partial.replace(env_file)  # readers see the whole file or none
        _say(f"{len(services)} services up in {time.monotonic() - began:.1f}s; variables in {env_file}")
        return _watch(services, stop_requested)
    finally:
        for service in services:
            service.stop()
        env_file.unlink(missing_ok=True)


def _watch(services: list[Service], stop_requested: list[int]) -> int:
    """Wait for a stop signal: 0 then, 1 (with the log's tail) as soon as a service exits by itself."""
    while not stop_requested:
        for service in services:
            proc = service.process
            if proc is None or proc.poll() is not None:
                print(
                    f"[services] {service.name} exited unexpectedly; log tail:\n{tail(service.log_path)}",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
        time.sleep(0.5)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("prepare", help="install/download only (idempotent)").add_argument("names", nargs="*")
    commands.add_parser("start", help="run one service until SIGTERM").add_argument("name", choices=NAMES)
    commands.add_parser("smoke", help="start, one real operation, stop").add_argument("names", nargs="*")
    up = commands.add_parser("up", help="start several services at once, write their variables, run until SIGTERM")
    up.add_argument("names", nargs="*")
    up.add_argument("--env-file", type=Path, required=True, help="where KEY=VALUE lines are written once all are ready")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            return _cli_start(args.name)
        names = _expand(args.names)
        if args.command == "up":
            return _cli_up(names, args.env_file)
        if args.command == "prepare":
            signal.signal(signal.SIGTERM, _stop_steps)
            return _cli_prepare(names)
        return _cli_smoke(names)
    except ServiceError as exc:
        print(f"[services] error: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
