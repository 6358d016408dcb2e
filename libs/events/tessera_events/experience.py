"""Events published by the experience service (interactions and its configuration)."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from tessera_events.catalogue import event
from tessera_events.envelope import EventData

InteractionEventName = Literal["SignIn", "Register", "ForgotPassword"]


class InteractionContext(msgspec.Struct, frozen=True, kw_only=True):
    """What a webhook payload (Logto §6.3) needs about the interaction."""

    interaction_id: str
    application_id: str | None = None
    session_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None


@event("experience.interaction.signed_in")
class InteractionSignedIn(EventData):
    """A user finished a sign-in interaction (drives the PostSignIn webhook)."""

    user_id: str
    context: InteractionContext
    method: str = "password"


@event("experience.interaction.registered")
class InteractionRegistered(EventData):
    """A user registered through an interaction (drives PostRegister)."""

    user_id: str
    context: InteractionContext


@event("experience.interaction.password_reset")
class InteractionPasswordReset(EventData):
    """A user reset their password through an interaction (drives PostResetPassword)."""

    user_id: str
    context: InteractionContext


@event("experience.interaction.step")
class InteractionStep(EventData):
    """One step of an interaction, logged under Logto's `Interaction.*` key (§9.2)."""

    log_key: str
    interaction_id: str
    result: Literal["Success", "Error"] = "Success"
    user_id: str | None = None
    application_id: str | None = None
    payload: dict[str, Any] = {}
    error: dict[str, Any] | None = None


@event("experience.sign_in_experience.updated")
class SignInExperienceUpdated(EventData):
    """The sign-in experience changed; `changed` names the fields."""

    changed: list[str]


@event("experience.custom_phrase.upserted")
class CustomPhraseUpserted(EventData):
    """Custom phrases for a language were created or replaced."""

    language_tag: str


@event("experience.custom_phrase.deleted")
class CustomPhraseDeleted(EventData):
    """Custom phrases for a language were deleted."""

    language_tag: str


@event("experience.admin_console.updated")
class AdminConsoleConfigUpdated(EventData):
    """The admin-console "get started" flags changed."""

    changed: list[str]
