"""The searchable columns of users (Logto §1.5); the language is the kit's."""

USER_SEARCH_FIELDS = ("id", "primary_email", "primary_phone", "username", "name")
# Columns whose stored values never hold upper-case letters (generated ids over 0-9a-z; phone
# numbers are digits): case-insensitive `exact` compares them without lower(), so the plain
# indexes serve it. Same answer as lower(column), since the values are lower-cased too.
NEVER_UPPER_CASE = frozenset({"id", "primary_phone"})
