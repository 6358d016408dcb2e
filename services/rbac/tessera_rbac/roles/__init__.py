"""Roles and the scopes they grant (`/api/roles`, `/api/roles/:id`, `/api/roles/:id/scopes*`)."""
