"""The on-demand API (API Gateway REST, IAM auth): synchronous inference, search, service control.

``build_api()`` wires the production collaborators; ``create_api(deps)`` takes them ready-made
(tests pass fakes); ``python -m spcs_gateway.api.openapi`` prints the OpenAPI document.
"""

from spcs_gateway.api.app import ApiResolver, create_api
from spcs_gateway.api.wiring import build_api, build_dependencies

__all__ = ["ApiResolver", "build_api", "build_dependencies", "create_api"]
