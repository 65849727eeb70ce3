"""``spcs-gateway doctor``: a preflight of everything the gateway needs from a Snowflake account.

Each check returns rows (check, target, result, detail, fix) and never raises: a failing check
says what it saw and the statement or setting that fixes it. The checks use the production code
paths (credential source, token exchange, connector session, SPCS client, Cortex Search client,
results sink), so a passing doctor means the functions will work with the same registry.

Checks, in order: credentials (secret, SQL login as the registry's role, ingress token
exchange), the role's grants (``SHOW GRANTS TO ROLE``, following granted roles), the compute
pool (visible, with the pool-level facts pool suspension needs), per service: status and its
own auto-suspend (``MIN_INSTANCES`` >= 1, ``AUTO_SUSPEND_SECS`` = 0), endpoint (the registry's
URL is the service's public endpoint), signature (the registry's method and columns against the
model version's ``model_spec``), one synthetic probe row (``probes.py``) and, for NER, the
entity labels it returns against the declared set; Cortex Search with explicit columns; the
results table (readable, and the gateway's MERGE compiles with a source that selects nothing).

Nothing here reads or prints PHI: probes are synthetic, outputs are reduced to label names.
"""

from __future__ import annotations

from spcs_gateway.doctor.checks import Doctor
from spcs_gateway.doctor.grants import Needed, _held, _satisfied, needed_grants
from spcs_gateway.doctor.labels import _image_labels, _ner_labels
from spcs_gateway.doctor.report import Check, Result, format_table, passed
from spcs_gateway.doctor.signatures import compare_signatures

__all__ = [
    "Check",
    "Doctor",
    "Needed",
    "Result",
    "_held",
    "_image_labels",
    "_ner_labels",
    "_satisfied",
    "compare_signatures",
    "format_table",
    "needed_grants",
    "passed",
]
