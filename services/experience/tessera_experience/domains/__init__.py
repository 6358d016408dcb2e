"""Custom domains (`/api/domains*`, Logto 1.6)."""
