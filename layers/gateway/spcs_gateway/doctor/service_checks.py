"""What one service's SHOW answers mean: the status, endpoint and signature checks, as pure
functions of the rows (``checks.Doctor`` runs the statements and the probe)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from spcs_gateway.doctor.report import Check, Result, _norm
from spcs_gateway.doctor.signatures import compare_signatures
from spcs_gateway.registry import ServiceConfig

Row = Mapping[str, Any]
# Service states that need an operator: the service will not answer again by itself.
_BROKEN = frozenset({"FAILED", "INTERNAL_ERROR", "DELETED", "DELETING", "DONE"})


def status_checks(svc: ServiceConfig, fqn: str, row: Row, role: str) -> tuple[str, list[Check]]:
    """The service's status and auto-suspend setting, from its SHOW SERVICES row."""
    status = _norm(row.get("status"))
    out: list[Check] = []
    if status in _BROKEN:
        out.append(
            Check(
                "status",
                svc.name,
                Result.FAIL,
                f"service is {status}",
                f"SHOW SERVICE CONTAINERS IN SERVICE {fqn}; recreate or fix the service",
            )
        )
    else:
        out.append(Check("status", svc.name, Result.PASS, f"service is {status}"))
    min_instances = _int(row.get("min_instances"))
    auto_suspend = _int(row.get("auto_suspend_secs"))
    if min_instances == 0 or (auto_suspend or 0) > 0:
        out.append(
            Check(
                "auto-suspend",
                svc.name,
                Result.FAIL,
                f"Snowflake suspends it on its own timer (min_instances {min_instances}, "
                f"auto_suspend_secs {auto_suspend}), behind the control plane",
                f"ALTER SERVICE {fqn} SET MIN_INSTANCES = 1 AUTO_SUSPEND_SECS = 0;",
            )
        )
    else:
        out.append(Check("auto-suspend", svc.name, Result.PASS, "off: the control plane decides"))
    return status, out


def endpoint_checks(svc: ServiceConfig, rows: Sequence[Row]) -> list[Check]:
    """Whether the registry's url is the service's public endpoint (SHOW ENDPOINTS rows)."""
    public = [r for r in rows if str(r.get("is_public", "")).lower() in {"true", "1", "yes"}]
    wanted = (urlsplit(svc.url).netloc or "").lower()
    hosts = [str(r.get("ingress_url") or "").lower() for r in public]
    if not public:
        return [
            Check(
                "endpoint",
                svc.name,
                Result.FAIL,
                "the service has no public endpoint",
                "recreate the service with ingress enabled (spcs-models deploy)",
            )
        ]
    if any(h == wanted or h.split("/")[0] == wanted for h in hosts):
        return [Check("endpoint", svc.name, Result.PASS, wanted)]
    if not any("." in h or ":" in h for h in hosts):
        return [Check("endpoint", svc.name, Result.WARN, "ingress URL not provisioned yet")]
    return [
        Check(
            "endpoint",
            svc.name,
            Result.FAIL,
            f"the registry's url is not the service's endpoint ({', '.join(hosts)})",
            "set the registry's url (template NerServiceUrl / ClipServiceUrl) to "
            "https://<ingress_url>",
        )
    ]


def signature_checks(
    svc: ServiceConfig, model: str, version: str, rows: Sequence[Row], role: str
) -> list[Check]:
    """Whether the deployed method's signature is the registry's (SHOW VERSIONS rows)."""
    row = next((r for r in rows if _norm(r.get("name")) == version), None)
    if row is None or not row.get("model_spec"):
        return [
            Check(
                "signature",
                svc.name,
                Result.FAIL,
                f"model version {model} {version} not found or not visible",
                f"GRANT USAGE ON MODEL {model} TO ROLE {role}; check model_version",
            )
        ]
    import yaml  # operator-side only (the doctor), never on a request path

    try:
        spec = yaml.safe_load(str(row["model_spec"]))
        signatures = {_norm(k): v for k, v in (spec.get("signatures") or {}).items()}
    except (yaml.YAMLError, AttributeError):
        return [Check("signature", svc.name, Result.FAIL, "model_spec is not readable")]
    deployed = signatures.get(_norm(svc.method))
    if deployed is None:
        methods = ", ".join(sorted(k.lower() for k in signatures)) or "none"
        return [
            Check(
                "signature",
                svc.name,
                Result.FAIL,
                f"the model has no method {svc.method} (it has: {methods})",
                "set the registry's method (template NerServiceMethod / ClipServiceMethod)",
            )
        ]
    problems = compare_signatures(svc.effective_signature, deployed)
    if problems:
        return [
            Check(
                "signature",
                svc.name,
                Result.FAIL,
                "; ".join(problems),
                "set the registry's signature to the model's (spcs-models registry prints "
                "it) or redeploy the model",
            )
        ]
    return [Check("signature", svc.name, Result.PASS, f"{svc.method} matches {model} {version}")]


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None
