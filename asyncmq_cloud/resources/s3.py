"""S3 resources: the claim-check bucket (:class:`S3BucketSpec`) and how ``provision`` creates it.

The bucket holds the bodies of job payloads and results too large for the state store
(:mod:`asyncmq_cloud.stores.offload`). ``provision`` (development) and the Terraform module
(production) give it the same settings:

* every public access blocked (``PutPublicAccessBlock``, all four flags);
* default encryption SSE-KMS (the given key, else the AWS-managed ``aws/s3`` key), with an S3
  Bucket Key so S3 asks KMS for a data key per bucket, not per object;
* a lifecycle rule on the prefix: objects expire ``expire_days`` after their last write (the
  safety net for bodies whose record is gone without its ``remove``: a crash between the body
  write and the record write, a record deleted by the retention TTL) and incomplete multipart
  uploads are aborted after one day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from asyncmq_cloud.errors import ConfigurationError, InvalidNameError

#: https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html: 3 to 63
#: characters of lower-case letters, digits, dots and hyphens, beginning and ending with a
#: letter or digit, no two adjacent dots, not an IP address.
S3_BUCKET_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
#: A prefix: segments of letters, digits and ``!-_.*'()`` (S3's "safe characters") joined by ``/``.
S3_PREFIX_RE = re.compile(r"^([A-Za-z0-9!_.*'()\-]+/)*$")
#: The id of the lifecycle rule ``provision`` writes (an existing rule of another id is kept).
LIFECYCLE_RULE_ID = "asyncmq-cloud-offload-expiry"


def validate_bucket_name(name: str) -> str:
    """``name``, or :class:`InvalidNameError` naming the S3 rule it breaks."""
    if not isinstance(name, str) or not S3_BUCKET_NAME_RE.match(name) or ".." in name:
        raise InvalidNameError(
            f"S3 bucket name {str(name)[:70]!r} is invalid: 3 to 63 lower-case letters, digits, '.' and '-', "
            f"beginning and ending with a letter or digit (rule: {S3_BUCKET_NAME_RE.pattern})"
        )
    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", name):
        raise InvalidNameError(f"S3 bucket name {name!r} is an IP address, which S3 forbids")
    return name


def normalize_prefix(prefix: str) -> str:
    """``prefix`` without a leading ``/`` and with a trailing one (``""`` stays ``""``), or
    :class:`InvalidNameError`."""
    text = prefix.strip("/")
    text = f"{text}/" if text else ""
    if not S3_PREFIX_RE.match(text) or "//" in text or len(text) > 256:
        raise InvalidNameError(
            f"S3 key prefix {prefix[:70]!r} is invalid: up to 256 characters of letters, digits, "
            "'!-_.*'()' and '/' between segments"
        )
    return text


@dataclass(frozen=True)
class S3BucketSpec:
    """The claim-check bucket, as ``provision`` creates it.

    Attributes:
        name: the bucket name.
        prefix: the key prefix every body is written under (``""`` or ending in ``/``).
        kms_key_id: KMS key (id, ARN or ``alias/...``) for SSE-KMS; ``None`` = ``aws/s3``.
        expire_days: the lifecycle rule's expiration, in days after an object's last write.
    """

    name: str
    prefix: str = ""
    kms_key_id: str | None = None
    expire_days: int = 30

    def __post_init__(self) -> None:
        validate_bucket_name(self.name)
        if self.prefix != normalize_prefix(self.prefix):
            raise InvalidNameError(f"S3 key prefix {self.prefix!r}: pass it through normalize_prefix()")
        if not 1 <= self.expire_days <= 36_500:
            raise ConfigurationError(f"expire_days must be 1..36500, not {self.expire_days}")

    def encryption(self) -> dict[str, Any]:
        """The ``ServerSideEncryptionConfiguration`` of the bucket."""
        default: dict[str, Any] = {"SSEAlgorithm": "aws:kms"}
        if self.kms_key_id:
            default["KMSMasterKeyID"] = self.kms_key_id
        return {"Rules": [{"ApplyServerSideEncryptionByDefault": default, "BucketKeyEnabled": True}]}

    def lifecycle(self) -> dict[str, Any]:
        """The ``LifecycleConfiguration`` rule that expires bodies under the prefix."""
        return {
            "ID": LIFECYCLE_RULE_ID,
            "Status": "Enabled",
            "Filter": {"Prefix": self.prefix},
            "Expiration": {"Days": self.expire_days},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        }


#: The public access block ``provision`` sets: every flag on.
PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}


__all__ = [
    "LIFECYCLE_RULE_ID",
    "PUBLIC_ACCESS_BLOCK",
    "S3_BUCKET_NAME_RE",
    "S3_PREFIX_RE",
    "S3BucketSpec",
    "normalize_prefix",
    "validate_bucket_name",
]
