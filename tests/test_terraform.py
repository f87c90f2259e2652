"""The Terraform module against the code: drift, least privilege, formatting, validity, checkov.

* The drift tests parse the HCL (python-hcl2) and compare it with ``asyncmq_cloud.resources``:
  table names and keys, attribute types, indexes and projections, TTL attribute, queue and
  DLQ names, redrive, FIFO, DLQ retention, defaults. They need no terraform.
* ``terraform fmt -check``, ``validate`` (module and both examples) and ``terraform test``
  (mocked AWS provider) run offline where a ``terraform`` binary and a local mirror of the
  ``hashicorp/aws`` provider exist (``$TF_PLUGIN_MIRROR``, ``/opt/tf-plugins`` or
  ``/usr/share/terraform/plugins``). Where they do not, these
  tests skip and say so: the provider cannot be downloaded here (docs/decisions.md, entry 29).
* ``checkov`` (installed by ``scripts/test.sh`` into ``.cache/tools/checkov``, its own venv)
  must report no failed check, with network access to its platform disabled.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest

from asyncmq_cloud.resources import (
    SQS_DLQ_SUFFIX,
    SQS_FIFO_SUFFIX,
    SQS_MAX_RETENTION_SECONDS,
    SqsQueueSpec,
    TableSpec,
    delay_table,
    jobs_table,
)

ROOT = Path(__file__).resolve().parents[1]
TERRAFORM = ROOT / "terraform"
MODULE = TERRAFORM / "modules" / "asyncmq-cloud"
EXAMPLES = [TERRAFORM / "examples" / "aws", TERRAFORM / "examples" / "localstack"]
CHECKOV = ROOT / ".cache" / "tools" / "checkov" / "bin" / "checkov"


def _unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _hcl(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        return dict(hcl2.load(handle))


def _resources(kind: str, module: Path = MODULE) -> dict[str, dict[str, Any]]:
    """Every ``resource "<kind>" "<name>"`` block of ``module``, by name."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(module.glob("*.tf")):
        for block in _hcl(path).get("resource", []):
            for rkind, named in block.items():
                if _unquote(rkind) == kind:
                    found.update({_unquote(n): body for n, body in named.items()})
    return found


def _variables() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for block in _hcl(MODULE / "variables.tf")["variable"]:
        for name, body in block.items():
            out[_unquote(name)] = _unquote(body.get("default"))
    return out


def _table_layout(body: dict[str, Any]) -> dict[str, Any]:
    attributes = {_unquote(a["name"]): _unquote(a["type"]) for a in body["attribute"]}
    return {
        "hash_key": (_unquote(body["hash_key"]), attributes[_unquote(body["hash_key"])]),
        "range_key": (_unquote(body["range_key"]), attributes[_unquote(body["range_key"])]),
        "indexes": {
            _unquote(i["name"]): (
                (_unquote(i["hash_key"]), attributes[_unquote(i["hash_key"])]),
                (_unquote(i["range_key"]), attributes[_unquote(i["range_key"])]),
                _unquote(i["projection_type"]),
            )
            for i in body.get("global_secondary_index", [])
        },
        "ttl": _unquote(body["ttl"][0]["attribute_name"]),
        "attributes": set(attributes),
    }


def _spec_layout(spec: TableSpec) -> dict[str, Any]:
    assert spec.range_key is not None
    indexes = {}
    keys = {spec.hash_key.name, spec.range_key.name}
    for index in spec.indexes:
        assert index.range_key is not None
        indexes[index.name] = (
            (index.hash_key.name, index.hash_key.type),
            (index.range_key.name, index.range_key.type),
            index.projection,
        )
        keys |= {index.hash_key.name, index.range_key.name}
    return {
        "hash_key": (spec.hash_key.name, spec.hash_key.type),
        "range_key": (spec.range_key.name, spec.range_key.type),
        "indexes": indexes,
        "ttl": spec.ttl_attribute,
        "attributes": keys,
    }


# -- drift: the HCL against resources.py (no terraform needed) -----------------------------------
@pytest.mark.parametrize(
    ("resource", "spec", "variable"),
    [("jobs", jobs_table(), "jobs_table_name"), ("delays", delay_table(), "delay_table_name")],
)
def test_tables_match_resources_py(resource: str, spec: TableSpec, variable: str) -> None:
    body = _resources("aws_dynamodb_table")[resource]
    assert _table_layout(body) == _spec_layout(spec)
    assert _unquote(body["name"]) == f"${{var.{variable}}}"
    assert _variables()[variable] == spec.name, "the default table name is the code's default"
    assert body["server_side_encryption"][0]["enabled"] is True
    assert "var.point_in_time_recovery" in str(body["point_in_time_recovery"][0]["enabled"])


def test_drift_is_caught_in_either_direction(tmp_path: Path) -> None:
    """A mutated copy of the module, and a mutated spec, no longer match."""
    import dataclasses

    mutated = tmp_path / "module"
    shutil.copytree(MODULE, mutated, ignore=shutil.ignore_patterns(".terraform*"))
    main = mutated / "main.tf"
    main.write_text(main.read_text().replace('attribute_name = "expires_at"', 'attribute_name = "ttl"', 1))
    jobs = _table_layout(_resources("aws_dynamodb_table", mutated)["jobs"])
    assert jobs != _spec_layout(jobs_table()), "a renamed TTL attribute in terraform/ must be caught"
    assert jobs["ttl"] == "ttl"

    spec = jobs_table()
    other = dataclasses.replace(spec, indexes=spec.indexes[:-1])  # resources.py loses the ready index
    assert _table_layout(_resources("aws_dynamodb_table")["jobs"]) != _spec_layout(other)


def test_queues_match_the_sqs_transport() -> None:
    queues = _resources("aws_sqs_queue")
    variables = _variables()
    spec = SqsQueueSpec(name="q")
    fifo_spec = SqsQueueSpec(name="q.fifo", fifo=True)
    # Names: <prefix><queue>[.fifo] and <prefix><queue>-dlq[.fifo], as SQSTransport resolves them.
    assert _unquote(queues["queue"]["name"]) == "${var.name_prefix}${each.key}${local.suffix}"
    assert _unquote(queues["dlq"]["name"]) == f"${{var.name_prefix}}${{each.key}}{SQS_DLQ_SUFFIX}${{local.suffix}}"
    assert spec.dlq_name == "q" + SQS_DLQ_SUFFIX and fifo_spec.dlq_name == "q" + SQS_DLQ_SUFFIX + SQS_FIFO_SUFFIX
    assert f'var.fifo ? "{SQS_FIFO_SUFFIX}" : ""' in str(_locals()["suffix"])
    # Redrive to the DLQ after max_receive_count receives; the defaults are the code's defaults.
    redrive = str(queues["queue"]["redrive_policy"])
    assert "deadLetterTargetArn = aws_sqs_queue.dlq[each.key].arn" in redrive
    assert "maxReceiveCount = var.max_receive_count" in redrive
    assert variables["max_receive_count"] == spec.max_receive_count
    assert variables["visibility_timeout_seconds"] == spec.visibility_timeout
    assert queues["dlq"]["message_retention_seconds"] == SQS_MAX_RETENTION_SECONDS
    assert spec.dlq_attributes()["MessageRetentionPeriod"] == str(SQS_MAX_RETENTION_SECONDS)
    for body in queues.values():
        assert _unquote(body["fifo_queue"]) == "${var.fifo}", "a FIFO queue's DLQ must be FIFO too"
        assert _unquote(body["kms_master_key_id"]) == "${local.kms_key_arn}"


def _locals() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in sorted(MODULE.glob("*.tf")):
        for block in _hcl(path).get("locals", []):
            out.update(block)
    return out


def _policy_documents() -> dict[str, Any]:
    documents = {}
    for block in _hcl(MODULE / "iam.tf")["data"]:
        for kind, named in block.items():
            if _unquote(kind) == "aws_iam_policy_document":
                documents.update({_unquote(n): body for n, body in named.items()})
    return documents


def _actions(document: Any) -> set[str]:
    """The actions ``document`` names, ``local.dynamodb_actions`` resolved."""
    text = json.dumps(document)
    found = set(re.findall(r'\\"((?:dynamodb|sqs|kms|kafka-cluster|s3):[A-Z*][^\\"]*)\\"', text))
    if "local.dynamodb_actions" in text:
        found |= {_unquote(a) for a in _locals()["dynamodb_actions"]}
    return found


#: What the runtime policies never hold (issue: no Create*, Delete* of a resource,
#: ListQueues, SetQueueAttributes, UpdateTable, CreateTopic).
NOT_AT_RUNTIME = re.compile(
    r":(Create\w*|Delete(Queue|Table|Topic)\w*|ListQueues|SetQueueAttributes|Update(Table|TimeToLive)|PurgeQueue)$"
)


def test_iam_policies_are_least_privilege() -> None:
    documents = _policy_documents()
    assert set(documents) == {"producer", "worker", "provisioner"}
    text = json.dumps(documents)
    actions = _actions(documents)
    assert actions, "no actions found: the parser output changed"
    assert not [a for a in actions if "*" in a], "no wildcard actions"
    assert not re.search(r'resources\W+\[\W*\\"\*\\"', text), "no wildcard resources"
    producer, worker = _actions(documents["producer"]), _actions(documents["worker"])
    assert "sqs:ReceiveMessage" not in producer and "sqs:DeleteMessage" not in producer
    assert producer <= worker, "the producer policy is a subset of the runtime"
    assert not [a for a in producer | worker if NOT_AT_RUNTIME.search(a)], "the runtime creates nothing"
    assert {"dynamodb:CreateTable", "sqs:CreateQueue", "kafka-cluster:CreateTopic"} <= _actions(
        documents["provisioner"]
    )


def test_iam_policies_grant_what_print_iam_prints() -> None:
    """The module's worker and provisioner policies hold the actions of resources/iam.py, no more, no less."""
    from asyncmq_cloud.resources import iam

    documents = _policy_documents()
    runtime = set(iam.TABLE_RUNTIME + iam.QUEUE_RUNTIME + iam.DLQ_RUNTIME + iam.KMS_RUNTIME + iam.MSK_CLUSTER)
    runtime |= set(iam.MSK_TOPIC_RUNTIME + iam.MSK_GROUP_RUNTIME + iam.BODY_RUNTIME + iam.BUCKET_RUNTIME)
    assert _actions(documents["worker"]) == runtime
    provisioning = set(iam.TABLE_PROVISIONING + iam.QUEUE_PROVISIONING + iam.MSK_CLUSTER + iam.MSK_TOPIC_PROVISIONING)
    provisioning |= set(iam.BUCKET_PROVISIONING)
    assert _actions(documents["provisioner"]) == provisioning
    assert not [a for a in runtime if NOT_AT_RUNTIME.search(a)]
    assert {a for a in provisioning if NOT_AT_RUNTIME.search(a)}, "the pattern matches the provisioning actions"


def test_outputs_map_onto_backend_settings() -> None:
    outputs = {}
    for block in _hcl(MODULE / "outputs.tf")["output"]:
        outputs.update({_unquote(k): v for k, v in block.items()})
    settings = str(outputs["sqs_backend_settings"]["value"])
    for keyword in (
        "queue_prefix",
        "store",
        "delay_store",
        "fifo",
        "visibility_timeout",
        "max_receive_count",
        "kms_key_id",
        "priority_lanes",
        "lane_bounds",
    ):
        assert f"{keyword} =" in settings or f"'{keyword}'" in settings, keyword
    import inspect

    from asyncmq_cloud import SQSBackend
    from asyncmq_cloud.transports.sqs import SQSTransportConfig

    accepted = set(inspect.signature(SQSBackend.__init__).parameters) | set(SQSTransportConfig.model_fields)
    assert {
        "queue_prefix",
        "store",
        "delay_store",
        "fifo",
        "visibility_timeout",
        "max_receive_count",
        "kms_key_id",
        "priority_lanes",
        "lane_bounds",
    } <= accepted


# -- terraform itself (offline, with the provider mirror) ----------------------------------------
def _mirror() -> Path | None:
    for candidate in (os.environ.get("TF_PLUGIN_MIRROR"), "/opt/tf-plugins", "/usr/share/terraform/plugins"):
        if candidate and (Path(candidate) / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
            return Path(candidate)
    return None


def _terraform_or_skip() -> tuple[str, Path]:
    binary = shutil.which("terraform")
    mirror = _mirror()
    if binary is None or mirror is None:
        pytest.skip(
            "terraform checks need a terraform binary and a local hashicorp/aws provider mirror "
            f"(found terraform={binary}, mirror={mirror}); the provider cannot be downloaded here. "
            "The drift, IAM and checkov tests still ran."
        )
    return binary, mirror


def _run(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"{' '.join(args)} failed in {cwd}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_terraform_fmt() -> None:
    binary, _ = _terraform_or_skip()
    _run([binary, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)], ROOT)


@pytest.fixture(scope="module")
def terraform_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The terraform tree copied out of the repository (init writes .terraform dirs)."""
    target = tmp_path_factory.mktemp("terraform") / "terraform"
    shutil.copytree(TERRAFORM, target, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    return target


@pytest.mark.parametrize("where", ["modules/asyncmq-cloud", "examples/aws", "examples/localstack"])
def test_terraform_validate(terraform_copy: Path, where: str) -> None:
    binary, mirror = _terraform_or_skip()
    cwd = terraform_copy / where
    _run([binary, "init", "-backend=false", "-input=false", f"-plugin-dir={mirror}"], cwd)
    assert "The configuration is valid" in _run([binary, "validate", "-no-color"], cwd)


def test_terraform_test_with_mocked_provider(terraform_copy: Path) -> None:
    binary, mirror = _terraform_or_skip()
    cwd = terraform_copy / "modules" / "asyncmq-cloud"
    _run([binary, "init", "-backend=false", "-input=false", f"-plugin-dir={mirror}"], cwd)
    output = _run([binary, "test", "-no-color"], cwd)
    assert re.search(r"Success! (\d+) passed, 0 failed", output), output[-2000:]


def test_checkov_reports_no_failed_check() -> None:
    if not CHECKOV.exists():
        message = f"checkov is not installed at {CHECKOV}: run `bash scripts/test.sh` (it installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CKV_NO_GUIDE": "TRUE"}
    done = subprocess.run(
        [str(CHECKOV), "-d", str(TERRAFORM), "--framework", "terraform", "--skip-download", "-o", "json", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    reports = json.loads(done.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        (c["check_id"], c["resource"], c["file_path"])
        for r in reports
        for c in r.get("results", {}).get("failed_checks", [])
    ]
    passed = sum(r.get("summary", {}).get("passed", 0) for r in reports)
    assert failed == [], failed
    assert passed >= 30, f"checkov ran only {passed} checks: {done.stderr[-2000:]}"


def test_module_readme_documents_every_input_and_output() -> None:
    readme = (MODULE / "README.md").read_text()
    names = list(_variables())
    for block in _hcl(MODULE / "outputs.tf")["output"]:
        names += [_unquote(k) for k in block]
    assert [n for n in names if f"| `{n}` |" not in readme] == []
