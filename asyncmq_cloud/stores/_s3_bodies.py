"""The S3 side of the claim check: content-addressed job bodies under ``PREFIX/QUEUE/JOB/``.

A body's key is ``{prefix}{queue}/{job id, percent-encoded}/{part}-{sha256 of the bytes}.json``:
the same bytes always land on the same key, so a body is never overwritten with other bytes
(a record can only point at the body it was written with), and every body of a job is found by listing its
prefix (``remove`` deletes them all, bodies of failed writes included). The job id is
percent-encoded so that no job's prefix contains another's (``a`` and ``a/b``). A body this
process wrote or read in the last hour is not uploaded again (an unchanged part at each
later write of the job); any other write uploads (the same bytes to the same key).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from asyncmq_cloud._aws_codes import TRANSIENT_CODES
from asyncmq_cloud.aws import AwsClients, AwsComponent, error_code, translate_error
from asyncmq_cloud.errors import PermanentError, TransientError
from asyncmq_cloud.resources.s3 import PUBLIC_ACCESS_BLOCK, S3BucketSpec

#: Error codes of a missing object (``GetObject`` / ``HeadObject``).
_MISSING_OBJECT = frozenset({"NoSuchKey", "404", "NotFound"})
#: How long a key this process wrote or read is taken as present without writing it again (far
#: below any lifecycle expiry), and how many such keys are remembered.
KNOWN_SECONDS = 3600.0
KNOWN_KEYS = 4096
#: Error codes of a refused read (a missing key reads as 403 where ListBucket does not apply).
_FORBIDDEN = frozenset({"403", "AccessDenied", "Forbidden"})
#: ``DeleteObjects`` takes at most this many keys.
_DELETE_BATCH = 1000


class S3Bodies(AwsComponent):
    """Puts, gets and deletes job bodies in one bucket under one prefix; provisions the bucket."""

    def __init__(self, spec: S3BucketSpec, *, clients: AwsClients) -> None:
        super().__init__()
        self.spec = spec
        self._use_clients(clients, endpoint_url=None, region_name=None, what="claim-check bucket")
        self._aws_resource = f"S3 bucket {spec.name!r}"
        self._known: OrderedDict[str, float] = OrderedDict()  # key -> when this process last put or got it

    async def _s3(self) -> Any:
        self._check_open()
        return await self._clients.client("s3")

    def job_prefix(self, queue: str, job_id: str) -> str:
        return f"{self.spec.prefix}{queue}/{quote(job_id, safe='')}/"

    def key(self, queue: str, job_id: str, part: str, data: bytes) -> str:
        return f"{self.job_prefix(queue, job_id)}{part}-{hashlib.sha256(data).hexdigest()}.json"

    async def put(self, queue: str, job_id: str, part: str, data: bytes, *, force: bool = False) -> str:
        """Write ``data`` and return its key; unless ``force`` (a job being created: another process may
        have removed an earlier job of that id), nothing when this process wrote or read that key
        within :data:`KNOWN_SECONDS` (the arguments at a job's completion, after its claim read them)."""
        key = self.key(queue, job_id, part, data)
        if not force and self._fresh(key):
            return key
        s3 = await self._s3()
        await self._call(s3.put_object(Bucket=self.spec.name, Key=key, Body=data, ContentType="application/json"))
        self._remember(key)
        return key

    def _fresh(self, key: str) -> bool:
        seen = self._known.get(key)
        return seen is not None and time.monotonic() - seen < KNOWN_SECONDS

    def _remember(self, key: str) -> None:
        self._known[key] = time.monotonic()
        self._known.move_to_end(key)
        while len(self._known) > KNOWN_KEYS:
            self._known.popitem(last=False)

    async def _listed(self, s3: Any, key: str) -> bool:
        """Whether ``key`` exists, by listing it (``s3:ListBucket`` is granted on the prefix only, and
        S3 does not apply a prefix-scoped grant to a read of a missing key: it answers 403, not 404)."""
        page = await self._call(s3.list_objects_v2(Bucket=self.spec.name, Prefix=key, MaxKeys=1))
        return any(item["Key"] == key for item in page.get("Contents", ()))

    async def get(self, key: str) -> bytes | None:
        """The body at ``key``, or ``None`` when it is gone (expired, deleted)."""
        s3 = await self._s3()
        try:
            response = await s3.get_object(Bucket=self.spec.name, Key=key)
            async with response["Body"] as stream:
                data: bytes = await stream.read()
        except Exception as exc:
            code = error_code(exc)
            if code in _MISSING_OBJECT or (code in _FORBIDDEN and not await self._listed(s3, key)):
                self._known.pop(key, None)
                return None
            raise translate_error(exc, resource=self._aws_resource) from exc
        self._remember(key)
        return data

    async def delete_job(self, queue: str, job_id: str) -> int:
        """Delete every body of one job (its whole prefix); returns how many were deleted."""
        s3 = await self._s3()
        prefix = self.job_prefix(queue, job_id)
        for known in [key for key in self._known if key.startswith(prefix)]:
            del self._known[known]
        keys = await self._list(s3, prefix)
        batches = [keys[i : i + _DELETE_BATCH] for i in range(0, len(keys), _DELETE_BATCH)]
        await asyncio.gather(*(self._delete(s3, batch) for batch in batches))
        return len(keys)

    async def _list(self, s3: Any, prefix: str) -> list[str]:
        keys: list[str] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.spec.name, "Prefix": prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = await self._call(s3.list_objects_v2(**kwargs))
            keys.extend(item["Key"] for item in page.get("Contents", ()))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return keys

    async def _delete(self, s3: Any, keys: Sequence[str]) -> None:
        objects = [{"Key": key} for key in keys]
        response = await self._call(
            s3.delete_objects(Bucket=self.spec.name, Delete={"Objects": objects, "Quiet": True})
        )
        failed = [error for error in response.get("Errors", ()) if error.get("Code") not in _MISSING_OBJECT]
        if failed:
            codes = sorted({str(error.get("Code")) for error in failed})
            kind = TransientError if set(codes) & TRANSIENT_CODES else PermanentError
            raise kind(f"{len(failed)} bodies not deleted from {self._aws_resource} ({', '.join(codes)})")

    async def provision(self) -> None:
        """Create the bucket if missing; set public access block, SSE-KMS and the lifecycle rule."""
        s3 = await self._s3()
        spec = self.spec
        kwargs: dict[str, Any] = {"Bucket": spec.name}
        region = self._clients.region_name
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            await s3.create_bucket(**kwargs)
        except Exception as exc:
            if error_code(exc) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise translate_error(exc, resource=self._aws_resource) from exc
        await self._call(
            s3.put_public_access_block(Bucket=spec.name, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK)
        )
        await self._call(
            s3.put_bucket_encryption(Bucket=spec.name, ServerSideEncryptionConfiguration=spec.encryption())
        )
        rules = [rule for rule in await self._lifecycle_rules(s3) if rule.get("ID") != spec.lifecycle()["ID"]]
        config = {"Rules": [*rules, spec.lifecycle()]}
        await self._call(s3.put_bucket_lifecycle_configuration(Bucket=spec.name, LifecycleConfiguration=config))

    async def _lifecycle_rules(self, s3: Any) -> list[dict[str, Any]]:
        try:
            response = await s3.get_bucket_lifecycle_configuration(Bucket=self.spec.name)
        except Exception as exc:
            if error_code(exc) == "NoSuchLifecycleConfiguration":
                return []
            raise translate_error(exc, resource=self._aws_resource) from exc
        return list(response.get("Rules", ()))


__all__ = ["S3Bodies"]
