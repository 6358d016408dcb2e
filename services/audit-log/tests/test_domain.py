"""From events to Logto-shaped log entries (no I/O)."""
from tessera_audit_log.domain import is_user_activity, log_entry_for, mask_passwords, parse_day
from tessera_events import Actor
from tessera_events.experience import InteractionStep
from tessera_events.identity import (
    InteractionEnded,
    InteractionStarted,
    TokenExchangeFailed,
    TokenIssued,
    UserCreated,
    UserSnapshot,
)
from tessera_kit.outbox import build_envelope


def test_token_issued_becomes_exchange_token_log():
    envelope = build_envelope(TokenIssued(grant_type="refresh_token", application_id="app1",
                                          user_id="u1", token_types=["AccessToken", "RefreshToken"]))
    entry = log_entry_for(envelope)
    assert entry.key == "ExchangeTokenBy.RefreshToken"
    assert entry.payload["result"] == "Success"
    assert (entry.payload["userId"], entry.payload["applicationId"]) == ("u1", "app1")
    assert entry.payload["tokenTypes"] == ["AccessToken", "RefreshToken"]
    assert is_user_activity(entry)


def test_failed_exchange_is_an_error_log_and_not_activity():
    envelope = build_envelope(TokenExchangeFailed(grant_type="authorization_code", error="invalid_grant",
                                                  application_id="app1"))
    entry = log_entry_for(envelope)
    assert entry.key == "ExchangeTokenBy.AuthorizationCode"
    assert entry.payload["result"] == "Error"
    assert entry.payload["error"] == {"message": "invalid_grant", "code": "invalid_grant"}
    assert not is_user_activity(entry)


def test_interaction_step_keeps_its_logto_key_and_masks_passwords():
    envelope = build_envelope(InteractionStep(
        log_key="Interaction.SignIn.Identifier.Password.Submit", interaction_id="i1",
        payload={"identifier": {"username": "alice", "password": "secret1!"}},
    ))
    entry = log_entry_for(envelope)
    assert entry.key == "Interaction.SignIn.Identifier.Password.Submit"
    assert entry.payload["identifier"] == {"username": "alice", "password": "******"}
    assert entry.payload["interactionId"] == "i1"


def test_interactions_starting_and_ending_are_logtos_interaction_create_and_end():
    params = {"client_id": "app1", "redirect_uri": "https://app.example/cb", "response_type": "code"}
    prompt = {"name": "login", "reasons": ["no_session"], "details": {}}
    started = log_entry_for(build_envelope(InteractionStarted(
        interaction_id="i1", application_id="app1", params=params, prompt=prompt)))
    assert started.key == "Interaction.Create"
    assert {k: started.payload.get(k) for k in ("result", "interactionId", "applicationId", "params", "prompt")} == {
        "result": "Success", "interactionId": "i1", "applicationId": "app1", "params": params, "prompt": prompt}
    assert "userId" not in started.payload and "sessionId" not in started.payload
    ended = log_entry_for(build_envelope(InteractionEnded(
        interaction_id="i1", application_id="app1", params=params, user_id="u1", session_id="s1")))
    assert ended.key == "Interaction.End"
    assert (ended.payload["interactionId"], ended.payload["userId"], ended.payload["sessionId"]) == ("i1", "u1", "s1")
    assert not is_user_activity(ended)


def test_other_events_are_logged_under_their_type_with_camel_case_data():
    envelope = build_envelope(UserCreated(user=UserSnapshot(id="u1", primary_email="a@b.c")),
                              actor=Actor(type="user", id="admin"), request_id="r1")
    entry = log_entry_for(envelope)
    assert entry.key == "identity.user.created"
    assert entry.payload["userId"] == "u1"
    assert entry.payload["data"]["user"]["primaryEmail"] == "a@b.c"
    assert entry.payload["actor"] == {"type": "user", "id": "admin"}
    assert entry.payload["requestId"] == "r1"
    assert entry.payload["eventId"] == envelope.id
    assert entry.created_at.timestamp() * 1000 == envelope.occurred_at


def test_mask_passwords_at_any_depth_but_not_inside_arrays():
    value = {"password": "x", "a": {"password": "y"}, "list": [{"password": "z"}]}
    assert mask_passwords(value) == {"password": "******", "a": {"password": "******"},
                                     "list": [{"password": "z"}]}


def test_parse_day():
    import datetime as dt

    today = dt.date(2026, 1, 2)
    assert parse_day(None, today) == today
    assert parse_day("2025-12-31", today) == dt.date(2025, 12, 31)
    assert parse_day("yesterday", today) is None


def test_hook_attempts_become_trigger_hook_logs_under_the_attempt_id():
    from tessera_events.webhooks import AttemptFacts, DeliveryFailed, DeliverySucceeded

    facts = AttemptFacts(delivery_id="d1", attempt_id="a1", hook_id="h1", event="PostSignIn", attempt=1,
                         request_body={"hookId": "h1", "event": "PostSignIn"},
                         response={"statusCode": 200, "body": {"ok": True}})
    entry = log_entry_for(build_envelope(DeliverySucceeded(attempt=facts)))
    assert (entry.key, entry.id) == ("TriggerHook.PostSignIn", "a1")
    assert entry.payload["result"] == "Success" and entry.payload["hookId"] == "h1"
    assert entry.payload["hookRequest"] == {"body": {"hookId": "h1", "event": "PostSignIn"}}
    assert entry.payload["response"] == {"statusCode": 200, "body": {"ok": True}}
    assert "error" not in entry.payload
    failed = AttemptFacts(delivery_id="d1", attempt_id="a2", hook_id="h1", event="PostSignIn", attempt=2,
                          request_body={"hookId": "h1"})
    entry = log_entry_for(build_envelope(DeliveryFailed(attempt=failed, error="RequestError: Invalid URL")))
    assert entry.payload["result"] == "Error" and entry.payload["error"] == "RequestError: Invalid URL"
    assert "response" not in entry.payload and entry.id == "a2"
