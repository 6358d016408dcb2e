"""Typed request/reply over NATS.

Wire format: the request is the msgspec JSON of the operation's request type; the
reply is `{"ok": <reply>}` or `{"error": {"status", "code", "message", "data"?}}`.
A `RequestError` raised by the server's handler reaches the caller as the same
`RequestError`; no responder or no answer in time is 503 `service.unavailable`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable, Generic

import msgspec
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from tessera_events.rpc import Rep, Req, RpcOperation
from tessera_kit.bus import Bus
from tessera_kit.context import DEFAULT_TENANT, current_request_id, current_tenant, request_id_var, tenant_var
from tessera_kit.errors import RequestError, service_unavailable
from tessera_kit import metrics
from tessera_kit.logging import get_logger
from tessera_kit.outage import is_outage, outage_error, retry_after_headers

log = get_logger(__name__)
REQUEST_ID_HEADER = "Tessera-Request-Id"
# The tenant the caller acts for (the request's or the event's), so the answering service reads
# and writes that tenant's rows. Only services hold NATS credentials to send it.
TENANT_HEADER = "Tessera-Tenant"
_encoder = msgspec.json.Encoder()


class ErrorBody(msgspec.Struct, omit_defaults=True):
    status: int
    code: str
    message: str
    data: Any = None
    details: str | None = None


class ReplyEnvelope(msgspec.Struct, omit_defaults=True):
    ok: msgspec.Raw = msgspec.Raw(b"null")
    error: ErrorBody | None = None


class RpcHandler(Generic[Req, Rep]):
    """A served operation: `handler(request) -> reply`, or with `with_context`,
    `handler(ctx, request) -> reply` where ctx is the service's context."""

    def __init__(
        self,
        operation: RpcOperation[Req, Rep],
        handler: Callable[..., Awaitable[Rep]],
        *,
        with_context: bool = False,
    ):
        self.operation = operation
        self.handler = handler
        self.with_context = with_context
        self._decoder = msgspec.json.Decoder(operation.request)


# Requests one subscription handles at once (nats-py hands a subscription's messages to its
# callback one at a time; each request becomes a task, up to this many in flight).
DEFAULT_CONCURRENCY = 64


async def serve(
    bus: Bus,
    handler: RpcHandler,
    *,
    queue: str | None = None,
    context: Any = None,
    concurrency: int = DEFAULT_CONCURRENCY,
):
    """Subscribe `handler` (in a queue group, so replicas share the load)."""
    subject = bus.subject(handler.operation.subject)
    slots = asyncio.Semaphore(concurrency)
    in_flight: set[asyncio.Task] = set()

    async def on_message(msg: Msg) -> None:
        await slots.acquire()  # back-pressure: stop taking messages when saturated
        task = asyncio.create_task(on_request(msg))
        in_flight.add(task)
        task.add_done_callback(lambda t: (in_flight.discard(t), slots.release()))

    operation = handler.operation.subject
    serve_duration = metrics.RPC_SERVE_DURATION.labels(operation)

    async def on_request(msg: Msg) -> None:
        headers = msg.headers or {}
        token = request_id_var.set(headers.get(REQUEST_ID_HEADER))
        tenant_token = tenant_var.set(headers.get(TENANT_HEADER) or DEFAULT_TENANT)
        started = time.perf_counter()
        try:
            try:
                request = handler._decoder.decode(msg.data)
            except msgspec.ValidationError as exc:
                raise RequestError("guard.invalid_input", 400, details=str(exc), type="body")
            # A contract that names its tenant says it outright; the header covers the others.
            named = getattr(request, "tenant_id", None)
            if isinstance(named, str) and named:
                tenant_var.set(named)
            if handler.with_context:
                reply = await handler.handler(context, request)
            else:
                reply = await handler.handler(request)
            payload = _encoder.encode(ReplyEnvelope(ok=msgspec.Raw(_encoder.encode(reply))))
        except RequestError as exc:
            metrics.RPC_SERVE_FAILURES.labels(operation, str(exc.status)).inc()
            payload = _encoder.encode(
                ReplyEnvelope(error=ErrorBody(exc.status, exc.code, exc.message, exc.data, exc.details))
            )
        except Exception as exc:
            if is_outage(exc):  # our database or NATS is down: the caller sees a 503, may retry
                log.warning("rpc handler: dependency unavailable", subject=handler.operation.subject,
                            error=repr(exc))
                unavailable = service_unavailable(handler.operation.service)
                payload = _encoder.encode(ReplyEnvelope(error=ErrorBody(
                    unavailable.status, unavailable.code, unavailable.message)))
            else:  # a bug on this side: the caller sees a 500
                metrics.RPC_SERVE_FAILURES.labels(operation, "500").inc()
                log.exception("rpc handler failed", subject=handler.operation.subject)
                payload = _encoder.encode(ReplyEnvelope(error=ErrorBody(
                    500, "request.general", f"Internal server error: {type(exc).__name__}")))
        finally:
            request_id_var.reset(token)
            serve_duration.observe(time.perf_counter() - started)
            tenant_var.reset(tenant_token)
        if msg.reply:
            await msg.respond(payload)

    return await bus.nc.subscribe(subject, queue=queue or handler.operation.subject, cb=on_message)


async def call(
    bus: Bus, operation: RpcOperation[Req, Rep], request: Req, *, timeout: float = 3.0,
    no_responders_retry_after: float = 0.05,
) -> Rep:
    """Ask the service that owns `operation`. With no responder the server answers at once;
    one retry after a short pause covers a replica that is just (re)subscribing, then the
    caller gets 503 `service.unavailable`, never a hang."""
    headers = {TENANT_HEADER: current_tenant()}
    request_id = current_request_id()
    if request_id:
        headers[REQUEST_ID_HEADER] = request_id
    subject, payload = bus.subject(operation.subject), _encoder.encode(request)
    started = time.perf_counter()
    try:
        try:
            msg = await bus.nc.request(subject, payload, timeout=timeout, headers=headers)
        except NoRespondersError:
            await asyncio.sleep(no_responders_retry_after)
            msg = await bus.nc.request(subject, payload, timeout=timeout, headers=headers)
    except (NoRespondersError, NatsTimeoutError, TimeoutError) as exc:
        metrics.RPC_CALL_DURATION.labels(operation.subject).observe(time.perf_counter() - started)
        metrics.RPC_CALL_FAILURES.labels(operation.subject, "unavailable").inc()
        log.warning("rpc unavailable", subject=operation.subject, error=type(exc).__name__)
        raise outage_error(operation.service) from exc
    metrics.RPC_CALL_DURATION.labels(operation.subject).observe(time.perf_counter() - started)
    envelope = msgspec.json.decode(msg.data, type=ReplyEnvelope)
    if envelope.error is not None:
        e = envelope.error
        metrics.RPC_CALL_FAILURES.labels(operation.subject, str(e.status)).inc()
        error = RequestError.from_body(e.status, msgspec.to_builtins(e))
        if error.status == 503:
            error.headers = retry_after_headers()
        raise error
    return msgspec.json.decode(envelope.ok, type=operation.reply)
