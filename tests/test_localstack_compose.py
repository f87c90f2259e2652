"""``localstack/docker-compose.yml``: pinned images, the services the README promises, and an
init hook that provisions through the project's own ``asyncmq-cloud provision``."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "localstack" / "docker-compose.yml"


def test_compose_services_are_pinned_and_provisioned_by_the_project() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert set(services) == {"localstack", "redis", "kafka", "provision"}
    for name, service in services.items():
        image = service["image"]
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+(\.\d+)?[\w.-]*", image), f"{name}: image {image!r} is not pinned"
    from scripts.services import KAFKA_VERSION, LOCALSTACK_VERSION

    assert services["localstack"]["image"].endswith(f":{LOCALSTACK_VERSION}"), "the host-mode version"
    assert services["kafka"]["image"].endswith(f":{KAFKA_VERSION}"), "the test bed's broker version"
    for service in services.values():  # only published on the loopback interface
        assert all(str(port).startswith("127.0.0.1:") for port in service.get("ports", []))
    hook = services["provision"]
    assert hook["depends_on"]["localstack"]["condition"] == "service_healthy"
    assert hook["environment"]["AWS_ENDPOINT_URL"] == "http://localstack:4566"
    script = (ROOT / "localstack" / "init" / "provision.sh").read_text()
    assert "asyncmq-cloud provision $args" in script and "--dry-run" in script
    settings = hook["environment"]["ASYNCMQ_SETTINGS_MODULE"].rsplit(".", 1)[0]
    assert (ROOT / "localstack" / "init" / f"{settings}.py").exists()
