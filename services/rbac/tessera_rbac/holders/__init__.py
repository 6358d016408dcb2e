"""Who holds which role: users and machine-to-machine applications, from either side
(`/api/roles/:id/users*`, `/api/roles/:id/applications*`, `/api/users/:id/roles*`,
`/api/applications/:id/roles*`)."""
