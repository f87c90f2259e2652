"""``S3Bodies`` against S3's answers to a missing key under a prefix-scoped ``s3:ListBucket``
grant (403, not 404): a fake client in-process; the real S3 side is in ``tests/test_offload.py``."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from asyncmq_cloud.aws import AwsClients
from asyncmq_cloud.errors import AccessDeniedError
from asyncmq_cloud.resources.s3 import S3BucketSpec
from asyncmq_cloud.stores._s3_bodies import S3Bodies


class Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aenter__(self) -> Body:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None

    async def read(self) -> bytes:
        return self.data


def _error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, operation)


class ForbiddenS3:
    """S3 where a read of a missing key answers 403 (no ListBucket on it) and ``denied`` keys are refused."""

    def __init__(self, objects: dict[str, bytes], denied: frozenset[str] = frozenset()) -> None:
        self.objects, self.denied, self.puts = objects, denied, []

    async def head_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        if Key in self.objects and Key not in self.denied:
            return {}
        raise _error("403", "HeadObject")

    async def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        if Key in self.objects and Key not in self.denied:
            return {"Body": Body(self.objects[Key])}
        raise _error("AccessDenied", "GetObject")

    async def list_objects_v2(self, Bucket: str, Prefix: str, MaxKeys: int = 1000) -> dict[str, Any]:
        return {"Contents": [{"Key": k} for k in sorted(self.objects) if k.startswith(Prefix)][:MaxKeys]}

    async def put_object(self, Bucket: str, Key: str, Body: bytes, ContentType: str) -> dict[str, Any]:
        self.puts.append(Key)
        self.objects[Key] = Body
        return {}


def _bodies(s3: ForbiddenS3) -> S3Bodies:
    bodies = S3Bodies(S3BucketSpec("b-1", "p/"), clients=AwsClients(endpoint_url="http://127.0.0.1:9"))

    async def client() -> ForbiddenS3:
        return s3

    bodies._s3 = client  # type: ignore[method-assign]
    return bodies


async def test_a_403_on_a_missing_key_is_a_missing_key() -> None:
    assert await _bodies(ForbiddenS3({})).get("p/q/j/args-missing.json") is None


async def test_a_403_on_a_missing_key_at_a_rewrite_uploads_and_a_present_key_is_not_uploaded_again() -> None:
    s3 = ForbiddenS3({})
    bodies = _bodies(s3)
    key = bodies.key("q", "j", "0123456789abcdef", "args", b"{}")
    await bodies.put(key, b"{}")
    assert s3.puts == [key], "HEAD's 403 on a key that is not there does not stop the upload"
    await bodies.put(key, b"{}")
    assert s3.puts == [key], "there: no second upload"
    await bodies.put(key, b"{}", force=True)
    assert s3.puts == [key, key], "an add uploads"


async def test_a_403_on_a_key_that_exists_is_access_denied() -> None:
    s3 = ForbiddenS3({"p/q/j/args-x.json": b"{}"}, denied={"p/q/j/args-x.json"})
    with pytest.raises(AccessDeniedError):
        await _bodies(s3).get("p/q/j/args-x.json")
