"""API resources and their scopes (`/api/resources*`)."""
