"""Building WHERE clauses whose values are always query arguments, never SQL text."""

from __future__ import annotations

from tessera_rbac.search import Search, build_conditions

# Milliseconds since the epoch, Logto's timestamp format.
def epoch_ms(column: str) -> str:
    return f"(extract(epoch FROM {column}) * 1000)::bigint"


class Filters:
    """`$1` is the tenant; every other value gets the next placeholder."""

    def __init__(self, tenant_id: str, *, alias: str):
        self.alias = alias
        self.args: list[object] = [tenant_id]
        self.clauses: list[str] = [f"{alias}.tenant_id = $1"]

    def param(self, value: object) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def where(self, clause: str) -> "Filters":
        self.clauses.append(clause)
        return self

    def search(self, search: Search, fields: tuple[str, ...], *, alias: str | None = None) -> "Filters":
        condition = build_conditions(search, fields, alias=alias or self.alias, first_arg=len(self.args) + 1)
        if condition.sql:
            self.args.extend(condition.args)
            self.clauses.append(condition.sql)
        return self

    @property
    def sql(self) -> str:
        return " AND ".join(self.clauses)

    def page(self, limit: int | None, offset: int) -> str:
        """` LIMIT $n OFFSET $m`, or nothing for an unpaginated list."""
        if limit is None:
            return ""
        return f" LIMIT {self.param(limit)} OFFSET {self.param(offset)}"
