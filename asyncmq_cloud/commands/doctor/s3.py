"""The S3 check of ``asyncmq-cloud doctor``: the claim-check bucket answers, and the runtime may
put, read and delete a body under its prefix (what ``offload`` needs at runtime)."""

from __future__ import annotations

import uuid

from asyncmq_cloud.commands.doctor._report import Checks, error_text
from asyncmq_cloud.errors import AccessDeniedError, ResourceMissingError
from asyncmq_cloud.resources.s3 import LIFECYCLE_RULE_ID
from asyncmq_cloud.stores._s3_bodies import S3Bodies

_PROVISION = "`asyncmq-cloud provision` (development) or offload_bucket_name in the Terraform module (production)"


async def check_bucket(checks: Checks, bodies: S3Bodies) -> None:
    """A probe body written, read back and deleted under the prefix; then the lifecycle rule.

    Args:
        checks: the run's report and timeout.
        bodies: the claim check's S3 side (its clients are the backend's).
    """
    spec = bodies.spec
    what = f"S3 bucket {spec.name!r} (offload, prefix {spec.prefix or '/'})"
    probe = f"doctor-{uuid.uuid4().hex}"
    try:
        await checks.bounded(bodies.start())
        key = bodies.key("_doctor", probe, "probe", "probe", b"{}")
        await checks.bounded(bodies.put(key, b"{}", force=True))
        read = await checks.bounded(bodies.get(key))
        await checks.bounded(bodies.delete_job("_doctor", probe))
    except ResourceMissingError:
        checks.say("FAIL", "offload-bucket-missing", f"{what} does not exist", f"create it: {_PROVISION}")
        return
    except AccessDeniedError as exc:
        fix = (
            "grant s3:PutObject, s3:GetObject, s3:DeleteObject on the prefix and s3:ListBucket (provision --print-iam)"
        )
        checks.say("FAIL", "access-denied", f"{what}: {exc}", fix)
        return
    except Exception as exc:
        checks.say("FAIL", "offload-bucket", f"{what}: {error_text(exc)}", "see the error; retry if it is transient")
        return
    if read != b"{}":
        checks.say("FAIL", "offload-bucket", f"{what}: a body written could not be read back", "check the endpoint")
        return
    checks.say("ok", "offload-bucket", f"{what}: a body was written, read back and deleted")
    await _lifecycle(checks, bodies, what)


async def _lifecycle(checks: Checks, bodies: S3Bodies, what: str) -> None:
    try:
        s3 = await bodies.clients.client("s3")
        reply = await checks.bounded(s3.get_bucket_lifecycle_configuration(Bucket=bodies.spec.name))
        rules = {rule.get("ID") for rule in reply.get("Rules", ())}
    except Exception as exc:  # no configuration at all, or no s3:GetLifecycleConfiguration (runtime roles)
        checks.say("skip", "offload-lifecycle", f"{what}: lifecycle rules not read ({error_text(exc)})")
        return
    if LIFECYCLE_RULE_ID in rules:
        checks.say("ok", "offload-lifecycle", f"{what}: bodies expire by the lifecycle rule {LIFECYCLE_RULE_ID!r}")
    else:
        fix = f"add a rule expiring the prefix (rule {LIFECYCLE_RULE_ID!r}): {_PROVISION}"
        checks.say("warn", "offload-lifecycle", f"{what}: no expiry rule, orphaned bodies are kept forever", fix)
