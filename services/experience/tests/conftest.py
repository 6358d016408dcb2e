"""An experience service in the test's loop, on real PostgreSQL and NATS, with stand-ins for
the services it talks to: an identity (users and OIDC interactions, served over rpc with the
contracts' semantics) and a connectors service (sends codes into a list, publishes connector
events). Each test gets its own schema and NATS namespace.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import pytest

from tessera_events import STREAMS
from tessera_events.connectors import ConnectorCreated, ConnectorDeleted, ConnectorSnapshot
from tessera_events.contracts import connectors as connector_contracts
from tessera_events.contracts import identity as identity_contracts
from tessera_events.contracts import oidc as oidc_contracts
from tessera_experience.main import build_spec
from tessera_experience.verification_codes.settings import CodeSettings
from tessera_kit import rpc
from tessera_kit.app import ServiceContext
from tessera_kit.bus import Bus
from tessera_kit.config import ServiceSettings
from tessera_kit.errors import RequestError
from tessera_kit.ids import new_id, new_user_id
from tessera_kit.ratelimit import TooManyRequests
from tessera_kit.testing import outbox_events, publisher, service_client, started

_count = itertools.count()
ISSUER = "http://tessera.test/oidc"
# Tests send codes to one address in quick succession; a test that wants the production
# limits passes its own CodeSettings (`@pytest.mark.parametrize("deployment", [...], indirect=True)`).
RELAXED_CODES = CodeSettings(verification_code_resend_cooldown="off")


@dataclass
class FakeUser:
    id: str
    username: str | None = None
    primary_email: str | None = None
    primary_phone: str | None = None
    password: str | None = None
    name: str | None = None
    avatar: str | None = None
    identities: dict[str, dict[str, Any]] = field(default_factory=dict)
    is_suspended: bool = False
    application_id: str | None = None
    last_sign_in_at: int | None = None

    def info(self) -> identity_contracts.UserInfo:
        return identity_contracts.UserInfo(
            id=self.id, username=self.username, primary_email=self.primary_email,
            primary_phone=self.primary_phone, name=self.name, avatar=self.avatar,
            identities={k: identity_contracts.Identity(user_id=v["user_id"], details=v.get("details"))
                        for k, v in self.identities.items()},
            is_suspended=self.is_suspended, application_id=self.application_id,
            last_sign_in_at=self.last_sign_in_at, has_password=self.password is not None,
        )


@dataclass
class FakeInteraction:
    uid: str
    client_id: str = "app1"
    prompt: str = "login"
    login_account_id: str | None = None
    session_account_id: str | None = None
    consent: bool = False
    aborted: bool = False


class FakeIdentity:
    """identity's rpc as contracts/identity.py and contracts/oidc.py describe it."""

    def __init__(self) -> None:
        self.users: dict[str, FakeUser] = {}
        self.interactions: dict[str, FakeInteraction] = {}
        self.calls: list[str] = []
        self.failing_logins = 0  # how many next finish_login calls fail (identity trouble)
        # Answer FINISH_LOGIN and GRANT_CONSENT as an identity from before their reply grew
        # (the user, the client, whose consent) did: a bare Redirect.
        self.legacy_replies = False
        self.lost_create_replies = 0  # how many next create_user calls create, then "time out"
        self.created_by_key: dict[str, str] = {}  # idempotency key → user id, as identity keeps it
        self.hashed: dict[str, str] = {}  # digest → password: what identity's hash would verify
        self.password_checks: list[identity_contracts.VerifyPasswordRequest] = []
        self.sign_in_retry_after: float | None = None  # set: sign-in checks answer 429 (a rate limit)

    # -- helpers for tests
    def add_user(self, **fields: Any) -> FakeUser:
        user = FakeUser(id=new_user_id(), **fields)
        self.users[user.id] = user
        return user

    def new_interaction(self, **fields: Any) -> str:
        """A fresh interaction; returns the `_interaction` cookie value."""
        uid = new_id()
        self.interactions[uid] = FakeInteraction(uid=uid, **fields)
        return f"{uid}.sig"

    def interaction(self, cookie: str) -> FakeInteraction:
        uid, _, signature = cookie.partition(".")
        if signature != "sig" or uid not in self.interactions:
            raise RequestError("session.not_found", 400)
        return self.interactions[uid]

    def find(self, by: str, value: str) -> FakeUser | None:
        for user in self.users.values():
            if by == "id" and user.id == value:
                return user
            if by == "username" and user.username == value:
                return user
            if by == "email" and user.primary_email and user.primary_email.lower() == value.lower():
                return user
            if by == "phone" and user.primary_phone == value:
                return user
        return None

    # -- rpc handlers
    async def find_user(self, r: identity_contracts.FindUserRequest):
        self.calls.append("find_user")
        if r.identity_target:
            for user in self.users.values():
                if user.identities.get(r.identity_target, {}).get("user_id") == r.identity_user_id:
                    return user.info()
            return None
        if r.idempotency_key:
            user_id = self.created_by_key.get(r.idempotency_key)
            return self.users[user_id].info() if user_id in self.users else None
        user = self.find(r.by, r.value)
        return user.info() if user else None

    async def verify_password(self, r: identity_contracts.VerifyPasswordRequest):
        self.calls.append("verify_password")
        self.password_checks.append(r)
        if self.sign_in_retry_after is not None and r.client_ip:
            raise TooManyRequests(self.sign_in_retry_after)
        user = self.find(r.by, r.value)
        if user is None or user.password is None or user.password != r.password:
            raise RequestError("session.invalid_credentials", 422)
        if user.is_suspended and r.reject_suspended:
            raise RequestError("user.suspended", 401)
        return user.info()

    async def hash_password(self, r: identity_contracts.HashPasswordRequest):
        self.calls.append("hash_password")
        digest = "$fake-argon2id$" + hashlib.sha256(r.password.encode()).hexdigest()
        self.hashed[digest] = r.password
        user = self.users.get(r.compare_with_user_id or "")
        return identity_contracts.PasswordHash(digest=digest, algorithm="Argon2id",
                                               same_as_current=bool(user and user.password == r.password))

    def password_of(self, r) -> str | None:
        """The password a create or update request sets, given in clear or as a hash of ours."""
        digest = getattr(r, "password_digest", None)
        if isinstance(digest, str):
            return self.hashed[digest]
        return r.password if isinstance(r.password, str) else None

    async def create_user(self, r: identity_contracts.CreateUserRequest):
        self.calls.append("create_user")
        if r.idempotency_key in self.created_by_key:
            return self.users[self.created_by_key[r.idempotency_key]].info()
        for by, value, code in (("username", r.username, "username"), ("email", r.primary_email, "email"),
                                ("phone", r.primary_phone, "phone")):
            if value and self.find(by, value):
                raise RequestError(f"user.{code}_already_in_use", 422)
        user = self.add_user(
            username=r.username, primary_email=r.primary_email, primary_phone=r.primary_phone,
            password=self.password_of(r), name=r.name, avatar=r.avatar,
            identities={k: {"user_id": v.user_id, "details": v.details} for k, v in r.identities.items()},
            last_sign_in_at=r.last_sign_in_at,
        )
        if r.idempotency_key:
            self.created_by_key[r.idempotency_key] = user.id
        if self.lost_create_replies:
            self.lost_create_replies -= 1
            raise RequestError("service.unavailable", 503)
        return user.info()

    async def update_user(self, r: identity_contracts.UpdateUserRequest):
        self.calls.append("update_user")
        user = self.users.get(r.user_id)
        if user is None:
            raise RequestError("entity.not_found", 404)
        for name in ("username", "primary_email", "primary_phone", "name", "avatar", "application_id",
                     "last_sign_in_at", "password"):
            value = getattr(r, name)
            if value is not msgspec.UNSET:
                setattr(user, name, value)
        if self.password_of(r) is not None:
            user.password = self.password_of(r)
        if r.identities is not msgspec.UNSET:
            user.identities.update({k: {"user_id": v.user_id, "details": v.details} for k, v in r.identities.items()})
        return user.info()

    async def application_client(self, r: identity_contracts.ApplicationRequest):
        self.calls.append("application_client")
        return self.application(r.application_id)

    def application(self, application_id: str) -> identity_contracts.ApplicationClient | None:
        if application_id != "app1":
            return None
        return identity_contracts.ApplicationClient(id="app1", name="Test App", type="SPA", description="for tests")

    async def details(self, r: oidc_contracts.InteractionRef):
        self.calls.append("interaction_details")
        i = self.interaction(r.interaction_cookie)
        return oidc_contracts.InteractionDetails(
            uid=i.uid, client_id=i.client_id, params={"client_id": i.client_id, "ui_locales": ""},
            prompt=oidc_contracts.Prompt(name=i.prompt), session_account_id=i.session_account_id,
            login_account_id=i.login_account_id, consent_granted=i.consent,
            expires_at=int(time.time() * 1000) + 3_600_000,
        )

    async def finish_login(self, r: oidc_contracts.FinishLogin):
        self.calls.append("finish_login")
        if self.failing_logins:
            self.failing_logins -= 1
            raise RequestError("unknown", 500)
        i = self.interaction(r.interaction_cookie)
        user = self.users.get(r.account_id)
        if user is None:
            raise RequestError("entity.not_exists_with_id", 404, name="users", id=r.account_id)
        if user.is_suspended:
            raise RequestError("user.suspended", 401)
        i.login_account_id = r.account_id
        if self.legacy_replies:  # an identity older than LoginFinished's fields
            return oidc_contracts.Redirect(redirect_to=f"{ISSUER}/auth/{i.uid}")
        if r.last_sign_in_at is not None:
            user.last_sign_in_at = r.last_sign_in_at
        application = self.application(i.client_id)
        return oidc_contracts.LoginFinished(redirect_to=f"{ISSUER}/auth/{i.uid}", user=user.info(),
                                            application=application)

    async def grant_consent(self, r: oidc_contracts.GrantConsent):
        self.calls.append("grant_consent")
        i = self.interaction(r.interaction_cookie)
        if not (i.session_account_id or i.login_account_id):
            raise RequestError("session.not_found", 400)
        i.consent = True
        if self.legacy_replies:  # an identity older than ConsentGranted's fields
            return oidc_contracts.Redirect(redirect_to=f"{ISSUER}/auth/{i.uid}")
        account_id = i.login_account_id or i.session_account_id
        user = self.users.get(account_id or "")
        return oidc_contracts.ConsentGranted(redirect_to=f"{ISSUER}/auth/{i.uid}", account_id=account_id,
                                             client_id=i.client_id,
                                             first_application=user is not None and user.application_id is None)

    async def abort(self, r: oidc_contracts.AbortInteraction):
        i = self.interaction(r.interaction_cookie)
        i.aborted = True
        return oidc_contracts.Redirect(redirect_to=f"{ISSUER}/auth/{i.uid}")

    def handlers(self) -> list[rpc.RpcHandler]:
        return [
            rpc.RpcHandler(identity_contracts.FIND_USER, self.find_user),
            rpc.RpcHandler(identity_contracts.VERIFY_PASSWORD, self.verify_password),
            rpc.RpcHandler(identity_contracts.CREATE_USER, self.create_user),
            rpc.RpcHandler(identity_contracts.UPDATE_USER, self.update_user),
            rpc.RpcHandler(identity_contracts.HASH_PASSWORD, self.hash_password),
            rpc.RpcHandler(identity_contracts.APPLICATION_CLIENT, self.application_client),
            rpc.RpcHandler(oidc_contracts.INTERACTION_DETAILS, self.details),
            rpc.RpcHandler(oidc_contracts.FINISH_LOGIN, self.finish_login),
            rpc.RpcHandler(oidc_contracts.GRANT_CONSENT, self.grant_consent),
            rpc.RpcHandler(oidc_contracts.ABORT_INTERACTION, self.abort),
        ]


class FakeConnectors:
    """A connectors service: sends messages into `sent`, publishes connector events."""

    def __init__(self, publish) -> None:
        self.publish = publish
        self.sent: list[connector_contracts.SendMessageRequest] = []
        self.instances: dict[str, ConnectorSnapshot] = {}
        self.deleted: list[str] = []
        self.failing_sends = 0  # how many next send_message calls fail as a provider would

    async def add(self, type_: str, *, target: str | None = None, factory: str | None = None,
                  platform: str | None = None, announce: bool = True) -> ConnectorSnapshot:
        """`announce=False`: created, its event not (yet) out, so experience's read model has
        not heard of it (what a check right after the creation meets)."""
        snapshot = ConnectorSnapshot(
            id=new_id(12), connector_factory_id=factory or f"mock-{type_.lower()}", type=type_,
            target=target or f"mock-{type_.lower()}", platform=platform, name={"en": f"Mock {type_}"},
            logo="https://logo.test/x.svg",
        )
        self.instances[snapshot.id] = snapshot
        if announce:
            await self.publish(ConnectorCreated(connector=snapshot))
        return snapshot

    async def send_message(self, r: connector_contracts.SendMessageRequest):
        matching = [c for c in self.instances.values() if c.type == r.type]
        if not matching:
            raise RequestError("connector.not_found", 400, type=r.type)
        if self.failing_sends:
            self.failing_sends -= 1
            raise RequestError("connector.general", 400, errorDescription="provider timed out")
        self.sent.append(r)
        return connector_contracts.MessageSent(connector_id=matching[0].id)

    async def delete_connectors(self, r: connector_contracts.DeleteConnectorsRequest):
        gone = [i for i in r.ids if i in self.instances]
        for connector_id in gone:
            c = self.instances.pop(connector_id)
            self.deleted.append(connector_id)
            await self.publish(ConnectorDeleted(id=c.id, connector_factory_id=c.connector_factory_id, type=c.type))
        return connector_contracts.DeletedConnectors(ids=gone)

    async def authorization_uri(self, r: connector_contracts.AuthorizationUriRequest):
        return connector_contracts.AuthorizationUri(
            redirect_to=f"https://social.test/authorize?state={r.state}",
            connector_session={"state": r.state, "redirectUri": r.redirect_uri, "jti": r.interaction_id},
        )

    async def interaction_user_info(self, r: connector_contracts.InteractionUserInfoRequest):
        """mock-social-connector: `{userId, email?, phone?, name?}` from connectorData."""
        if r.connector_session is None:
            raise RequestError("session.connector_validation_session_not_found", 400)
        instance = self.instances[r.connector_id]
        info = {"id": r.connector_data.get("userId", "social-1")}
        info.update({k: r.connector_data[k] for k in ("email", "phone", "name", "avatar") if k in r.connector_data})
        return connector_contracts.InteractionUserInfo(target=instance.target, sync_profile=instance.sync_profile,
                                                       user_info=info)

    async def list_connectors(self, r: connector_contracts.ListConnectorsRequest):
        return connector_contracts.ConnectorList(connectors=list(self.instances.values()))

    def last_code(self) -> str:
        return self.sent[-1].payload["code"]

    def handlers(self) -> list[rpc.RpcHandler]:
        return [
            rpc.RpcHandler(connector_contracts.SEND_MESSAGE, self.send_message),
            rpc.RpcHandler(connector_contracts.DELETE_CONNECTORS, self.delete_connectors),
            rpc.RpcHandler(connector_contracts.LIST_CONNECTORS, self.list_connectors),
            rpc.RpcHandler(connector_contracts.AUTHORIZATION_URI, self.authorization_uri),
            rpc.RpcHandler(connector_contracts.INTERACTION_USER_INFO, self.interaction_user_info),
        ]


@dataclass
class Deployment:
    client: httpx.AsyncClient
    ctx: ServiceContext
    identity: FakeIdentity
    connectors: FakeConnectors
    bus: Bus
    served: dict[str, list[Any]] = field(default_factory=dict)

    async def stop_serving(self, name: str) -> None:
        """Take a stand-in away ("identity" or "connectors"): its rpc gets no responder."""
        for subscription in self.served.pop(name, []):
            await subscription.unsubscribe()

    async def events(self, type_prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
        """(type, data) of every event experience wrote, oldest first."""
        return await outbox_events(self.ctx.pool, prefix=type_prefix)

    async def event_types(self, type_prefix: str = "experience.interaction.") -> list[str]:
        return [t for t, _ in await self.events(type_prefix)]

    async def steps(self) -> list[tuple[str, str]]:
        """(log key, result) of every interaction step logged, oldest first."""
        return [(d["log_key"], d["result"]) for t, d in await self.events("experience.interaction.step")]

    async def wait_for_connectors(self, n: int) -> None:
        for _ in range(500):
            if await self.ctx.pool.fetchval("SELECT count(*) FROM connectors") == n:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"the connector read model never held {n} connectors")

    def use_interaction(self, **fields: Any) -> str:
        cookie = self.identity.new_interaction(**fields)
        self.client.cookies.set("_interaction", cookie)
        return cookie


@pytest.fixture
async def deployment(request, database_url, nats_url, namespace):
    ns = f"{namespace}x{next(_count)}"
    settings = ServiceSettings(database_url=database_url, nats_url=nats_url, namespace=ns,
                               endpoint="http://tessera.test")
    spec = build_spec(settings, name=f"experience-{ns}", code_settings=getattr(request, "param", RELAXED_CODES))
    async with started(spec) as (app, ctx), publisher(
        database_url, nats_url, namespace=ns, stream=STREAMS["connectors"], schema=f"connectors_{ns}"
    ) as connectors:
        bus = connectors.bus
        identity = FakeIdentity()
        fake_connectors = FakeConnectors(connectors.publish)
        served = {
            "identity": [await rpc.serve(bus, h) for h in identity.handlers()],
            "connectors": [await rpc.serve(bus, h) for h in fake_connectors.handlers()],
        }
        await bus.nc.flush()  # the server knows the subscriptions before anyone calls
        async with service_client(app, base_url="http://experience", 
                                  # what a browser sends from the sign-in pages
                                  headers={"user-agent": "pytest", "origin": "http://tessera.test"}) as client:
            deployment = Deployment(client, ctx, identity, fake_connectors, bus, served)
            yield deployment
            for name in list(served):
                await deployment.stop_serving(name)
