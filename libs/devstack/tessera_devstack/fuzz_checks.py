"""Schemathesis hooks for the fuzz run (loaded through SCHEMATHESIS_HOOKS by `fuzz.py`).

One check of our own beside schemathesis' built-in ones: every 4xx answer is in the error format
its surface promises, Logto's `{code, message, data?}` under `/api`, OAuth's `{error,
error_description?}` under `/oidc`; only an unknown route or method keeps Koa's plain-text
"Not Found" / "Method Not Allowed". And a tally of every answer by status, written at exit to
TESSERA_FUZZ_TALLY, so the report can say how many requests were made.
"""

from __future__ import annotations

import atexit
import json
import os
from collections import Counter

import schemathesis

_tally: Counter[str] = Counter()
_PLAIN_TEXT = {404: "Not Found", 405: "Method Not Allowed"}


@schemathesis.hook
def after_call(context, case, response) -> None:
    _tally[str(response.status_code)] += 1


def _write_tally() -> None:
    path = os.environ.get("TESSERA_FUZZ_TALLY")
    if path:
        with open(path, "w", encoding="utf-8") as file:
            json.dump(dict(_tally), file)


atexit.register(_write_tally)


@schemathesis.check
def logto_error_format(ctx, response, case) -> None:
    status = response.status_code
    if not 400 <= status < 500:
        return
    content_type = response.headers.get("content-type", [""])
    content_type = (content_type[0] if isinstance(content_type, list) else content_type).lower()
    if not content_type.startswith("application/json"):
        if response.text == _PLAIN_TEXT.get(status):
            return
        raise AssertionError(f"a {status} answer that is not JSON ({content_type or 'no content type'})")
    try:
        body = json.loads(response.content)
    except ValueError as error:
        raise AssertionError(f"a {status} answer whose body is not JSON: {error}") from None
    if case.operation.path.startswith("/oidc"):
        if not (isinstance(body, dict) and isinstance(body.get("error"), str)
                and isinstance(body.get("error_description", ""), str)):
            raise AssertionError(f"a {status} answer not in OAuth's error format: {body!r:.200}")
        return
    if not (isinstance(body, dict) and isinstance(body.get("code"), str)
            and isinstance(body.get("message"), str)):
        raise AssertionError(f"a {status} answer not in Logto's error format: {body!r:.200}")
