"""The searchable columns of rbac's entities (Logto §1.5); the language is the kit's."""

from tessera_kit.search import Search, build_conditions, invalid_search, is_truthy, parse_search

ROLE_FIELDS = ("id", "name", "description")
SCOPE_FIELDS = ("id", "name", "description")
USER_FIELDS = ("id", "primary_email", "primary_phone", "username", "name")

__all__ = ["ROLE_FIELDS", "SCOPE_FIELDS", "USER_FIELDS", "Search", "build_conditions", "invalid_search",
           "is_truthy", "parse_search"]
