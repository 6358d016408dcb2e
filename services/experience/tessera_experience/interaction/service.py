"""The interaction API's behaviour (Logto §4): what each route does, on experience's own
interaction rows, with identity (users, the OIDC interaction) and connectors over rpc.

Every operation starts from the `_interaction` cookie: identity checks it and answers the
interaction (uid, client, prompt); experience keeps Logto's interaction result under that
uid. Routes and the hosted pages both call this class, so a page behaves exactly like a
custom UI calling the API.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from typing import Any, Awaitable, Callable, TypeVar

import asyncpg
import msgspec

from tessera_events.epoch_ms import from_ms
from tessera_events.contracts.connectors import (
    AUTHORIZATION_URI,
    INTERACTION_USER_INFO,
    AuthorizationUriRequest,
    InteractionUserInfoRequest,
)
from tessera_events.contracts.identity import (
    APPLICATION_CLIENT,
    CREATE_USER,
    FIND_USER,
    HASH_PASSWORD,
    UPDATE_USER,
    VERIFY_PASSWORD,
    ApplicationClient,
    ApplicationRequest,
    CreateUserRequest,
    FindUserRequest,
    HashPasswordRequest,
    Identity,
    UpdateUserRequest,
    UserInfo,
    VerifyPasswordRequest,
)
from tessera_events.contracts.oidc import (
    ABORT_INTERACTION,
    FINISH_LOGIN,
    GRANT_CONSENT,
    INTERACTION_DETAILS,
    AbortInteraction,
    FinishLogin,
    GrantConsent,
    InteractionDetails,
    InteractionRef,
)
from tessera_events.experience import (
    InteractionApplication,
    InteractionContext,
    InteractionPasswordReset,
    InteractionRegistered,
    InteractionSignedIn,
)
from tessera_events.identity import UserSnapshot
from tessera_experience import connectors
from tessera_experience.config.routes import load_sign_in_experience
from tessera_experience.interaction import domain, guards, store
from tessera_experience.interaction.domain import Identifier, Payload, mask_passwords
from tessera_experience.interaction.logs import Caller, StepLog
from tessera_experience.verification_codes import store as codes
from tessera_experience.verification_codes.service import VerificationCodes
from tessera_kit.app import ServiceContext
from tessera_kit.errors import RequestError
from tessera_kit.logging import get_logger
from tessera_kit.context import current_tenant

log = get_logger(__name__)
T = TypeVar("T")

FORGOT_PASSWORD = "ForgotPassword"
_ASK = object()  # the application is not known yet: ask identity for it


def _application(client: ApplicationClient | None) -> InteractionApplication | None:
    if client is None:
        return None
    return InteractionApplication(id=client.id, type=client.type, name=client.name, description=client.description)


def now_ms() -> int:
    return int(time.time() * 1000)


def snapshot(user: UserInfo | None) -> UserSnapshot | None:
    if user is None:
        return None
    return UserSnapshot(
        id=user.id, username=user.username, primary_email=user.primary_email, primary_phone=user.primary_phone,
        name=user.name, avatar=user.avatar, custom_data=user.custom_data, application_id=user.application_id,
        is_suspended=user.is_suspended, last_sign_in_at=user.last_sign_in_at, created_at=user.created_at,
    )


def _cookie_fields(caller: Caller) -> dict[str, str]:
    """The `_interaction` cookie pair as the browser sent it; identity checks the signature."""
    return {"interaction_cookie": caller.cookie or "", "interaction_signature": caller.cookie_signature or ""}


class InteractionService:
    """The interaction API's operations, for one request. What a request needs more than once
    (the OIDC interaction behind its cookie, the sign-in experience) is read once: a page that
    starts and submits in one POST asks identity and the database once, not per step."""

    def __init__(self, ctx: ServiceContext, *, details: InteractionDetails | None = None,
                 sie: dict[str, Any] | None = None) -> None:
        self.ctx = ctx
        self.tenant = current_tenant()
        self._details = details  # already read by the caller (a page), for its cookie
        self._sie = sie

    # ------------------------------------------------------------------ plumbing

    async def details(self, caller: Caller) -> InteractionDetails:
        """The OIDC interaction behind the cookie (400 `session.not_found` when there is none).
        Read once per request: experience changes the OIDC interaction only when it finishes."""
        if not caller.cookie:
            raise RequestError("session.not_found", 400)
        if self._details is None:
            self._details = await self.ctx.call(
                INTERACTION_DETAILS, InteractionRef(**_cookie_fields(caller), tenant_id=self.tenant)
            )
        return self._details

    async def sign_in_experience(self) -> dict[str, Any]:
        if self._sie is None:
            self._sie = await load_sign_in_experience(self.ctx)
        return self._sie

    async def storage(self, uid: str) -> dict[str, Any]:
        found = await store.find(self.ctx.pool, self.tenant, uid)
        if found is None:
            raise RequestError("session.verification_session_not_found", 404)
        return found

    async def _logged(self, steps: StepLog, operation: Callable[[], Awaitable[T]]) -> T:
        """Run `operation`; if it fails, its log entries are written as errors."""
        try:
            return await operation()
        except BaseException as error:
            if steps.entries and not steps.written:
                try:
                    async with self.ctx.pool.acquire() as conn, conn.transaction():
                        await self._write_steps(conn, steps, error)
                except Exception:  # the request's own error matters more than its log
                    log.exception("could not log a failed interaction step")
            raise

    async def _write_steps(self, conn: asyncpg.Connection, steps: StepLog, error: BaseException | None = None) -> None:
        for event in steps.events(error):
            await self.ctx.outbox.emit(conn, event, aggregate_id=steps.interaction_id, tenant_id=self.tenant)
        steps.written = True

    async def _save(self, details: InteractionDetails, storage: dict[str, Any], steps: StepLog) -> None:
        # Any change to the interaction is a new attempt: an unfinished registration's user
        # is not signed in by a later submit of a different profile.
        storage = {k: v for k, v in storage.items() if k != "registered"}
        expires_at = from_ms(details.expires_at)
        await self._save_with_events(details.uid, storage, expires_at, steps)

    async def _save_with_events(self, uid: str, storage: dict[str, Any], expires_at: dt.datetime, steps: StepLog,
                                announced: tuple[msgspec.Struct, str] | None = None) -> None:
        """The interaction's new state, its domain event (if any) and the step logs: one
        statement, so one round trip and no BEGIN/COMMIT, and all of it or nothing."""
        events: list[tuple[Any, str | None]] = [announced] if announced else []
        events += [(event, steps.interaction_id) for event in steps.events()]
        await self.ctx.outbox.execute_with_events(
            self.ctx.pool, store.SAVE, store.save_args(self.tenant, uid, storage, expires_at), events,
            tenant_id=self.tenant)
        steps.written = True

    async def _find_user(self, **request: Any) -> UserInfo | None:
        return await self.ctx.call(FIND_USER, FindUserRequest(tenant_id=self.tenant, **request))

    async def _social_connector(self, connector_id: str) -> connectors.ConnectorSnapshot:
        connector = await connectors.find_connector_now(self.ctx, self.tenant, connector_id)
        if connector is None or connector.type != "Social":
            raise RequestError("session.invalid_connector_id", 422, connectorId=connector_id)
        return connector

    # ------------------------------------------------------------------ PUT /interaction

    async def start(self, caller: Caller, body: Any) -> None:
        details = await self.details(caller)
        event, identifier, profile = guards.parse_put_interaction(body)
        steps = StepLog(caller, details.uid)

        async def run() -> None:
            update = steps.create(f"Interaction.{event}.Update")
            update["event"] = event
            sie = await self.sign_in_experience()
            domain.verify_sign_in_mode(event, sie)
            if event != FORGOT_PASSWORD:
                if identifier is not None:
                    domain.verify_identifier_settings(identifier, sie)
                if profile is not None:
                    domain.verify_profile_settings(profile, sie)
            storage: dict[str, Any] = {"event": event, "identifiers": []}
            if identifier is not None:
                # Only a social identifier continues what the interaction held before (its
                # connector session, its social user): a password or a code needs no read.
                previous: dict[str, Any] = {"identifiers": []}
                if "password" not in identifier and "verificationCode" not in identifier:
                    previous = await store.find(self.ctx.pool, self.tenant, details.uid) or previous
                verified = await self._verify_identifier(details, steps, event, identifier, previous)
                storage["identifiers"] = [verified]
                update["verifiedIdentifier"] = verified
            if profile is not None:
                update["profile"] = profile
                storage["profile"] = await self._hashed(details.uid, event, storage, profile)
            await self._save(details, storage, steps)

        await self._logged(steps, run)

    # ------------------------------------------------------------------ DELETE /interaction

    async def abort(self, caller: Caller) -> str:
        details = await self.details(caller)
        redirect = await self.ctx.call(
            ABORT_INTERACTION, AbortInteraction(**_cookie_fields(caller), tenant_id=self.tenant)
        )
        await store.delete(self.ctx.pool, self.tenant, details.uid)
        return redirect.redirect_to

    # ------------------------------------------------------------------ PUT /interaction/event

    async def change_event(self, caller: Caller, body: Any) -> None:
        details = await self.details(caller)
        event = guards.parse_event(body)
        steps = StepLog(caller, details.uid)

        async def run() -> None:
            update = steps.create(f"Interaction.{event}.Update")
            update["event"] = event
            sie = await self.sign_in_experience()
            domain.verify_sign_in_mode(event, sie)
            storage = await self.storage(details.uid)
            # A forgot-password interaction is never shared with the others.
            if (event == FORGOT_PASSWORD) != (storage["event"] == FORGOT_PASSWORD):
                raise RequestError("session.interaction_not_found", 404)
            storage["event"] = event
            update["interactionStorage"] = storage
            await self._save(details, storage, steps)

        await self._logged(steps, run)

    # ------------------------------------------------------------------ PATCH /interaction/identifiers

    async def add_identifier(self, caller: Caller, body: Any) -> None:
        details = await self.details(caller)
        identifier = guards.parse_identifier(body)
        storage = await self.storage(details.uid)
        event = storage["event"]
        steps = StepLog(caller, details.uid)

        async def run() -> None:
            update = steps.create(f"Interaction.{event}.Update")
            if event != FORGOT_PASSWORD:
                domain.verify_identifier_settings(identifier, await self.sign_in_experience())
            verified = await self._verify_identifier(details, steps, event, identifier, storage)
            storage["identifiers"] = domain.upsert_identifier(storage["identifiers"], verified)
            update["identifier"] = verified
            update["interactionStorage"] = storage
            await self._save(details, storage, steps)

        await self._logged(steps, run)

    # ------------------------------------------------------------------ /interaction/profile

    async def set_profile(self, caller: Caller, body: Any, *, merge: bool) -> None:
        """PUT (replace) or PATCH (shallow merge) the profile."""
        details = await self.details(caller)
        profile = guards.parse_profile(body)
        storage = await self.storage(details.uid)
        event = storage["event"]
        steps = StepLog(caller, details.uid)

        async def run() -> None:
            entry = steps.create(f"Interaction.{event}.Profile.{'Update' if merge else 'Create'}")
            entry["profile"] = profile
            if merge:
                entry["method"] = "PATCH"
            if event != FORGOT_PASSWORD:
                domain.verify_profile_settings(profile, await self.sign_in_experience())
            hashed = await self._hashed(details.uid, event, storage, profile)
            storage["profile"] = {**(storage.get("profile") or {}), **hashed} if merge else hashed
            entry["interactionStorage"] = storage
            await self._save(details, storage, steps)

        await self._logged(steps, run)

    async def delete_profile(self, caller: Caller) -> None:
        details = await self.details(caller)
        storage = await self.storage(details.uid)
        steps = StepLog(caller, details.uid)

        async def run() -> None:
            entry = steps.create(f"Interaction.{storage['event']}.Profile.Delete")
            storage.pop("profile", None)
            entry["interactionStorage"] = storage
            await self._save(details, storage, steps)

        await self._logged(steps, run)

    # ------------------------------------------------------------------ new passwords, never in clear

    async def _hashed(self, uid: str, event: str, storage: dict[str, Any], profile: Payload) -> Payload:
        """The profile with its new password replaced by identity's hash of it: the clear text
        lives only for this request. A reset's password is compared with the account's current
        one now, while it is at hand (Logto's `user.same_password`, answered at submit)."""
        if "password" not in profile:
            return profile
        account_id = await self._reset_account(uid, storage) if event == FORGOT_PASSWORD else None
        hashed = await self.ctx.call(HASH_PASSWORD, HashPasswordRequest(
            password=profile["password"], compare_with_user_id=account_id, tenant_id=self.tenant))
        return {**profile, "password": domain.stored_password(hashed, account_id)}

    async def _reset_account(self, uid: str, storage: dict[str, Any]) -> str | None:
        """The account a ForgotPassword interaction is about, as far as it is known yet: its
        verified email or phone, else where its latest code went."""
        for identifier in reversed(storage.get("identifiers") or []):
            if identifier["key"] == "accountId":
                return identifier["value"]
            if identifier["key"] in ("emailVerified", "phoneVerified"):
                kind = "email" if identifier["key"] == "emailVerified" else "phone"
                user = await self._find_user(by=kind, value=identifier["value"])
                return user.id if user else None
        target = await codes.latest_target(self.ctx.pool, self.tenant, uid, FORGOT_PASSWORD)
        if target is None:
            return None
        kind, value = target
        user = await self._find_user(by=kind, value=value)
        return user.id if user else None

    # ------------------------------------------------------------------ identifier verification (§4.4)

    async def _verify_identifier(self, details: InteractionDetails, steps: StepLog, event: str,
                                 identifier: Payload, storage: dict[str, Any]) -> Identifier:
        if "password" in identifier:
            kind = next(k for k in ("username", "email", "phone") if k in identifier)
            steps.create(f"Interaction.{event}.Identifier.Password.Submit")[kind] = identifier[kind]
            user = await self.ctx.call(VERIFY_PASSWORD, VerifyPasswordRequest(
                by=kind, value=identifier[kind], password=identifier["password"], tenant_id=self.tenant,
                client_ip=steps.caller.ip,  # identity limits checks per address and account (429)
            ))
            return {"key": "accountId", "value": user.id}
        if "verificationCode" in identifier:
            kind = "email" if "email" in identifier else "phone"
            steps.create(f"Interaction.{event}.Identifier.VerificationCode.Submit")[kind] = identifier[kind]
            await VerificationCodes(self.ctx).verify(
                interaction_uid=details.uid, type_=event, kind=kind, value=identifier[kind],
                code=identifier["verificationCode"], ip=steps.caller.ip)
            return {"key": f"{kind}Verified", "value": identifier[kind]}
        # Logto logs both social cases under SignIn, whatever the event (§11.13).
        entry = steps.create("Interaction.SignIn.Identifier.Social.Submit")
        entry.update(identifier)
        connector_id = identifier["connectorId"]
        if "connectorData" in identifier:
            await self._social_connector(connector_id)
            session = storage.pop("connectorSession", None)
            reply = await self.ctx.call(INTERACTION_USER_INFO, InteractionUserInfoRequest(
                connector_id=connector_id, connector_data=identifier["connectorData"], connector_session=session,
                interaction_id=details.uid, tenant_id=self.tenant,
            ))
            entry.update(reply.user_info)
            return {"key": "social", "connectorId": connector_id, "userInfo": reply.user_info}
        kind = "email" if "email" in identifier else "phone"
        social = domain.find_identifier(storage.get("identifiers", []), "social", connectorId=connector_id)
        if social is None or social["userInfo"].get(kind) != identifier[kind]:
            raise RequestError("session.connector_session_not_found", 400)
        return {"key": f"{kind}Verified", "value": identifier[kind]}

    # ------------------------------------------------------------------ verification code (§4.2, §4.6)

    async def send_code(self, caller: Caller, body: Any) -> None:
        details = await self.details(caller)
        target = guards.parse_code_request(body)
        storage = await self.storage(details.uid)
        event = storage["event"]
        steps = StepLog(caller, details.uid)

        async def run() -> None:
            entry = steps.create(f"Interaction.{event}.Identifier.VerificationCode.Create")
            entry.update(target)
            entry["connectorId"] = await VerificationCodes(self.ctx).send(
                interaction_uid=details.uid, type_=event, target=target, ip=caller.ip)
            async with self.ctx.pool.acquire() as conn, conn.transaction():
                await self._write_steps(conn, steps)

        await self._logged(steps, run)

    # ------------------------------------------------------------------ social authorization URI

    async def social_authorization_uri(self, caller: Caller, body: Any) -> str:
        details = await self.details(caller)
        request = guards.parse_social_authorization(body)
        storage = await self.storage(details.uid)
        steps = StepLog(caller, details.uid)

        async def run() -> str:
            entry = steps.create(f"Interaction.{storage['event']}.Identifier.Social.Create")
            entry.update(request)
            if not request["state"] or not request["redirectUri"]:
                raise RequestError("session.insufficient_info", 400)
            connector = await connectors.find_connector_now(self.ctx, self.tenant, request["connectorId"])
            if connector is None:
                raise RequestError("entity.not_found", 404)
            if connector.type != "Social":
                raise RequestError("connector.unexpected_type", 400)
            reply = await self.ctx.call(AUTHORIZATION_URI, AuthorizationUriRequest(
                connector_id=connector.id, state=request["state"], redirect_uri=request["redirectUri"],
                interaction_id=details.uid, user_agent=caller.user_agent, tenant_id=self.tenant,
            ))
            storage["connectorSession"] = reply.connector_session
            await self._save(details, storage, steps)
            return reply.redirect_to

        return await self._logged(steps, run)

    # ------------------------------------------------------------------ POST /interaction/consent

    async def consent(self, caller: Caller) -> str:
        """One call to identity: it checks the cookie and that someone signed in (Logto asserts
        a session first: 400 `session.not_found`), and answers whose consent it was."""
        if not caller.cookie:
            raise RequestError("session.not_found", 400)
        granted = await self.ctx.call(
            GRANT_CONSENT, GrantConsent(**_cookie_fields(caller), tenant_id=self.tenant)
        )
        account_id, client_id, first = granted.account_id, granted.client_id, granted.first_application
        if account_id is None:  # an identity older than ConsentGranted's fields: ask as before
            details = await self.details(caller)
            account_id, client_id = details.login_account_id or details.session_account_id, details.client_id
            user = await self._find_user(by="id", value=account_id) if account_id else None
            first = user is not None and user.application_id is None
        if first and account_id and client_id:
            # Logto remembers the first application a user consented to.
            await self.ctx.call(UPDATE_USER, UpdateUserRequest(
                user_id=account_id, application_id=client_id, tenant_id=self.tenant,
            ))
        return granted.redirect_to

    # ------------------------------------------------------------------ POST /interaction/submit (§4.5)

    async def submit(self, caller: Caller) -> str | None:
        """SignIn and Register answer where the browser goes next; ForgotPassword `None`."""
        details = await self.details(caller)
        # The interaction and the sign-in experience in one round trip.
        found, sie = await store.find_with_sign_in_experience(self.ctx.pool, self.tenant, details.uid)
        if found is None:
            raise RequestError("session.verification_session_not_found", 404)
        if self._sie is None and sie is not None:
            self._sie = sie
        storage = found
        event = storage["event"]
        steps = StepLog(caller, details.uid)

        async def run() -> str | None:
            entry = steps.create(f"Interaction.{event}.Submit")
            entry["interaction"] = mask_passwords(storage)
            identifiers: list[Identifier] = list(storage.get("identifiers") or [])
            profile: Payload = dict(storage.get("profile") or {})
            user: UserInfo | None = None
            registered = storage.get("registered") if event == "Register" else None
            if registered:
                # An earlier submit of this registration asked identity for its user and did
                # not finish (the reply was lost, or the login rpc failed): finish it with that
                # user, never create a second one or answer "username already in use" to its
                # own registrant. If identity never created it, register afresh.
                user = await self._find_user(idempotency_key=registered["key"])
                if user is None:
                    registered = None
                else:
                    methods = list(registered["methods"])
            if user is None:
                sie = await self.sign_in_experience()
                if event in ("SignIn", FORGOT_PASSWORD):
                    account_id = await self._identify(storage, identifiers, profile)
                    user = await self._find_user(by="id", value=account_id)
                    if user is None:
                        raise RequestError("entity.not_found", 404)
                await self._verify_profile(event, user, identifiers, profile)
                if event != FORGOT_PASSWORD:
                    identifiers, profile = await self._check_mandatory_profile(event, sie, user, identifiers, profile)
                methods = domain.authentication_methods(identifiers, profile, event)
            redirect: str | None = None
            signed_in_at: int | None = None  # for FINISH_LOGIN to record, when nothing else changes
            if event == "Register":
                if registered is None:
                    # The key is stored before identity is asked, so whatever happens to the
                    # reply, the next submit can find the user this registration created.
                    registered = {"key": f"register:{details.uid}:{secrets.token_hex(8)}", "methods": methods}
                    await self._remember_registration(details, storage, registered)
                    user = await self._register(identifiers, profile, registered["key"])
            elif event == "SignIn":
                assert user is not None
                user, signed_in_at = await self._sign_in(user, identifiers, profile)
            else:
                assert user is not None
                user = await self.ctx.call(UPDATE_USER, UpdateUserRequest(
                    user_id=user.id, tenant_id=self.tenant, **domain.password_fields(profile["password"]),
                ))
            application: InteractionApplication | None | object = _ASK
            if event != FORGOT_PASSWORD:
                finished = await self.ctx.call(FINISH_LOGIN, FinishLogin(
                    **_cookie_fields(caller), account_id=user.id,
                    amr=[domain.AMR[m] for m in methods], tenant_id=self.tenant, last_sign_in_at=signed_in_at,
                ))
                redirect = finished.redirect_to
                if finished.user is not None:  # identity answers the user and the client with the login
                    user = finished.user
                    application = _application(finished.application)
                elif signed_in_at is not None:  # an identity older than that: as before
                    user = await self.ctx.call(UPDATE_USER, UpdateUserRequest(
                        user_id=user.id, last_sign_in_at=signed_in_at, tenant_id=self.tenant))
            steps.set_user(entry, user.id)
            await self._finish(details, caller, steps, event, user, identifiers, profile, methods,
                               registration_key=registered["key"] if registered else None,
                               application=application)
            return redirect

        return await self._logged(steps, run)

    async def _remember_registration(self, details: InteractionDetails, storage: dict[str, Any],
                                     registered: dict[str, Any]) -> None:
        expires_at = from_ms(details.expires_at)
        await store.save(self.ctx.pool, self.tenant, details.uid, {**storage, "registered": registered}, expires_at)

    async def _identify(self, storage: dict[str, Any], identifiers: list[Identifier], profile: Payload) -> str:
        """The one account every auth identifier points at (§4.5.2)."""
        auth = domain.auth_identifiers(identifiers, profile)
        if not auth:
            raise RequestError("session.identifier_not_found", 404)
        account_ids: set[str] = set()
        for identifier in auth:
            key = identifier["key"]
            if key == "accountId":
                account_ids.add(identifier["value"])
                continue
            if key in ("emailVerified", "phoneVerified"):
                kind = "email" if key == "emailVerified" else "phone"
                user = await self._find_user(by=kind, value=identifier["value"])
                if user is None:
                    raise RequestError("user.user_not_exist", 404, data={"identifier": identifier["value"]},
                                       identifier=identifier["value"])
            else:
                connector = await self._social_connector(identifier["connectorId"])
                info = identifier["userInfo"]
                user = await self._find_user(identity_target=connector.target, identity_user_id=str(info.get("id")))
                if user is None:
                    raise RequestError("user.identity_not_exist", 422, data=await self._related_user(info))
            if user.is_suspended:
                raise RequestError("user.suspended", 401)
            account_ids.add(user.id)
        stored = storage.get("accountId")
        if len(account_ids) != 1 or (stored is not None and stored not in account_ids):
            raise RequestError("session.verification_failed", 400)
        (account_id,) = account_ids
        storage["accountId"] = account_id
        return account_id

    async def _related_user(self, info: dict[str, Any]) -> dict[str, Any] | None:
        """A user who has the social account's phone (checked first) or email."""
        for kind in ("phone", "email"):
            value = info.get(kind)
            if isinstance(value, str) and value and await self._find_user(by=kind, value=value):
                return {"relatedUser": {"type": kind, "value": value}}
        return None

    async def _verify_profile(self, event: str, user: UserInfo | None, identifiers: list[Identifier],
                              profile: Payload) -> None:
        if event == FORGOT_PASSWORD:
            assert user is not None
            if "password" not in profile:
                raise RequestError("user.new_password_required_in_profile", 422)
            # Checked by identity when the password was hashed, against the account known then.
            if domain.is_same_password(profile["password"], user.id):
                raise RequestError("user.same_password", 422)
            return
        domain.verify_profile_backing(identifiers, profile)
        if event == "SignIn":
            assert user is not None
            domain.verify_profile_not_in_user(user, profile)
        await self._verify_not_used_by_others(identifiers, profile)

    async def _verify_not_used_by_others(self, identifiers: list[Identifier], profile: Payload) -> None:
        for field, by in (("username", "username"), ("email", "email"), ("phone", "phone")):
            if field in profile and await self._find_user(by=by, value=profile[field]):
                raise RequestError(f"user.{field}_already_in_use", 422)
        if "connectorId" in profile:
            social = domain.find_identifier(identifiers, "social", connectorId=profile["connectorId"])
            assert social is not None  # backed, checked above
            connector = await self._social_connector(profile["connectorId"])
            if await self._find_user(identity_target=connector.target,
                                     identity_user_id=str(social["userInfo"].get("id"))):
                raise RequestError("user.identity_already_in_use", 422)

    async def _check_mandatory_profile(self, event: str, sie: dict[str, Any], user: UserInfo | None,
                                       identifiers: list[Identifier], profile: Payload
                                       ) -> tuple[list[Identifier], Payload]:
        missing = domain.missing_profile(sie["signUp"], user, profile)
        social = domain.find_identifier(identifiers, "social")
        if social is not None:
            info = social["userInfo"]
            for kind in ("email", "phone"):
                value = info.get(kind)
                if not (value and (kind in missing or "emailOrPhone" in missing)):
                    continue
                if await self._find_user(by=kind, value=value):
                    data: dict[str, Any] = {"missingProfile": missing}
                    if event == "SignIn":
                        data["registeredSocialIdentity"] = {kind: value}
                    raise RequestError("user.missing_profile", 422, data=data)
                identifiers = [*identifiers, {"key": f"{kind}Verified", "value": value, "fromSocial": True}]
                profile = {**profile, kind: value}
                missing = [m for m in missing if m not in (kind, "emailOrPhone")]
                break
        if missing:
            raise RequestError("user.missing_profile", 422, data={"missingProfile": missing})
        if event == "Register" and not any(k in profile for k in ("username", "email", "phone", "connectorId")):
            raise RequestError("user.missing_profile", 422)
        return identifiers, profile

    async def _social_profile(self, identifiers: list[Identifier], profile: Payload
                              ) -> tuple[dict[str, Identity], dict[str, Any], bool] | None:
        """(identities, user-info fields, sync profile) of the social identifier the profile links."""
        if "connectorId" not in profile:
            return None
        social = domain.find_identifier(identifiers, "social", connectorId=profile["connectorId"])
        if social is None:
            return None
        connector = await self._social_connector(profile["connectorId"])
        info = dict(social["userInfo"])
        social_id = str(info.pop("id", ""))
        identities = {connector.target: Identity(user_id=social_id, details=info)}
        return identities, info, connector.sync_profile

    async def _register(self, identifiers: list[Identifier], profile: Payload, idempotency_key: str) -> UserInfo:
        fields: dict[str, Any] = {}
        social = await self._social_profile(identifiers, profile)
        if social is not None:
            identities, info, _ = social
            fields["identities"] = identities
            for source, target in (("name", "name"), ("avatar", "avatar"), ("email", "primary_email"),
                                   ("phone", "primary_phone")):
                if isinstance(info.get(source), str) and info[source]:
                    fields[target] = info[source]
        for source, target in (("username", "username"), ("email", "primary_email"), ("phone", "primary_phone")):
            if source in profile:
                fields[target] = profile[source]
        if "password" in profile:
            fields.update(domain.password_fields(profile["password"]))
        domain.drop_unsafe_avatar(fields)
        return await self.ctx.call(CREATE_USER, CreateUserRequest(
            last_sign_in_at=now_ms(), tenant_id=self.tenant, idempotency_key=idempotency_key, **fields,
        ))

    async def _sign_in(self, user: UserInfo, identifiers: list[Identifier], profile: Payload
                       ) -> tuple[UserInfo, int | None]:
        """The user after what this sign-in changes of them, and the sign-in time when only
        that is left to record (FINISH_LOGIN records it, in its transaction)."""
        fields: dict[str, Any] = {}
        social = await self._social_profile(identifiers, profile)
        if social is not None:
            identities, info, sync_profile = social
            fields["identities"] = identities
            if sync_profile:
                fields.update({k: info[k] for k in ("name", "avatar") if isinstance(info.get(k), str)})
        for source, target in (("username", "username"), ("email", "primary_email"), ("phone", "primary_phone")):
            if source in profile:
                fields[target] = profile[source]
        if "password" in profile:
            fields.update(domain.password_fields(profile["password"]))
        auth = domain.auth_identifiers(identifiers, profile)
        if auth and auth[-1]["key"] == "social":
            connector = await self._social_connector(auth[-1]["connectorId"])
            if connector.sync_profile:
                info = auth[-1]["userInfo"]
                fields.update({k: info[k] for k in ("name", "avatar") if isinstance(info.get(k), str)})
        domain.drop_unsafe_avatar(fields)
        if not fields:
            return user, now_ms()
        return await self.ctx.call(UPDATE_USER, UpdateUserRequest(
            user_id=user.id, last_sign_in_at=now_ms(), tenant_id=self.tenant, **fields,
        )), None

    async def application(self, client_id: str) -> InteractionApplication | None:
        """For the webhook payload; omitted when identity does not know the client (or is away)."""
        try:
            client = await self.ctx.call(APPLICATION_CLIENT, ApplicationRequest(
                application_id=client_id, tenant_id=self.tenant))
        except RequestError:
            return None
        return _application(client)

    async def _finish(self, details: InteractionDetails, caller: Caller, steps: StepLog, event: str,
                      user: UserInfo, identifiers: list[Identifier], profile: Payload, methods: list[str],
                      *, registration_key: str | None = None,
                      application: InteractionApplication | None | object = _ASK) -> None:
        """All at once: the interaction's new state, the domain event, the step logs (one
        statement, or for a registration and a reset one transaction). A registration is
        announced once: when a concurrent submit has finished it already, this one only logs
        its steps."""
        context = InteractionContext(interaction_id=details.uid, application_id=details.client_id,
                                     ip=caller.ip, user_agent=caller.user_agent)
        if application is _ASK:
            application = await self.application(details.client_id)
        assert application is None or isinstance(application, InteractionApplication)
        if event == "Register":
            announced: msgspec.Struct = InteractionRegistered(
                user_id=user.id, context=context, user=snapshot(user), application=application, methods=methods)
        elif event == "SignIn":
            announced = InteractionSignedIn(
                user_id=user.id, context=context, user=snapshot(user), application=application, methods=methods)
        else:
            announced = InteractionPasswordReset(
                user_id=user.id, context=context, user=snapshot(user), application=application)
        expires_at = from_ms(details.expires_at)
        # The new password is identity's now; it need not wait here in clear.
        kept = {k: v for k, v in profile.items() if k != "password"}
        storage = {"event": event, "identifiers": identifiers, "profile": kept, "accountId": user.id}
        if registration_key is None and event != FORGOT_PASSWORD:
            await self._save_with_events(details.uid, storage, expires_at, steps, (announced, user.id))
            return
        async with self.ctx.pool.acquire() as conn, conn.transaction():
            if registration_key is not None:
                current = await store.find(conn, self.tenant, details.uid, lock=True) or {}
                if current.get("accountId") == user.id and "registered" not in current:
                    await self._write_steps(conn, steps)  # a concurrent submit finished it
                    return
            if event == FORGOT_PASSWORD:
                # Logto clears the result: there is no login after a reset.
                await store.delete(conn, self.tenant, details.uid)
            else:
                await store.save(conn, self.tenant, details.uid, storage, expires_at)
            await self.ctx.outbox.emit(conn, announced, aggregate_id=user.id, tenant_id=self.tenant)
            await self._write_steps(conn, steps)
