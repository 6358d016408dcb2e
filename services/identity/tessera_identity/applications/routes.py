"""`/api/applications*` (except `/api/applications/:id/roles*`, which rbac owns)."""

handlers: list = []
