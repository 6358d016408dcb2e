"""rbac's read models of identity's users and applications, fed by identity's events."""
