"""The on-demand API (API Gateway REST, IAM auth): synchronous inference, search, service control.

``build_api()`` wires the production collaborators; ``create_api(deps)`` takes them ready-made
(tests pass fakes); ``access_log`` wraps the Lambda handler; ``python -m spcs_gateway.api.openapi``
prints the OpenAPI document. Module map: ``app.py``.
"""

from spcs_gateway.api.access_log import access_log
from spcs_gateway.api.app import build_resolver, create_api
from spcs_gateway.api.wiring import build_api, build_dependencies

__all__ = ["access_log", "build_api", "build_dependencies", "build_resolver", "create_api"]
