"""Typed request/reply over a real NATS server."""

import asyncio
import time

import msgspec
import pytest

from tessera_events.rpc import RpcOperation
from tessera_kit import rpc
from tessera_kit.context import current_tenant, request_id_var, tenant_scope
from tessera_kit.errors import RequestError


class Add(msgspec.Struct):
    a: int
    b: int


class Sum(msgspec.Struct):
    total: int
    request_id: str | None


ADD = RpcOperation("calculator", "add", Add, Sum)


async def add(request: Add) -> Sum:
    if request.a < 0:
        raise RequestError("guard.invalid_input", 400, type="body")
    return Sum(total=request.a + request.b, request_id=request_id_var.get())


async def test_call_returns_the_typed_reply_and_carries_the_request_id(bus):
    await rpc.serve(bus, rpc.RpcHandler(ADD, add))
    token = request_id_var.set("req-9")
    try:
        assert await rpc.call(bus, ADD, Add(1, 2)) == Sum(total=3, request_id="req-9")
    finally:
        request_id_var.reset(token)


async def test_request_error_crosses_the_wire(bus):
    await rpc.serve(bus, rpc.RpcHandler(ADD, add))
    with pytest.raises(RequestError) as caught:
        await rpc.call(bus, ADD, Add(-1, 2))
    assert (caught.value.status, caught.value.code) == (400, "guard.invalid_input")
    assert caught.value.message == "The request body is invalid."


async def test_bad_request_payload_is_a_400(bus):
    await rpc.serve(bus, rpc.RpcHandler(ADD, add))
    reply = await bus.nc.request(bus.subject(ADD.subject), b'{"a": "x"}', timeout=2)
    body = msgspec.json.decode(reply.data)
    assert body["error"]["status"] == 400 and body["error"]["code"] == "guard.invalid_input"


async def test_no_responder_is_service_unavailable_at_once(bus):
    started = time.monotonic()
    with pytest.raises(RequestError) as caught:
        await rpc.call(bus, ADD, Add(1, 2), timeout=5)
    assert (caught.value.status, caught.value.code) == (503, "service.unavailable")
    assert "calculator" in caught.value.message
    assert time.monotonic() - started < 4  # no responders is answered, not waited out


async def test_a_responder_that_subscribes_just_after_the_call_still_answers(bus):
    call = asyncio.create_task(rpc.call(bus, ADD, Add(2, 3), no_responders_retry_after=1.0))
    await asyncio.sleep(0.3)  # the first request has long met no responder
    assert not call.done()  # ... and the call waits to try once more
    await rpc.serve(bus, rpc.RpcHandler(ADD, add))
    await bus.nc.flush()
    assert (await call).total == 5


async def test_slow_responder_times_out_as_unavailable(bus):
    async def slow(request: Add) -> Sum:
        await asyncio.sleep(2)
        return Sum(total=0, request_id=None)

    await rpc.serve(bus, rpc.RpcHandler(ADD, slow))
    with pytest.raises(RequestError) as caught:
        await rpc.call(bus, ADD, Add(1, 2), timeout=0.3)
    assert caught.value.status == 503


async def test_requests_are_handled_concurrently(bus):
    """Five callers at once all get in: a handler that waits for the others would
    never finish if the subscription handled one request at a time."""
    arrived, everyone = 0, asyncio.Event()

    async def rendezvous(request: Add) -> Sum:
        nonlocal arrived
        arrived += 1
        if arrived == 5:
            everyone.set()
        await asyncio.wait_for(everyone.wait(), 5)
        return Sum(total=request.a, request_id=None)

    await rpc.serve(bus, rpc.RpcHandler(ADD, rendezvous))
    replies = await asyncio.gather(*(rpc.call(bus, ADD, Add(n, 0), timeout=10) for n in range(5)))
    assert sorted(r.total for r in replies) == [0, 1, 2, 3, 4]


async def test_handler_with_context_receives_the_service_context(bus):
    async def add_with_offset(ctx, request: Add) -> Sum:
        return Sum(total=request.a + request.b + ctx["offset"], request_id=None)

    await rpc.serve(bus, rpc.RpcHandler(ADD, add_with_offset, with_context=True), context={"offset": 10})
    assert (await rpc.call(bus, ADD, Add(1, 2))).total == 13


async def test_a_rate_limit_refused_by_the_service_asked_keeps_its_retry_after(bus):
    from tessera_kit.ratelimit import TooManyRequests

    async def limited(request: Add) -> Sum:
        raise TooManyRequests(41.2)

    await rpc.serve(bus, rpc.RpcHandler(ADD, limited))
    with pytest.raises(RequestError) as caught:
        await rpc.call(bus, ADD, Add(1, 2))
    assert (caught.value.status, caught.value.code, caught.value.data) == (
        429, "request.too_many_requests", {"retryAfter": 42})
    assert caught.value.headers == {"retry-after": "42"}


class Whose(msgspec.Struct):
    pass


class NamedTenant(msgspec.Struct):
    tenant_id: str = "default"


class Tenant(msgspec.Struct):
    tenant: str


WHOSE = RpcOperation("calculator", "whose", Whose, Tenant)
WHOSE_NAMED = RpcOperation("calculator", "whose_named", NamedTenant, Tenant)


async def tenant_of_request(_request) -> Tenant:
    return Tenant(current_tenant())


async def test_the_callers_tenant_travels_with_the_call(bus):
    await rpc.serve(bus, rpc.RpcHandler(WHOSE, tenant_of_request))
    await rpc.serve(bus, rpc.RpcHandler(WHOSE_NAMED, tenant_of_request))
    assert await rpc.call(bus, WHOSE, Whose()) == Tenant("default")
    with tenant_scope("admin"):
        assert await rpc.call(bus, WHOSE, Whose()) == Tenant("admin")
        # A contract that names its tenant is answered for that tenant.
        assert await rpc.call(bus, WHOSE_NAMED, NamedTenant(tenant_id="t3")) == Tenant("t3")
    # Nothing leaks into the next request the server handles.
    assert await rpc.call(bus, WHOSE, Whose()) == Tenant("default")
