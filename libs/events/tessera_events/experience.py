"""Events published by the experience service (interactions and its configuration).

Never a password in an event: interaction step payloads are masked before they are written.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from tessera_events.catalogue import event
from tessera_events.envelope import EventData
from tessera_events.identity import UserSnapshot

InteractionEventName = Literal["SignIn", "Register", "ForgotPassword"]
# How the user proved who they are: a password, a verification code, a social account.
AuthenticationMethod = Literal["password", "verification_code", "social"]


class InteractionApplication(msgspec.Struct, frozen=True, kw_only=True):
    """The client the interaction was started for (Logto §6.3 `application`)."""

    id: str
    type: str
    name: str
    description: str | None = None


class InteractionContext(msgspec.Struct, frozen=True, kw_only=True):
    """What a webhook payload (Logto §6.3) needs about the interaction.

    `interaction_id` is the OIDC interaction uid: Logto's hook payload calls it `sessionId`.
    """

    interaction_id: str
    application_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None


@event("experience.interaction.signed_in")
class InteractionSignedIn(EventData):
    """A user finished a sign-in interaction (drives the PostSignIn webhook).

    `user` is the user as they were after the sign-in (None if the lookup failed);
    `application` is None when the client is unknown to identity.
    """

    user_id: str
    context: InteractionContext
    user: UserSnapshot | None = None
    application: InteractionApplication | None = None
    methods: list[AuthenticationMethod] = []


@event("experience.interaction.registered")
class InteractionRegistered(EventData):
    """A user registered through an interaction (drives PostRegister)."""

    user_id: str
    context: InteractionContext
    user: UserSnapshot | None = None
    application: InteractionApplication | None = None
    methods: list[AuthenticationMethod] = []


@event("experience.interaction.password_reset")
class InteractionPasswordReset(EventData):
    """A user reset their password through an interaction (drives PostResetPassword)."""

    user_id: str
    context: InteractionContext
    user: UserSnapshot | None = None
    application: InteractionApplication | None = None


@event("experience.interaction.step")
class InteractionStep(EventData):
    """One step of an interaction, logged under Logto's `Interaction.*` key (§9.2).

    `payload` holds the key's extra fields (camelCase, as Logto logs them) plus `ip` and
    `userAgent`; any `password` in it is already masked. A failed request logs its steps
    with `result: "Error"` and `error: {message, code, data?}`.
    """

    log_key: str
    interaction_id: str
    result: Literal["Success", "Error"] = "Success"
    user_id: str | None = None
    application_id: str | None = None
    payload: dict[str, Any] = {}
    error: dict[str, Any] | None = None


@event("experience.sign_in_experience.updated")
class SignInExperienceUpdated(EventData):
    """The sign-in experience changed; `changed` names the fields (camelCase, as in the API)."""

    changed: list[str]


@event("experience.custom_phrase.upserted")
class CustomPhraseUpserted(EventData):
    """Custom phrases for a language were created or replaced."""

    language_tag: str


@event("experience.custom_phrase.deleted")
class CustomPhraseDeleted(EventData):
    """Custom phrases for a language were deleted."""

    language_tag: str


@event("experience.domain.created")
class DomainCreated(EventData):
    """A custom domain was added: Logto's response shape
    (`{id, domain, status, errorMessage, dnsRecords}`)."""

    domain: dict[str, Any]


@event("experience.domain.deleted")
class DomainDeleted(EventData):
    """A custom domain was removed."""

    id: str
    domain: str


@event("experience.admin_console.updated")
class AdminConsoleConfigUpdated(EventData):
    """The admin-console "get started" flags changed; `changed` names them."""

    changed: list[str]
