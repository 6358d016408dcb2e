"""The search language of Logto §1.5 on GET /api/users: parsing (no I/O), each mode against
real rows, Logto's error answers, and the indexes that keep it fast."""

from __future__ import annotations

import asyncio

import pytest

from tessera_identity.users.search import NEVER_UPPER_CASE, USER_SEARCH_FIELDS
from tessera_kit.search import build_conditions, parse_search

# The language itself (parsing, errors, snake_case) is tested with the kit: libs/kit/tests.


def test_user_conditions_lower_only_where_needed():
    search = parse_search([("search", "Bob"), ("mode", "exact"), ("search.username", "A"),
                           ("search.username", "B"), ("joint", "and")])
    condition = build_conditions(search, USER_SEARCH_FIELDS, first_arg=2, never_upper_case=NEVER_UPPER_CASE)
    assert condition.args == ["bob", ["a", "b"]]
    assert condition.sql == (
        "((id = $2 OR lower(primary_email) = $2 OR primary_phone = $2 OR lower(username) = $2"
        " OR lower(name) = $2) AND (lower(username) = any($3::varchar[])))"
    )


# ---------------------------------------------------------------- against rows


@pytest.fixture(scope="module")
async def people(identity):
    """Users only this module's searches see (own schema)."""
    rows = {}
    for username, email, name, phone in (
        ("alice", "Alice@Example.com", "Alice Liddell", "15550100"),
        ("alicia", "alicia@example.org", "Alicia Keys", "15550101"),
        ("Bob", "bob@example.com", "Bob Builder", "15550102"),
        ("carol_9", "carol@example.net", None, "4470000"),
    ):
        body = {"username": username, "primaryEmail": email, "primaryPhone": phone}
        rows[username] = await identity.create_user(**body, **({"name": name} if name else {}))
    return rows


async def usernames(identity, params) -> list[str]:
    response = await identity.client.get("/api/users", params=params)
    assert response.status_code == 200, response.text
    assert int(response.headers["total-number"]) == len(response.json())
    return sorted(u["username"] for u in response.json())


async def test_like_is_verbatim_and_case_insensitive_by_default(identity, people):
    assert await usernames(identity, {"search": "%alic%"}) == ["alice", "alicia"]
    # No wildcards added: `alic` alone matches nothing.
    assert await usernames(identity, {"search": "alic"}) == []
    assert await usernames(identity, {"search.primaryEmail": "%@EXAMPLE.COM"}) == ["Bob", "alice"]
    assert await usernames(identity, {"search.primaryEmail": "%@EXAMPLE.COM", "isCaseSensitive": "true"}) == []
    assert await usernames(identity, {"search.primary_email": "%example.com"}) == ["Bob", "alice"]


async def test_exact_with_several_values_and_case(identity, people):
    assert await usernames(identity, {"search.username": ["ALICE", "bob"], "mode": "exact"}) == ["Bob", "alice"]
    assert await usernames(identity, {"search.username": ["ALICE", "Bob"], "mode": "exact",
                                      "isCaseSensitive": "true"}) == ["Bob"]
    alice_id = people["alice"]["id"]
    assert await usernames(identity, {"search.id": alice_id.upper(), "mode.id": "exact"}) == ["alice"]
    assert await usernames(identity, {"search.primaryPhone": "15550102", "mode": "exact"}) == ["Bob"]


async def test_joint_and_posix_and_similar_to(identity, people):
    assert await usernames(identity, {"search.username": "ali%", "search.name": "%keys", "joint": "and"}) == ["alicia"]
    assert await usernames(identity, {"search.username": "ali%", "search.name": "%keys"}) == ["alice", "alicia"]
    assert await usernames(identity, {"search.username": "^(bob|carol)", "mode": "posix"}) == ["Bob", "carol_9"]
    assert await usernames(identity, {"search.username": "(alice|Bob)", "mode": "similar_to",
                                      "isCaseSensitive": "true"}) == ["Bob", "alice"]


@pytest.mark.parametrize("params, detail", [
    ({"search.password": "x"}, "Search field `password` is not valid"),
    ({"search.a.b": "x"}, "Unsupported nested search field path"),
    ({"mode": "fuzzy", "search": "x"}, "Search match mode `fuzzy` is not valid"),
    ({"search": ["a", "b"]}, "Only one search value is allowed"),
    ({"search": ""}, "Search value cannot be empty."),
    ({"search": "x", "mode": "similar_to"}, "Cannot use case-insensitive match for `similar to`."),
    ({"search": "(", "mode": "posix"}, "invalid regular expression"),
    ({"search": "a\\", "isCaseSensitive": "true"}, "LIKE pattern must not end with escape character"),
])
async def test_bad_searches_are_400_request_invalid_input(identity, people, params, detail):
    response = await identity.client.get("/api/users", params=params)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "request.invalid_input"
    assert body["message"].startswith("Input is invalid.")
    assert detail in body["details"]


# ---------------------------------------------------------------- indexes


@pytest.fixture(scope="module")
async def many_users(identity):
    """100 000 rows (inserted in SQL, a few seconds), enough for the planner to choose as it
    would at a million users."""
    await identity.ctx.pool.execute(
        "INSERT INTO users (tenant_id, id, username, primary_email, primary_phone, name)"
        " SELECT 'default', 'bulk' || lpad(n::text, 8, '0'), 'bulk_user_' || n, 'bulk' || n || '@load.example',"
        " (20000000 + n)::text, 'Bulk Person ' || n FROM generate_series(1, 100000) AS n"
    )
    # VACUUM also moves the new rows from the GIN pending lists into the indexes proper, as
    # autovacuum does in a running system.
    await identity.ctx.pool.execute("VACUUM ANALYZE users")


async def plan_of(identity, condition: str, *args) -> str:
    rows = await identity.ctx.pool.fetch(
        f"EXPLAIN SELECT count(*) FROM users WHERE tenant_id = 'default' AND {condition}", *args)
    return "\n".join(r[0] for r in rows)


@pytest.mark.parametrize("condition, arg, index", [
    ("primary_email ILIKE $1", "%bulk4242@%", "users_primary_email_trgm"),
    ("username LIKE $1", "%user_4242", "users_username_trgm"),
    ("name ~* $1", "person 4242$", "users_name_trgm"),
    ("primary_phone ILIKE $1", "%20004242%", "users_primary_phone_trgm"),
    ("id ILIKE $1", "%00004242%", "users_id_trgm"),
    ("name = $1", "Bulk Person 4242", "users_name_trgm"),
    ("lower(username) = $1", "bulk_user_4242", "users_username_lower"),
    ("lower(name) = $1", "bulk person 4242", "users_name_lower"),
    ("lower(primary_email) = $1", "bulk4242@load.example", "users_primary_email"),
    ("identities @> $1::jsonb", '{"github": {"userId": "1"}}', "users_identities"),
])
async def test_searches_can_use_an_index(identity, many_users, condition, arg, index):
    plan = await plan_of(identity, condition, arg)
    assert index in plan and "Seq Scan" not in plan


async def test_a_general_like_search_combines_the_column_indexes(identity, many_users):
    plan = await plan_of(identity, "(id ILIKE $1 OR primary_email ILIKE $1 OR primary_phone ILIKE $1"
                                   " OR username ILIKE $1 OR name ILIKE $1)", "%bulk4242@%")
    assert "BitmapOr" in plan and plan.count("_trgm") == 5 and "Seq Scan" not in plan


async def test_total_of_an_unfiltered_list_comes_from_the_counter(identity, many_users):
    """count(*) over a million rows takes ~60 ms; the per-tenant counter kept by triggers
    answers the same number at once, also for rows inserted or deleted in bulk."""
    counted = await identity.ctx.pool.fetchval("SELECT count(*) FROM users WHERE tenant_id = 'default'")
    response = await identity.client.get("/api/users", params={"page_size": "1"})
    assert int(response.headers["total-number"]) == counted
    await identity.ctx.pool.execute("DELETE FROM users WHERE id LIKE 'bulk0000001%'")
    response = await identity.client.get("/api/users", params={"page_size": "1"})
    assert int(response.headers["total-number"]) == counted - 10


async def test_the_counter_stays_exact_under_parallel_sign_ups(identity, many_users):
    await asyncio.gather(*[identity.client.post("/api/users", json={"username": f"rush_{i}"}) for i in range(60)])
    counted = await identity.ctx.pool.fetchval("SELECT count(*) FROM users WHERE tenant_id = 'default'")
    response = await identity.client.get("/api/users", params={"page_size": "1"})
    assert int(response.headers["total-number"]) == counted


async def test_a_like_search_leaves_trigrams_every_user_has_out_of_the_index(identity, many_users):
    """Every bulk user's e-mail holds `bul` and `ulk`: the statistics say so, the index lookup
    leaves them out, and the answer (rows and Total-Number) is still the client's pattern's."""
    from tessera_identity.users import store

    frequent = await store.trigram_statistics(identity.ctx.pool, {})
    assert {"bul", "ulk"} <= frequent["primary_email"] and "424" not in frequent["primary_email"]
    # Matches the narrowed pattern (%__lk4242@%) but not the client's: must not be answered.
    await identity.create_user(username="decoy", primaryEmail="xxlk4242@other.example")
    response = await identity.client.get("/api/users", params={"search.primaryEmail": "%bulk4242@%"})
    assert response.status_code == 200, response.text
    assert ([u["primaryEmail"] for u in response.json()], response.headers["total-number"]) == \
        (["bulk4242@load.example"], "1")
    general = await identity.client.get("/api/users", params={"search": "%bulk4242@%"})
    assert [u["username"] for u in general.json()] == ["bulk_user_4242"]
    plan = await plan_of(identity, "(primary_email ILIKE $1 AND (primary_email || '') ILIKE $2)",
                         "%__lk4242@%", "%bulk4242@%")
    assert "users_primary_email_trgm" in plan and "Seq Scan" not in plan


async def test_pages_follow_creation_then_id_also_for_users_created_together(identity, many_users):
    """The bulk users share one creation time (one statement), the parallel sign-ups may share a
    millisecond: pages, deep ones too, follow (created_at, id) newest first, as SQL orders
    them (not the millisecond the answer shows), with the exact Total-Number, also when the
    count is a round number (it once came out as '1.0E+5')."""
    pool = identity.ctx.pool
    expected = [r["id"] for r in await pool.fetch(
        "SELECT id FROM users WHERE tenant_id = 'default' ORDER BY created_at DESC, id DESC")]
    for page in ("1", "2", "19000"):
        response = await identity.client.get("/api/users", params={"page": page, "page_size": "5"})
        start = (int(page) - 1) * 5
        assert [u["id"] for u in response.json()] == expected[start:start + 5]
        assert int(response.headers["total-number"]) == len(expected)
    searched = await identity.client.get("/api/users", params={"search.username": "bulk_user_4242%",
                                                               "page": "2", "page_size": "4"})
    matching = [r["id"] for r in await pool.fetch(
        "SELECT id FROM users WHERE username LIKE 'bulk\\_user\\_4242%' ORDER BY created_at DESC, id DESC")]
    assert int(searched.headers["total-number"]) == len(matching) == 11  # 4242 and 42420-42429
    assert [u["id"] for u in searched.json()] == matching[4:8]


async def test_total_number_of_a_round_count_is_an_integer(identity, many_users):
    """sum() over the counter rows is numeric, which asyncpg may hand back as Decimal('1.1E+5'):
    Total-Number must still read 110000."""
    pool = identity.ctx.pool
    missing = 110_000 - await pool.fetchval("SELECT count(*) FROM users WHERE tenant_id = 'default'")
    await pool.execute(
        "INSERT INTO users (tenant_id, id, username) SELECT 'default', 'round' || lpad(n::text, 7, '0'),"
        " 'round_' || n FROM generate_series(1, $1::int) AS n", missing)
    response = await identity.client.get("/api/users", params={"page_size": "1"})
    assert response.headers["total-number"] == "110000"


async def test_a_search_page_past_its_matches_still_tells_how_many_match(identity, many_users):
    beyond = await identity.client.get("/api/users", params={"search.username": "bulk_user_4242%",
                                                             "page": "4", "page_size": "5"})
    assert (beyond.status_code, beyond.json(), beyond.headers["total-number"]) == (200, [], "11")
    none = await identity.client.get("/api/users", params={"search.username": "nobody%"})
    assert (none.json(), none.headers["total-number"]) == ([], "0")
