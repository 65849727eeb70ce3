"""The API's routes, one Powertools ``Router`` per area.

=================  ==========================================================================
``inference.py``   ``POST /v1/notes/entities``, ``POST /v1/images/classifications``
``search.py``      ``POST /v1/notes/search``
``services.py``    ``GET /v1/services``, ``GET /v1/services/{name}``,
                   ``POST /v1/services/{name}/resume``, ``POST /v1/services/{name}/suspend``
``scaling.py``     ``POST /v1/services/{name}/scale``
``stored.py``      ``POST /v1/notes/stored/entities``, ``POST /v1/notes/stored/search`` (notes
                   by reference: the text stays in Snowflake)
=================  ==========================================================================

``ROUTES`` holds every (method, template) pair, as API Gateway names the resource; the API
events in template.yaml must name the same pairs (tests/infra checks it).
"""

from __future__ import annotations

from spcs_gateway.api.routes import inference, scaling, search, services, stored

ROUTERS = (inference.router, search.router, services.router, scaling.router, stored.router)
ROUTES: frozenset[tuple[str, str]] = (
    inference.ROUTES | search.ROUTES | services.ROUTES | scaling.ROUTES | stored.ROUTES
)

__all__ = ["ROUTERS", "ROUTES"]
