"""The API's routes, one Powertools ``Router`` per area.

=================  ==========================================================================
``inference.py``   ``POST /v1/notes/entities``, ``POST /v1/images/classifications``
``search.py``      ``POST /v1/notes/search``
``services.py``    ``GET /v1/services``, ``GET /v1/services/{name}``,
                   ``POST /v1/services/{name}/resume``, ``POST /v1/services/{name}/suspend``
=================  ==========================================================================

``ROUTES`` holds every (method, template) pair, as API Gateway names the resource.
"""

from __future__ import annotations

from spcs_gateway.api.routes import inference, search, services

ROUTERS = (inference.router, search.router, services.router)
ROUTES: frozenset[tuple[str, str]] = inference.ROUTES | search.ROUTES | services.ROUTES

__all__ = ["ROUTERS", "ROUTES"]
