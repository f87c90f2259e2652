"""The S3 side of the claim check: content-addressed job bodies under ``PREFIX/QUEUE/JOB/``.

A body's key is ``{prefix}{queue}/{job id, percent-encoded}/{token}/{part}-{sha256}.json``
(the token is the record's, :mod:`asyncmq_cloud.stores._offload_plan`): the same bytes always
land on the same key, so a body is never overwritten with other bytes (a record can only point
at the body it was written with), a rewrite of unchanged bytes by a later transition is a
``HeadObject`` instead of an upload (an add always uploads), and every body of a record is
found by listing its token's prefix (``remove`` deletes them all, bodies of failed writes
included). The job id is percent-encoded so that no job's prefix contains another's (``a``
and ``a/b``).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from botocore.exceptions import IncompleteReadError, ResponseStreamingError

from asyncmq_cloud._aws_codes import TRANSIENT_CODES
from asyncmq_cloud.aws import AwsClients, AwsComponent, error_code, translate_error
from asyncmq_cloud.errors import PermanentError, TransientError
from asyncmq_cloud.resources.s3 import PUBLIC_ACCESS_BLOCK, S3BucketSpec

#: Error codes of a missing object (``GetObject`` / ``HeadObject``).
_MISSING_OBJECT = frozenset({"NoSuchKey", "404", "NotFound"})
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

    async def _s3(self) -> Any:
        self._check_open()
        return await self._clients.client("s3")

    def job_prefix(self, queue: str, job_id: str) -> str:
        return f"{self.spec.prefix}{queue}/{quote(job_id, safe='')}/"

    def key(self, queue: str, job_id: str, token: str, part: str, data: bytes) -> str:
        """``PREFIX/QUEUE/JOB/TOKEN/PART-SHA256.json``: the token is the record's (``_offload_plan``)."""
        return f"{self.job_prefix(queue, job_id)}{token}/{part}-{hashlib.sha256(data).hexdigest()}.json"

    async def put(self, key: str, data: bytes, *, force: bool = False) -> None:
        """Write ``data`` at ``key``; unless ``force`` (a job being added), not when the key is there
        already (the same bytes: the key is their hash), which costs a ``HeadObject``, not an upload."""
        s3 = await self._s3()
        if not force and await self._exists(s3, key):
            return
        await self._call(s3.put_object(Bucket=self.spec.name, Key=key, Body=data, ContentType="application/json"))

    async def _exists(self, s3: Any, key: str) -> bool:
        try:
            await s3.head_object(Bucket=self.spec.name, Key=key)
        except Exception as exc:
            code = error_code(exc)
            if code in _MISSING_OBJECT:
                return False
            if code in _FORBIDDEN:  # S3 answers 403 for a missing key where ListBucket does not apply
                return await self._listed(s3, key)
            raise translate_error(exc, resource=self._aws_resource) from exc
        return True

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
                return None
            if isinstance(exc, IncompleteReadError | ResponseStreamingError):  # the connection broke mid-body
                raise TransientError(f"reading {key} from {self._aws_resource} broke off: {exc}") from exc
            raise translate_error(exc, resource=self._aws_resource) from exc
        return data

    async def delete_job(self, queue: str, job_id: str, token: str | None = None) -> int:
        """Delete the bodies of one record (its token's prefix; without a token, every body of the
        job id); returns how many were deleted."""
        s3 = await self._s3()
        keys = await self._list(s3, self.job_prefix(queue, job_id) + (f"{token}/" if token else ""))
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
