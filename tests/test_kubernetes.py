"""``deploy/kubernetes``: the manifests validate offline against the Kubernetes and KEDA schemas
(compiled into the pinned npm packages ``kubernetes-models`` and ``@kubernetes-models/keda``,
installed by ``scripts/test.sh``), and say what the workers need: probes of the process and
the backend, a drain on shutdown, KEDA scalers with pod-identity authentication."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "deploy" / "kubernetes"
TOOLS = ROOT / ".cache" / "tools" / "k8s-validate"


def _documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(MANIFESTS.rglob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _validator() -> tuple[str, Path]:
    node = shutil.which("node")
    if node is None or not (TOOLS / "node_modules" / "@kubernetes-models" / "keda").is_dir():
        message = f"the schema validator needs node and `npm ci` in {TOOLS} (scripts/test.sh does both)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    script = TOOLS / "validate.mjs"  # next to its node_modules, where its imports resolve
    shutil.copyfile(MANIFESTS / "validate" / "validate.mjs", script)
    return node, script


def _validate(files: list[Path]) -> tuple[int, list[dict[str, Any]]]:
    node, script = _validator()
    done = subprocess.run(
        [node, str(script), *map(str, files)], capture_output=True, text=True, timeout=120, check=False
    )
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_manifests_validate_against_kubernetes_and_keda_schemas() -> None:
    files = sorted(p for p in MANIFESTS.rglob("*.yaml"))
    code, results = _validate(files)
    assert code == 0, [r for r in results if not r["ok"]]
    kinds = sorted({r["kind"] for r in results})
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "PodDisruptionBudget",
        "ScaledObject",
        "Secret",
        "ServiceAccount",
        "TriggerAuthentication",
    ]


def test_the_validator_rejects_an_invalid_manifest(tmp_path: Path) -> None:
    broken = yaml.safe_load((MANIFESTS / "keda" / "scaledobject-sqs.yaml").read_text())
    broken["spec"]["triggers"] = {"type": "aws-sqs-queue"}  # must be a list
    deployment = next(yaml.safe_load_all((MANIFESTS / "deployment.yaml").read_text()))
    deployment["spec"]["replicas"] = "three"
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump_all([broken, deployment]))
    code, results = _validate([path])
    assert code == 1 and [r["ok"] for r in results] == [False, False]
    assert "triggers" in results[0]["error"] and "replicas" in results[1]["error"]


def test_workers_drain_on_shutdown_and_probe_the_process_and_the_backend() -> None:
    deployment = next(d for d in _documents() if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    worker = pod["containers"][0]
    command = " ".join(worker["args"])
    assert "asyncmq-cloud worker" in command, "SIGTERM drains asyncmq-cloud's worker"
    assert "lifecycle" not in worker, "no preStop workaround"
    grace = float(re.search(r"--grace (\d+)", command).group(1))  # type: ignore[union-attr]
    port = int(re.search(r"--health-port (\d+)", command).group(1))  # type: ignore[union-attr]
    assert "--health-host 0.0.0.0" in command, "the kubelet probes the pod's IP"
    assert pod["terminationGracePeriodSeconds"] > grace, "the give-back runs before the SIGKILL"
    [named] = [p for p in worker["ports"] if p["name"] == "health"]
    assert named["containerPort"] == port
    assert worker["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "health"}
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert pod["serviceAccountName"] == "asyncmq-worker"
    assert {"configMapRef", "secretRef"} <= {k for ref in worker["envFrom"] for k in ref}


def test_keda_scales_the_workers_with_pod_identity() -> None:
    docs = _documents()
    scaled = [d for d in docs if d["kind"] == "ScaledObject"]
    auths = {d["metadata"]["name"]: d for d in docs if d["kind"] == "TriggerAuthentication"}
    assert {t["type"] for s in scaled for t in s["spec"]["triggers"]} == {
        "aws-sqs-queue",
        "kafka",
        "aws-dynamodb",
        "redis",
    }
    for obj in scaled:
        assert obj["spec"]["scaleTargetRef"]["name"] == "asyncmq-worker"
        for trigger in obj["spec"]["triggers"]:
            auth = auths[trigger["authenticationRef"]["name"]]
            if trigger["type"] == "redis":  # Redis has no pod identity: the password from the Secret
                assert auth["spec"]["secretTargetRef"][0]["name"] == "asyncmq-worker"
                assert trigger["metadata"]["listName"].endswith(":waiting-depth"), "the store's LLEN mirror"
            else:
                assert auth["spec"]["podIdentity"]["provider"] == "aws", "no static AWS keys"
