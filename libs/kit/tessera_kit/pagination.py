"""Logto's pagination (§1.4): `page` >= 1, `page_size` 1..100 (default 20).

Answers carry `Total-Number` and `Link` (`first`, `prev`, `next`, `last`); links
use the public origin the gateway forwards in `X-Forwarded-Proto`/`X-Forwarded-Host`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import quote, urlencode

from tessera_kit.errors import RequestError

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class Page:
    page: int
    page_size: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size

    @property
    def limit(self) -> int:
        return self.page_size


def _positive_int(raw: str) -> int | None:
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value >= 1 else None


def parse_page(query: Mapping[str, str], *, optional: bool = False) -> Page | None:
    """Read `page`/`page_size`; with `optional`, neither given means "no pagination"."""
    raw_page, raw_size = query.get("page"), query.get("page_size")
    if optional and raw_page is None and raw_size is None:
        return None
    page = _positive_int(raw_page) if raw_page is not None else 1
    size = _positive_int(raw_size) if raw_size is not None else DEFAULT_PAGE_SIZE
    if page is None or size is None or size > MAX_PAGE_SIZE:
        raise RequestError("guard.invalid_pagination", 400)
    return Page(page, size)


def public_url(scheme: str, host: str, path: str, query: list[tuple[str, str]]) -> str:
    # The path comes decoded: encode it again, so a header never carries raw non-ASCII text.
    qs = urlencode(query)
    return f"{scheme}://{host}{quote(path, safe=_PATH_SAFE)}" + (f"?{qs}" if qs else "")


_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def pagination_headers(
    page: Page,
    total: int,
    *,
    scheme: str,
    host: str,
    path: str,
    query: list[tuple[str, str]],
) -> dict[str, Any]:
    last = max(1, math.ceil(total / page.page_size))
    others = [(k, v) for k, v in query if k != "page"]

    def link(number: int, rel: str) -> str:
        return f'<{public_url(scheme, host, path, [*others, ("page", str(number))])}>; rel="{rel}"'

    links = [link(1, "first")]
    if page.page > 1:
        links.append(link(page.page - 1, "prev"))
    if page.page < last:
        links.append(link(page.page + 1, "next"))
    links.append(link(last, "last"))
    return {"Total-Number": str(total), "Link": ", ".join(links)}
