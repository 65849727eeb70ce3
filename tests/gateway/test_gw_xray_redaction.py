"""X-Ray's botocore patch records an allow-list of request parameters in each AWS subsegment; for
S3 that list has the object key, which often embeds an MRN or accession number.
observability.redact_xray_aws_parameters takes it off before anything is traced."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_xray_sdk.ext import boto_utils

from spcs_gateway import observability

KEY = "MRN-00012345678/ACC-2024-99871/chest.png"
ROOT = Path(__file__).resolve().parents[2]


class _Subsegment:
    name = "s3"

    def __init__(self) -> None:
        self.aws: dict[str, Any] = {}

    def set_aws(self, aws: dict[str, Any]) -> None:
        self.aws = aws

    def put_http_meta(self, key: str, value: Any) -> None:
        pass


def _traced_get_object() -> dict[str, Any]:
    """What the botocore patch writes into an S3 GetObject subsegment (its own processor)."""
    client = boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    sub = _Subsegment()
    boto_utils.aws_meta_processor(
        None,
        client,
        ("GetObject", {"Bucket": "scans", "Key": KEY, "VersionId": "v1"}),
        {},
        {"ResponseMetadata": {"RequestId": "r1", "HTTPStatusCode": 200, "HTTPHeaders": {}}},
        None,
        sub,
        None,
    )
    return sub.aws


def test_the_botocore_patch_records_s3_keys_unless_redacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The SDK's own list, as shipped (other tests may already have redacted the module's copy).
    shipped = json.loads(
        (Path(boto_utils.__file__).parent / "resources" / "aws_para_whitelist.json").read_text()
    )
    monkeypatch.setattr(boto_utils, "whitelist", copy.deepcopy(shipped))
    before = _traced_get_object()
    assert before["key"] == KEY  # the problem: PHI in every trace of an S3 read
    observability.redact_xray_aws_parameters()
    after = _traced_get_object()
    assert "key" not in after
    assert "version_id" not in after
    assert KEY not in json.dumps(after)
    # What stays is what an operator needs: operation, bucket, request id, status.
    assert (after["operation"], after["bucket_name"], after["request_id"]) == (
        "GetObject",
        "scans",
        "r1",
    )
    for service in boto_utils.whitelist["services"].values():
        for operation in service["operations"].values():
            listed = set(operation.get("request_parameters", []))
            listed |= set(operation.get("request_descriptors", {}))
            assert not listed & observability.XRAY_REDACTED_PARAMETERS
    observability.redact_xray_aws_parameters()  # idempotent
    assert _traced_get_object() == after


def test_a_real_patched_client_traces_no_key(tmp_path: Path) -> None:
    """Through aws_xray_sdk's real botocore patch and recorder (in a subprocess, so the global
    patch stays out of the other tests): the subsegment of an S3 read holds no key."""
    script = f"""
import json, boto3
from botocore.stub import Stubber
from aws_xray_sdk.core import patch, xray_recorder
from spcs_gateway.observability import get_tracer
get_tracer()  # what every function does at import
patch(["botocore"])
xray_recorder.configure(sampling=False, context_missing="IGNORE_ERROR")
segment = xray_recorder.begin_segment("router")
s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
stub = Stubber(s3)
stub.add_response("get_object", {{"ContentLength": 1}}, {{"Bucket": "scans", "Key": {KEY!r}}})
stub.activate()
s3.get_object(Bucket="scans", Key={KEY!r})
(sub,) = segment.subsegments
print(json.dumps({{"name": sub.name, "aws": sub.aws}}, default=str))
"""
    env = {**os.environ, "AWS_XRAY_SDK_ENABLED": "true", "POWERTOOLS_TRACE_DISABLED": "true"}
    env.pop("AWS_LAMBDA_FUNCTION_NAME", None)
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    traced = json.loads(out.stdout.strip().splitlines()[-1])
    assert traced["name"] == "s3"
    assert traced["aws"]["operation"] == "GetObject"
    assert traced["aws"]["bucket_name"] == "scans"
    assert KEY not in out.stdout
    assert "MRN" not in out.stdout + out.stderr
