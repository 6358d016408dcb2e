"""`/api/users*` (except `/api/users/:id/roles*`, which rbac owns)."""

handlers: list = []
