"""Reading a probe's answer (label names only) and the fix for a failed probe."""

from __future__ import annotations

from typing import Any

from spcs_gateway.doctor.report import Check, Result, _norm
from spcs_gateway.errors import ErrorCode, GatewayError
from spcs_gateway.probes import PROBE_LABELS
from spcs_gateway.registry import (
    ServiceConfig,
)


def _probe_fix(svc: ServiceConfig, error: GatewayError) -> str:
    fqn = _norm(svc.service)
    return {
        ErrorCode.ENDPOINT_NOT_FOUND: (
            f"no method {svc.method} at {svc.url}{svc.method_path}: set the registry's method "
            "to one of the model's (SHOW VERSIONS ... IN MODEL, column functions)"
        ),
        ErrorCode.PRIVILEGE_MISSING: (
            f"GRANT SERVICE ROLE {fqn}!ALL_ENDPOINTS_USAGE TO ROLE <the gateway's role>;"
        ),
        ErrorCode.SIGNATURE_MISMATCH: (
            "the service refuses the registry's columns: set the registry's signature to the "
            "model's (spcs-models registry prints it)"
        ),
        ErrorCode.AUTH_FAILED: "the credential is refused by the endpoint: check the secret",
        ErrorCode.SERVICE_UNAVAILABLE: f"the service is not ready: spcs-gateway resume {svc.name}",
    }.get(error.code, "")


def _ner_labels(svc: ServiceConfig, output: Any) -> Check:
    labels = sorted(
        {str(e.get("entity") or e.get("entity_group") or "") for e in output if isinstance(e, dict)}
    )
    if not svc.entity_labels:
        return Check("labels", svc.name, Result.WARN, "registry declares no entity_labels")
    declared = set(svc.entity_labels)
    declared |= {label.split("-", 1)[-1] for label in declared}  # aggregated: DISEASE
    unknown = [label for label in labels if label not in declared]
    if unknown:
        return Check(
            "labels",
            svc.name,
            Result.FAIL,
            f"labels outside the declared set: {', '.join(unknown[:6])} (a model without a "
            "trained NER head answers LABEL_0/LABEL_1)",
            "deploy a checkpoint fine-tuned for biomedical NER (spcs-models deploy)",
        )
    if not labels:
        return Check("labels", svc.name, Result.WARN, "no entity found in the probe sentence")
    return Check("labels", svc.name, Result.PASS, ", ".join(labels))


def _image_labels(svc: ServiceConfig, output: Any) -> Check:
    try:
        got = {str(item["label"]) for item in output}
        total = sum(float(item["score"]) for item in output)
    except (TypeError, KeyError, ValueError):
        return Check("labels", svc.name, Result.FAIL, "labels are not a list of {label, score}")
    if got != set(PROBE_LABELS) or abs(total - 1.0) > 0.01:
        return Check(
            "labels",
            svc.name,
            Result.FAIL,
            "the answer does not score exactly the candidate labels (scores summing to 1)",
            "check the model's method and output column",
        )
    return Check("labels", svc.name, Result.PASS, "scores the candidate labels")
