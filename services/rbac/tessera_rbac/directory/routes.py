"""`GET /internal/read-models`: how far behind identity the read models are.

Served on rbac's own port for operators and probes; the gateway does not route it and it is
not part of the public OpenAPI document.
"""

from __future__ import annotations

from typing import Any

from litestar import get

from tessera_kit.app import Ctx
from tessera_rbac.directory.freshness import read_model_status


@get("/internal/read-models", include_in_schema=False)
async def read_models(ctx: Ctx) -> dict[str, Any]:
    return {"users": await read_model_status(ctx)}


route_handlers = [read_models]
