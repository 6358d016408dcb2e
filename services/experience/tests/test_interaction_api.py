"""The interaction API (Logto §4) on real PostgreSQL and NATS, against stand-ins of identity
and connectors that answer their rpc contracts: every route, status and error code, and the
events (one per successful submit, none on failure)."""

from __future__ import annotations

import pytest

from tessera_experience.config.domain import default_sign_in_experience

PASSWORD = "s3cret-Pass"
OTHER_PASSWORD = "n3w-Password"
SUBMIT_EVENTS = ("experience.interaction.signed_in", "experience.interaction.registered",
                 "experience.interaction.password_reset")


def error(response, status, code):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, response.text
    return body


async def put(d, body):
    return await d.client.put("/api/interaction", json=body)


async def submit(d):
    return await d.client.post("/api/interaction/submit")


async def submitted_events(d):
    return [t for t in await d.event_types() if t in SUBMIT_EVENTS]


async def set_sie(d, body):
    response = await d.client.patch("/api/sign-in-exp", json=body)
    assert response.status_code == 200, response.text


def method(identifier, password=True, code=False):
    return {"identifier": identifier, "password": password, "verificationCode": code, "isPasswordPrimary": True}


async def with_email_sign_in(d, *, code=True, sign_up=None):
    await d.connectors.add("Email")
    await d.wait_for_connectors(1)
    await set_sie(d, {
        "signUp": sign_up or {"identifiers": ["username"], "password": True, "verify": False},
        "signIn": {"methods": [method("username"), method("email", password=True, code=code)]},
    })


# ------------------------------------------------------------------ the interaction and its storage

ROUTES = [
    ("put", "/api/interaction", {"event": "SignIn"}),
    ("delete", "/api/interaction", None),
    ("put", "/api/interaction/event", {"event": "SignIn"}),
    ("patch", "/api/interaction/identifiers", {"username": "a", "password": "b"}),
    ("put", "/api/interaction/profile", {}),
    ("patch", "/api/interaction/profile", {}),
    ("delete", "/api/interaction/profile", None),
    ("post", "/api/interaction/submit", None),
    ("post", "/api/interaction/consent", None),
    ("post", "/api/interaction/verification/verification-code", {"email": "a@b.co"}),
    ("post", "/api/interaction/verification/social-authorization-uri",
     {"connectorId": "c", "state": "s", "redirectUri": "https://app.test/cb"}),
]


async def call(d, verb, path, body):
    if body is None:
        return await d.client.request(verb.upper(), path)
    return await d.client.request(verb.upper(), path, json=body)


@pytest.mark.parametrize("verb, path, body", ROUTES)
async def test_every_route_needs_a_live_interaction(deployment, verb, path, body):
    error(await call(deployment, verb, path, body), 400, "session.not_found")
    deployment.client.cookies.set("_interaction", "forged.value")
    error(await call(deployment, verb, path, body), 400, "session.not_found")


@pytest.mark.parametrize("verb, path, body", [r for r in ROUTES if r[1] not in (
    "/api/interaction", "/api/interaction/consent")])
async def test_routes_after_put_need_the_stored_interaction(deployment, verb, path, body):
    deployment.use_interaction()
    error(await call(deployment, verb, path, body), 404, "session.verification_session_not_found")


async def test_identity_down_is_503(deployment):
    deployment.use_interaction()
    await deployment.stop_serving("identity")
    error(await put(deployment, {"event": "SignIn"}), 503, "service.unavailable")


@pytest.mark.parametrize("body, path", [
    ({}, "event"),
    ({"event": "LogIn"}, "event"),
    ({"event": "SignIn", "identifier": {"username": "a"}}, "identifier"),
    ({"event": "SignIn", "identifier": {"email": "not-an-email", "verificationCode": "1"}}, "identifier"),
    ({"event": "Register", "profile": {"password": "short"}}, "profile.password"),
    ({"event": "Register", "profile": {"username": "1abc"}}, "profile.username"),
    ({"event": "Register", "profile": {"phone": "+123"}}, "profile.phone"),
])
async def test_put_interaction_guards(deployment, body, path):
    deployment.use_interaction()
    data = error(await put(deployment, body), 400, "guard.invalid_input")
    assert data["data"]["issues"][0]["path"] == path.split(".")


@pytest.mark.parametrize("mode, event", [("Register", "SignIn"), ("SignIn", "Register")])
async def test_sign_in_mode_forbids_the_other_event(deployment, mode, event):
    await set_sie(deployment, {"signInMode": mode})
    deployment.use_interaction()
    error(await put(deployment, {"event": event}), 403, "auth.forbidden")
    assert (await put(deployment, {"event": "ForgotPassword"})).status_code == 204
    other = "Register" if event == "SignIn" else "SignIn"
    assert (await put(deployment, {"event": other})).status_code == 204
    error(await deployment.client.put("/api/interaction/event", json={"event": event}), 403, "auth.forbidden")


async def test_switching_events(deployment):
    d = deployment
    d.use_interaction()
    assert (await put(d, {"event": "SignIn", "profile": {"username": "ann"}})).status_code == 204
    assert (await d.client.put("/api/interaction/event", json={"event": "Register"})).status_code == 204
    error(await d.client.put("/api/interaction/event", json={"event": "ForgotPassword"}), 404,
          "session.interaction_not_found")
    stored = await d.ctx.pool.fetchrow("SELECT event, profile FROM interactions")
    assert stored["event"] == "Register" and stored["profile"] == {"username": "ann"}
    assert (await put(d, {"event": "ForgotPassword"})).status_code == 204
    error(await d.client.put("/api/interaction/event", json={"event": "SignIn"}), 404, "session.interaction_not_found")
    assert (await d.client.put("/api/interaction/event", json={"event": "ForgotPassword"})).status_code == 204
    assert ("Interaction.Register.Update", "Success") in await d.steps()
    assert ("Interaction.SignIn.Update", "Error") in await d.steps()


async def test_profile_put_patch_delete(deployment):
    d = deployment
    d.use_interaction()
    await put(d, {"event": "Register"})
    assert (await d.client.put("/api/interaction/profile", json={"username": "bob", "extra": 1})).status_code == 204
    assert (await d.client.patch("/api/interaction/profile", json={"password": PASSWORD})).status_code == 204
    stored = await d.ctx.pool.fetchval("SELECT profile FROM interactions")
    assert set(stored) == {"username", "password"} and stored["username"] == "bob"
    assert stored["password"]["digest"].startswith("$fake-argon2id$")  # identity's hash, never the password
    assert (await d.client.put("/api/interaction/profile", json={"password": PASSWORD})).status_code == 204
    assert set(await d.ctx.pool.fetchval("SELECT profile FROM interactions")) == {"password"}
    assert (await d.client.delete("/api/interaction/profile")).status_code == 204
    assert await d.ctx.pool.fetchval("SELECT profile FROM interactions") is None
    error(await d.client.put("/api/interaction/profile", json={"email": "a@b.co"}), 422,
          "user.sign_in_method_not_enabled")
    steps = [k for k, _ in await d.steps()]
    assert steps[-4:] == ["Interaction.Register.Profile.Update", "Interaction.Register.Profile.Create",
                          "Interaction.Register.Profile.Delete", "Interaction.Register.Profile.Create"]
    (_, patch_step) = [e for e in await d.events("experience.interaction.step")
                       if e[1]["log_key"] == "Interaction.Register.Profile.Update"][0]
    assert patch_step["payload"]["profile"] == {"password": "******"}
    assert patch_step["payload"]["method"] == "PATCH"
    assert patch_step["payload"]["interactionStorage"]["profile"]["password"] == "******"


# ------------------------------------------------------------------ sign in with a password


async def test_sign_in_with_username_and_password(deployment):
    d = deployment
    alice = d.identity.add_user(username="alice", password=PASSWORD)
    cookie = d.use_interaction()
    assert (await put(d, {"event": "SignIn", "identifier": {"username": "alice", "password": PASSWORD}})).status_code == 204
    response = await submit(d)
    assert response.status_code == 200, response.text
    uid = cookie.split(".")[0]
    assert response.json() == {"redirectTo": f"http://tessera.test/oidc/auth/{uid}"}
    assert d.identity.interactions[uid].login_account_id == alice.id
    assert alice.last_sign_in_at is not None
    assert await submitted_events(d) == ["experience.interaction.signed_in"]
    (_, event), = await d.events("experience.interaction.signed_in")
    assert event["user_id"] == alice.id and event["methods"] == ["password"]
    assert event["user"]["username"] == "alice"
    assert event["application"] == {"id": "app1", "type": "SPA", "name": "Test App", "description": "for tests"}
    assert event["context"] == {"interaction_id": uid, "application_id": "app1", "ip": "127.0.0.1",
                                "user_agent": "pytest"}
    assert await d.steps() == [
        ("Interaction.SignIn.Update", "Success"),
        ("Interaction.SignIn.Identifier.Password.Submit", "Success"),
        ("Interaction.SignIn.Submit", "Success"),
    ]
    submit_step = (await d.events("experience.interaction.step"))[-1][1]
    assert submit_step["user_id"] == alice.id and submit_step["payload"]["userId"] == alice.id


async def test_a_password_sign_in_submit_asks_identity_three_things(deployment):
    """FINISH_LOGIN records the sign-in time and answers the user and the client: a submit
    calls no UPDATE_USER and no APPLICATION_CLIENT (five calls were three)."""
    d = deployment
    alice = d.identity.add_user(username="alice", password=PASSWORD)
    d.use_interaction()
    assert (await put(d, {"event": "SignIn", "identifier": {"username": "alice", "password": PASSWORD}})).status_code == 204
    d.identity.calls.clear()
    assert (await submit(d)).status_code == 200
    assert d.identity.calls == ["interaction_details", "find_user", "finish_login"]
    assert alice.last_sign_in_at is not None
    (_, event), = await d.events("experience.interaction.signed_in")
    assert event["user"]["last_sign_in_at"] == alice.last_sign_in_at
    assert event["application"] == {"id": "app1", "type": "SPA", "name": "Test App", "description": "for tests"}


async def test_sign_in_and_consent_with_an_identity_older_than_their_replies(deployment):
    """An identity answering FINISH_LOGIN and GRANT_CONSENT with a bare redirect (a rolling
    upgrade): the sign-in time, the event's application and the first application are kept."""
    d = deployment
    d.identity.legacy_replies = True
    alice = d.identity.add_user(username="alice", password=PASSWORD)
    d.use_interaction()
    assert (await put(d, {"event": "SignIn", "identifier": {"username": "alice", "password": PASSWORD}})).status_code == 204
    assert (await submit(d)).status_code == 200
    assert alice.last_sign_in_at is not None
    (_, event), = await d.events("experience.interaction.signed_in")
    assert event["application"] == {"id": "app1", "type": "SPA", "name": "Test App", "description": "for tests"}
    rose = d.identity.add_user(username="rose")
    d.use_interaction(prompt="consent", session_account_id=rose.id)
    assert (await d.client.post("/api/interaction/consent")).status_code == 200
    assert rose.application_id == "app1"


async def test_no_password_ever_reaches_an_event(deployment):
    d = deployment
    d.identity.add_user(username="alice", password=PASSWORD)
    d.use_interaction()
    await put(d, {"event": "SignIn", "identifier": {"username": "alice", "password": PASSWORD}})
    await put(d, {"event": "SignIn", "identifier": {"username": "alice", "password": "wrong-1"}})
    await put(d, {"event": "Register", "profile": {"username": "newbie", "password": PASSWORD}})
    assert (await submit(d)).status_code == 200
    envelopes = await d.ctx.pool.fetch("SELECT envelope::text AS e FROM outbox")
    assert envelopes and not any(PASSWORD in r["e"] or "wrong-1" in r["e"] for r in envelopes)


async def test_wrong_password_fails_and_logs_the_error(deployment):
    d = deployment
    d.identity.add_user(username="alice", password=PASSWORD)
    d.use_interaction()
    body = error(await put(d, {"event": "SignIn", "identifier": {"username": "alice", "password": "nope"}}),
                 422, "session.invalid_credentials")
    assert body["message"] == "Incorrect account or password. Please check your input."
    error(await put(d, {"event": "SignIn", "identifier": {"username": "nobody", "password": "x"}}),
          422, "session.invalid_credentials")
    assert await d.ctx.pool.fetchval("SELECT count(*) FROM interactions") == 0
    error(await submit(d), 404, "session.verification_session_not_found")
    assert await submitted_events(d) == []
    steps = await d.events("experience.interaction.step")
    assert [(s["log_key"], s["result"]) for _, s in steps[:2]] == [
        ("Interaction.SignIn.Update", "Error"), ("Interaction.SignIn.Identifier.Password.Submit", "Error")]
    assert steps[1][1]["error"]["code"] == "session.invalid_credentials"
    assert steps[1][1]["payload"]["username"] == "alice"


async def test_suspended_user(deployment):
    d = deployment
    d.identity.add_user(username="sus", password=PASSWORD, is_suspended=True)
    d.use_interaction()
    error(await put(d, {"event": "SignIn", "identifier": {"username": "sus", "password": PASSWORD}}), 401,
          "user.suspended")


async def test_identifier_must_be_an_enabled_sign_in_method(deployment):
    d = deployment
    d.identity.add_user(username="alice", primary_email="alice@example.com", password=PASSWORD)
    d.use_interaction()
    error(await put(d, {"event": "SignIn", "identifier": {"email": "alice@example.com", "password": PASSWORD}}),
          422, "user.sign_in_method_not_enabled")
    error(await put(d, {"event": "SignIn", "identifier": {"email": "alice@example.com", "verificationCode": "1"}}),
          422, "user.sign_in_method_not_enabled")
    await put(d, {"event": "SignIn"})
    error(await d.client.patch("/api/interaction/identifiers", json={"phone": "123", "password": PASSWORD}),
          422, "user.sign_in_method_not_enabled")
    # ForgotPassword skips the sign-in-experience rules.
    await put(d, {"event": "ForgotPassword"})
    error(await d.client.patch("/api/interaction/identifiers", json={"email": "alice@example.com",
                                                                     "verificationCode": "1"}),
          400, "verification_code.not_found")


async def test_email_password_sign_in_when_enabled(deployment):
    d = deployment
    await with_email_sign_in(d, code=False)
    alice = d.identity.add_user(username="alice", primary_email="Alice@Example.com", password=PASSWORD)
    d.use_interaction()
    await put(d, {"event": "SignIn"})
    assert (await d.client.patch("/api/interaction/identifiers",
                                 json={"email": "alice@example.com", "password": PASSWORD})).status_code == 204
    assert (await submit(d)).status_code == 200
    (_, event), = await d.events("experience.interaction.signed_in")
    assert event["user_id"] == alice.id


async def test_submit_without_identifier(deployment):
    deployment.use_interaction()
    await put(deployment, {"event": "SignIn"})
    error(await submit(deployment), 404, "session.identifier_not_found")
    assert ("Interaction.SignIn.Submit", "Error") in await deployment.steps()
    assert await submitted_events(deployment) == []


async def test_submit_reads_the_sign_in_experience_as_it_is_then(deployment):
    """The submit reads the interaction and the sign-in experience together: a sign-up rule
    changed after the PUT applies to the submit."""
    d = deployment
    await with_email_sign_in(d, code=False)
    dave = d.identity.add_user(username="dave", password=PASSWORD)
    d.use_interaction()
    await put(d, {"event": "SignIn", "identifier": {"username": "dave", "password": PASSWORD}})
    await set_sie(d, {"signUp": {"identifiers": ["username", "email"], "password": True, "verify": True}})
    body = error(await submit(d), 422, "user.missing_profile")
    assert body["data"] == {"missingProfile": ["email"]}
    await set_sie(d, {"signUp": {"identifiers": ["username"], "password": True, "verify": False}})
    assert (await submit(d)).status_code == 200
    assert dave.last_sign_in_at is not None


async def test_sign_in_completes_a_missing_profile(deployment):
    d = deployment
    await with_email_sign_in(d, code=False)
    carol = d.identity.add_user(primary_email="carol@example.com", password=PASSWORD)
    d.use_interaction()
    await put(d, {"event": "SignIn", "identifier": {"email": "carol@example.com", "password": PASSWORD}})
    body = error(await submit(d), 422, "user.missing_profile")
    assert body["data"] == {"missingProfile": ["username"]}
    assert await submitted_events(d) == []
    assert (await d.client.patch("/api/interaction/profile", json={"username": "carol"})).status_code == 204
    assert (await submit(d)).status_code == 200
    assert carol.username == "carol"
    assert await submitted_events(d) == ["experience.interaction.signed_in"]


async def test_sign_in_profile_cannot_overwrite(deployment):
    d = deployment
    d.identity.add_user(username="dave", password=PASSWORD)
    d.identity.add_user(username="taken", password=PASSWORD)
    d.use_interaction()
    await put(d, {"event": "SignIn", "identifier": {"username": "dave", "password": PASSWORD},
                  "profile": {"username": "dave2"}})
    error(await submit(d), 400, "user.username_exists_in_profile")
    await d.client.put("/api/interaction/profile", json={"password": OTHER_PASSWORD})
    error(await submit(d), 400, "user.password_exists_in_profile")
    await d.client.delete("/api/interaction/profile")
    assert (await submit(d)).status_code == 200


async def test_two_identifiers_of_different_users(deployment):
    d = deployment
    await with_email_sign_in(d)
    d.identity.add_user(username="erin", password=PASSWORD)
    d.identity.add_user(username="frank", primary_email="frank@example.com")
    d.use_interaction()
    await put(d, {"event": "SignIn", "identifier": {"username": "erin", "password": PASSWORD}})
    assert (await d.client.post("/api/interaction/verification/verification-code",
                                json={"email": "frank@example.com"})).status_code == 204
    assert (await d.client.patch("/api/interaction/identifiers", json={
        "email": "frank@example.com", "verificationCode": d.connectors.last_code()})).status_code == 204
    error(await submit(d), 400, "session.verification_failed")


# ------------------------------------------------------------------ register


async def test_register_with_username_and_password(deployment):
    d = deployment
    cookie = d.use_interaction()
    assert (await put(d, {"event": "Register", "profile": {"username": "gina", "password": PASSWORD}})).status_code == 204
    response = await submit(d)
    assert response.status_code == 200, response.text
    uid = cookie.split(".")[0]
    (gina,) = [u for u in d.identity.users.values() if u.username == "gina"]
    assert gina.password == PASSWORD and gina.last_sign_in_at is not None
    assert d.identity.interactions[uid].login_account_id == gina.id
    assert await submitted_events(d) == ["experience.interaction.registered"]
    (_, event), = await d.events("experience.interaction.registered")
    assert event["user_id"] == gina.id and event["methods"] == ["password"]
    stored = await d.ctx.pool.fetchrow("SELECT profile, account_id FROM interactions")
    assert stored["account_id"] == gina.id and "password" not in stored["profile"]


async def register_until_the_login_fails(d, username: str) -> str:
    """A Register submit that created its user and then met a failing login rpc; returns
    the interaction cookie."""
    cookie = d.use_interaction()
    assert (await put(d, {"event": "Register", "profile": {"username": username, "password": PASSWORD}})).status_code == 204
    d.identity.failing_logins = 1
    assert (await submit(d)).status_code == 500
    return cookie


async def test_a_register_whose_login_failed_is_finished_by_the_next_submit(deployment):
    d = deployment
    cookie = await register_until_the_login_fails(d, "ivy")
    (ivy,) = [u for u in d.identity.users.values() if u.username == "ivy"]
    assert await submitted_events(d) == []

    response = await submit(d)
    assert response.status_code == 200, response.text
    assert [u.id for u in d.identity.users.values() if u.username == "ivy"] == [ivy.id]  # not created twice
    assert d.identity.calls.count("create_user") == 1
    assert d.identity.interactions[cookie.split(".")[0]].login_account_id == ivy.id
    assert await submitted_events(d) == ["experience.interaction.registered"]
    (_, event), = await d.events("experience.interaction.registered")
    assert event["user_id"] == ivy.id and event["methods"] == ["password"]
    stored = await d.ctx.pool.fetchrow("SELECT account_id, registered FROM interactions")
    assert stored["account_id"] == ivy.id and stored["registered"] is None
    # Submitting again after the registration finished registers nobody a second time.
    error(await submit(d), 422, "user.username_already_in_use")
    assert await submitted_events(d) == ["experience.interaction.registered"]


async def test_a_new_profile_after_an_unfinished_register_is_a_new_registration(deployment):
    d = deployment
    cookie = await register_until_the_login_fails(d, "lee")
    assert (await put(d, {"event": "Register", "profile": {"username": "max", "password": PASSWORD}})).status_code == 204
    assert (await submit(d)).status_code == 200
    (max_,) = [u for u in d.identity.users.values() if u.username == "max"]
    assert d.identity.interactions[cookie.split(".")[0]].login_account_id == max_.id  # not lee
    (_, event), = await d.events("experience.interaction.registered")
    assert event["user_id"] == max_.id


async def test_a_register_whose_create_reply_was_lost_creates_the_user_once(deployment):
    d = deployment
    d.use_interaction()
    assert (await put(d, {"event": "Register", "profile": {"username": "jo", "password": PASSWORD}})).status_code == 204
    d.identity.lost_create_replies = 1
    assert (await submit(d)).status_code == 503
    assert (await submit(d)).status_code == 200
    assert [u.username for u in d.identity.users.values()] == ["jo"]
    assert await submitted_events(d) == ["experience.interaction.registered"]
    # Another interaction is another registration.
    d.use_interaction()
    assert (await put(d, {"event": "Register", "profile": {"username": "kim", "password": PASSWORD}})).status_code == 204
    assert (await submit(d)).status_code == 200
    assert sorted(u.username for u in d.identity.users.values()) == ["jo", "kim"]


@pytest.mark.parametrize("profile, missing", [
    ({"username": "hank"}, ["password"]),
    ({"password": PASSWORD}, ["username"]),
    ({}, ["password", "username"]),
])
async def test_register_missing_profile(deployment, profile, missing):
    d = deployment
    d.use_interaction()
    await put(d, {"event": "Register", "profile": profile})
    body = error(await submit(d), 422, "user.missing_profile")
    assert body["data"] == {"missingProfile": missing}
    assert await submitted_events(d) == [] and d.identity.users == {}


async def test_register_needs_some_identifier_in_the_profile(deployment):
    d = deployment
    await set_sie(d, {"signUp": {"identifiers": [], "password": False, "verify": False}})
    d.use_interaction()
    await put(d, {"event": "Register"})
    body = error(await submit(d), 422, "user.missing_profile")
    assert "data" not in body


async def test_register_username_in_use(deployment):
    d = deployment
    d.identity.add_user(username="ivy")
    d.use_interaction()
    await put(d, {"event": "Register", "profile": {"username": "ivy", "password": PASSWORD}})
    error(await submit(d), 422, "user.username_already_in_use")
    assert await submitted_events(d) == []


async def test_register_with_email_and_code(deployment):
    d = deployment
    await d.connectors.add("Email")
    await d.wait_for_connectors(1)
    await set_sie(d, {"signUp": {"identifiers": ["email"], "password": False, "verify": True},
                      "signIn": {"methods": [method("email", password=False, code=True)]}})
    d.use_interaction()
    await put(d, {"event": "Register", "profile": {"email": "jo@example.com"}})
    error(await submit(d), 404, "session.verification_session_not_found")
    assert (await d.client.post("/api/interaction/verification/verification-code",
                                json={"email": "jo@example.com"})).status_code == 204
    sent = d.connectors.sent[-1]
    assert sent.type == "Email" and sent.to == "jo@example.com" and sent.template == "Register"
    assert len(sent.payload["code"]) == 6 and sent.payload["code"].isdigit()
    assert (await d.client.patch("/api/interaction/identifiers", json={
        "email": "jo@example.com", "verificationCode": sent.payload["code"]})).status_code == 204
    assert (await submit(d)).status_code == 200
    (jo,) = d.identity.users.values()
    assert jo.primary_email == "jo@example.com" and jo.password is None
    (_, event), = await d.events("experience.interaction.registered")
    assert event["methods"] == ["verification_code"]
    steps = [k for k, _ in await d.steps()]
    assert "Interaction.Register.Identifier.VerificationCode.Create" in steps
    assert "Interaction.Register.Identifier.VerificationCode.Submit" in steps


# ------------------------------------------------------------------ verification codes


async def test_sending_a_code_without_a_connector(deployment):
    d = deployment
    d.use_interaction()
    await put(d, {"event": "SignIn"})
    body = error(await d.client.post("/api/interaction/verification/verification-code", json={"phone": "123"}),
                 400, "connector.not_found")
    assert "Sms" in body["message"]
    await d.stop_serving("connectors")  # no connectors service at all: the same answer, not a 503
    error(await d.client.post("/api/interaction/verification/verification-code", json={"email": "a@b.co"}),
          400, "connector.not_found")
    # As Logto, a code whose send found no connector is kept (a guess is a mismatch, not "not found").
    assert await d.ctx.pool.fetchval("SELECT count(*) FROM verification_codes") == 1  # the latest replaces
    assert ("Interaction.SignIn.Identifier.VerificationCode.Create", "Error") in await d.steps()
    error(await d.client.post("/api/interaction/verification/verification-code", json={"email": "nope"}),
          400, "guard.invalid_input")


async def test_sign_in_with_an_email_code(deployment):
    d = deployment
    await with_email_sign_in(d)
    kim = d.identity.add_user(primary_email="kim@example.com", username="kim", password=PASSWORD)
    d.use_interaction()
    await put(d, {"event": "SignIn"})
    codes = "/api/interaction/verification/verification-code"
    error(await d.client.patch("/api/interaction/identifiers", json={"email": "kim@example.com",
                                                                     "verificationCode": "000000"}),
          400, "verification_code.not_found")
    assert (await d.client.post(codes, json={"email": "kim@example.com"})).status_code == 204
    first = d.connectors.last_code()
    assert (await d.client.post(codes, json={"email": "kim@example.com"})).status_code == 204
    code = d.connectors.last_code()
    assert d.connectors.sent[-1].template == "SignIn"
    wrong = "111111" if code != "111111" else "222222"
    identifiers = "/api/interaction/identifiers"
    error(await d.client.patch(identifiers, json={"email": "other@example.com", "verificationCode": code}),
          400, "verification_code.email_mismatch")
    error(await d.client.patch(identifiers, json={"email": "kim@example.com", "verificationCode": wrong}),
          400, "verification_code.code_mismatch")
    if first != code:  # the earlier code was replaced by the new one
        error(await d.client.patch(identifiers, json={"email": "kim@example.com", "verificationCode": first}),
              400, "verification_code.code_mismatch")
    assert (await d.client.patch(identifiers, json={"email": "kim@example.com",
                                                    "verificationCode": code})).status_code == 204
    # Consumed: the same code does not work twice.
    error(await d.client.patch(identifiers, json={"email": "kim@example.com", "verificationCode": code}),
          400, "verification_code.not_found")
    assert (await submit(d)).status_code == 200
    (_, event), = await d.events("experience.interaction.signed_in")
    assert event["user_id"] == kim.id and event["methods"] == ["verification_code"]


async def test_code_for_an_unknown_user(deployment):
    d = deployment
    await with_email_sign_in(d)
    d.use_interaction()
    await put(d, {"event": "SignIn"})
    await d.client.post("/api/interaction/verification/verification-code", json={"email": "ghost@example.com"})
    await d.client.patch("/api/interaction/identifiers", json={"email": "ghost@example.com",
                                                               "verificationCode": d.connectors.last_code()})
    body = error(await submit(d), 404, "user.user_not_exist")
    assert body["data"] == {"identifier": "ghost@example.com"}


async def test_code_tries_and_expiry(deployment):
    d = deployment
    await with_email_sign_in(d)
    d.use_interaction()
    await put(d, {"event": "SignIn"})
    await d.client.post("/api/interaction/verification/verification-code", json={"email": "lee@example.com"})
    code = d.connectors.last_code()
    wrong = "111111" if code != "111111" else "222222"
    payload = {"email": "lee@example.com", "verificationCode": wrong}
    for _ in range(10):
        error(await d.client.patch("/api/interaction/identifiers", json=payload), 400,
              "verification_code.code_mismatch")
    error(await d.client.patch("/api/interaction/identifiers", json={**payload, "verificationCode": code}), 400,
          "verification_code.exceed_max_try")
    await d.client.post("/api/interaction/verification/verification-code", json={"email": "lee@example.com"})
    await d.ctx.pool.execute("UPDATE verification_codes SET created_at = now() - interval '11 minutes'")
    error(await d.client.patch("/api/interaction/identifiers", json={
        "email": "lee@example.com", "verificationCode": d.connectors.last_code()}), 400, "verification_code.expired")


async def test_a_code_belongs_to_the_event_it_was_sent_for(deployment):
    d = deployment
    await with_email_sign_in(d)
    d.use_interaction()
    await put(d, {"event": "SignIn"})
    await d.client.post("/api/interaction/verification/verification-code", json={"phone": "555"})
    error(await d.client.patch("/api/interaction/identifiers", json={"phone": "555", "verificationCode": "1"}),
          422, "user.sign_in_method_not_enabled")  # phone is not a sign-in method here
    await d.client.post("/api/interaction/verification/verification-code", json={"email": "max@example.com"})
    await d.client.put("/api/interaction/event", json={"event": "Register"})
    error(await d.client.patch("/api/interaction/identifiers", json={
        "email": "max@example.com", "verificationCode": d.connectors.last_code()}), 400,
        "verification_code.not_found")


# ------------------------------------------------------------------ forgot password


async def test_forgot_password(deployment):
    d = deployment
    await d.connectors.add("Email")
    await d.wait_for_connectors(1)
    nina = d.identity.add_user(username="nina", primary_email="nina@example.com", password=PASSWORD)
    d.use_interaction()
    assert (await put(d, {"event": "ForgotPassword"})).status_code == 204
    await d.client.post("/api/interaction/verification/verification-code", json={"email": "nina@example.com"})
    assert d.connectors.sent[-1].template == "ForgotPassword"
    assert (await d.client.patch("/api/interaction/identifiers", json={
        "email": "nina@example.com", "verificationCode": d.connectors.last_code()})).status_code == 204
    error(await submit(d), 422, "user.new_password_required_in_profile")
    await d.client.put("/api/interaction/profile", json={"password": PASSWORD})
    error(await submit(d), 422, "user.same_password")
    assert await submitted_events(d) == []
    await d.client.put("/api/interaction/profile", json={"password": OTHER_PASSWORD})
    response = await submit(d)
    assert response.status_code == 204 and response.content == b""
    assert nina.password == OTHER_PASSWORD
    assert await submitted_events(d) == ["experience.interaction.password_reset"]
    assert await d.ctx.pool.fetchval("SELECT count(*) FROM interactions") == 0
    error(await submit(d), 404, "session.verification_session_not_found")
    assert await submitted_events(d) == ["experience.interaction.password_reset"]


# ------------------------------------------------------------------ social


async def social_connector(d, **kwargs):
    connector = await d.connectors.add("Social", target="mock-social", **kwargs)
    await d.wait_for_connectors(len(d.connectors.instances))
    return connector


async def test_social_authorization_uri(deployment):
    d = deployment
    email = await d.connectors.add("Email")
    social = await social_connector(d)
    d.use_interaction()
    await put(d, {"event": "SignIn"})
    uri = "/api/interaction/verification/social-authorization-uri"
    base = {"connectorId": social.id, "state": "st", "redirectUri": "https://app.test/callback"}
    error(await d.client.post(uri, json={**base, "state": ""}), 400, "session.insufficient_info")
    error(await d.client.post(uri, json={**base, "redirectUri": ""}), 400, "session.insufficient_info")
    error(await d.client.post(uri, json={**base, "redirectUri": "ftp://x"}), 400, "guard.invalid_input")
    error(await d.client.post(uri, json={**base, "connectorId": "nope"}), 404, "entity.not_found")
    error(await d.client.post(uri, json={**base, "connectorId": email.id}), 400, "connector.unexpected_type")
    response = await d.client.post(uri, json=base)
    assert response.status_code == 200
    assert response.json() == {"redirectTo": "https://social.test/authorize?state=st"}
    session = await d.ctx.pool.fetchval("SELECT connector_session FROM interactions")
    assert session["state"] == "st"


async def test_a_social_connector_just_created_is_usable_before_its_event_arrives(deployment):
    d = deployment
    social = await d.connectors.add("Social", target="mock-social", announce=False)
    d.use_interaction()
    await put(d, {"event": "SignIn"})
    response = await d.client.post("/api/interaction/verification/social-authorization-uri",
                                   json={"connectorId": social.id, "state": "s", "redirectUri": "https://app.test/cb"})
    assert response.status_code == 200, response.text
    identifier = {"connectorId": social.id, "connectorData": {"code": "c", "userId": "s-1"}}
    assert (await d.client.patch("/api/interaction/identifiers", json=identifier)).status_code == 204
    assert await d.ctx.pool.fetchval("SELECT count(*) FROM connectors") == 0  # the model had not heard


async def test_social_sign_in_and_register(deployment):
    d = deployment
    social = await social_connector(d)
    await set_sie(d, {"signUp": {"identifiers": [], "password": False, "verify": False}})
    d.use_interaction()
    await put(d, {"event": "SignIn"})
    identifier = {"connectorId": social.id, "connectorData": {"code": "c", "userId": "s-1", "name": "Olga"}}
    error(await d.client.patch("/api/interaction/identifiers", json=identifier), 400,
          "session.connector_validation_session_not_found")
    error(await d.client.patch("/api/interaction/identifiers", json={**identifier, "connectorId": "x"}), 422,
          "session.invalid_connector_id")
    await d.client.post("/api/interaction/verification/social-authorization-uri",
                        json={"connectorId": social.id, "state": "s", "redirectUri": "https://app.test/cb"})
    assert (await d.client.patch("/api/interaction/identifiers", json=identifier)).status_code == 204
    assert ("Interaction.SignIn.Identifier.Social.Submit", "Success") in await d.steps()
    error(await submit(d), 422, "user.identity_not_exist")
    # Not known yet: register it, the social identity becomes the profile.
    await d.client.put("/api/interaction/event", json={"event": "Register"})
    await d.client.put("/api/interaction/profile", json={"connectorId": social.id})
    assert (await submit(d)).status_code == 200
    (olga,) = d.identity.users.values()
    assert olga.identities == {"mock-social": {"user_id": "s-1", "details": {"name": "Olga"}}}
    assert olga.name == "Olga"
    (_, event), = await d.events("experience.interaction.registered")
    assert event["methods"] == ["social"]
    # A second interaction signs in with it.
    d.use_interaction()
    await put(d, {"event": "SignIn"})
    await d.client.post("/api/interaction/verification/social-authorization-uri",
                        json={"connectorId": social.id, "state": "s", "redirectUri": "https://app.test/cb"})
    await d.client.patch("/api/interaction/identifiers", json=identifier)
    assert (await submit(d)).status_code == 200
    (_, signed_in), = await d.events("experience.interaction.signed_in")
    assert signed_in["user_id"] == olga.id and signed_in["methods"] == ["social"]


async def test_social_identity_not_registered_points_at_a_related_user(deployment):
    d = deployment
    social = await social_connector(d)
    d.identity.add_user(username="pat", primary_email="pat@example.com")
    d.use_interaction()
    await put(d, {"event": "SignIn"})
    await d.client.post("/api/interaction/verification/social-authorization-uri",
                        json={"connectorId": social.id, "state": "s", "redirectUri": "https://app.test/cb"})
    await d.client.patch("/api/interaction/identifiers", json={
        "connectorId": social.id, "connectorData": {"userId": "s-2", "email": "pat@example.com"}})
    body = error(await submit(d), 422, "user.identity_not_exist")
    assert body["data"] == {"relatedUser": {"type": "email", "value": "pat@example.com"}}
    error(await d.client.patch("/api/interaction/identifiers", json={
        "connectorId": social.id, "email": "other@example.com"}), 400, "session.connector_session_not_found")
    # Bind: the social account's email proves the existing account.
    assert (await d.client.patch("/api/interaction/identifiers", json={
        "connectorId": social.id, "email": "pat@example.com"})).status_code == 204
    await d.client.put("/api/interaction/profile", json={"connectorId": social.id})
    assert (await submit(d)).status_code == 200
    (pat,) = [u for u in d.identity.users.values() if u.username == "pat"]
    assert pat.identities["mock-social"]["user_id"] == "s-2"


async def test_register_with_a_taken_social_identity(deployment):
    d = deployment
    social = await social_connector(d)
    await set_sie(d, {"signUp": {"identifiers": [], "password": False, "verify": False}})
    d.identity.add_user(username="quinn", identities={"mock-social": {"user_id": "s-3"}})
    d.use_interaction()
    await put(d, {"event": "Register", "profile": {"connectorId": social.id}})
    error(await submit(d), 404, "session.connector_session_not_found")
    await d.client.post("/api/interaction/verification/social-authorization-uri",
                        json={"connectorId": social.id, "state": "s", "redirectUri": "https://app.test/cb"})
    await d.client.patch("/api/interaction/identifiers", json={"connectorId": social.id,
                                                               "connectorData": {"userId": "s-3"}})
    error(await submit(d), 422, "user.identity_already_in_use")


# ------------------------------------------------------------------ consent and abort


async def test_consent(deployment):
    d = deployment
    rose = d.identity.add_user(username="rose")
    cookie = d.use_interaction(prompt="consent", session_account_id=rose.id)
    response = await d.client.post("/api/interaction/consent")
    assert response.status_code == 200
    uid = cookie.split(".")[0]
    assert response.json() == {"redirectTo": f"http://tessera.test/oidc/auth/{uid}"}
    assert d.identity.interactions[uid].consent and rose.application_id == "app1"
    # One call: identity checks the cookie and the session, and says whose consent it was.
    d.use_interaction(prompt="consent", session_account_id=rose.id)
    d.identity.calls.clear()
    assert (await d.client.post("/api/interaction/consent")).status_code == 200
    assert d.identity.calls == ["grant_consent"]  # the first application is remembered already
    d.use_interaction(prompt="consent")
    error(await d.client.post("/api/interaction/consent"), 400, "session.not_found")


async def test_abort(deployment):
    d = deployment
    cookie = d.use_interaction()
    await put(d, {"event": "SignIn"})
    response = await d.client.delete("/api/interaction")
    assert response.status_code == 200
    uid = cookie.split(".")[0]
    assert response.json() == {"redirectTo": f"http://tessera.test/oidc/auth/{uid}"}
    assert d.identity.interactions[uid].aborted
    assert await d.ctx.pool.fetchval("SELECT count(*) FROM interactions") == 0


def test_default_sie_is_username_and_password():
    assert default_sign_in_experience("default")["signUp"]["identifiers"] == ["username"]


async def test_phone_code_mismatch(deployment):
    d = deployment
    await d.connectors.add("Sms")
    await d.wait_for_connectors(1)
    d.use_interaction()
    await put(d, {"event": "ForgotPassword"})
    assert (await d.client.post("/api/interaction/verification/verification-code",
                                json={"phone": "5550001"})).status_code == 204
    assert d.connectors.sent[-1].type == "Sms" and d.connectors.sent[-1].to == "5550001"
    error(await d.client.patch("/api/interaction/identifiers", json={
        "phone": "5550002", "verificationCode": d.connectors.last_code()}), 400, "verification_code.phone_mismatch")


async def email_profile_setup(d):
    await d.connectors.add("Email")
    await d.wait_for_connectors(1)
    await set_sie(d, {"signUp": {"identifiers": ["username", "email"], "password": True, "verify": True},
                      "signIn": {"methods": [method("username"), method("email", password=True, code=True)]}})


async def verified_email(d, email):
    await d.client.post("/api/interaction/verification/verification-code", json={"email": email})
    response = await d.client.patch("/api/interaction/identifiers", json={
        "email": email, "verificationCode": d.connectors.last_code()})
    assert response.status_code == 204, response.text


async def test_register_with_an_email_of_another_user(deployment):
    d = deployment
    await email_profile_setup(d)
    d.identity.add_user(username="owner", primary_email="taken@example.com")
    d.use_interaction()
    await put(d, {"event": "Register", "profile": {"username": "newcomer", "password": PASSWORD,
                                                   "email": "taken@example.com"}})
    await verified_email(d, "taken@example.com")
    error(await submit(d), 422, "user.email_already_in_use")
    assert await submitted_events(d) == []


async def test_sign_in_cannot_replace_an_email(deployment):
    d = deployment
    await email_profile_setup(d)
    d.identity.add_user(username="sam", primary_email="sam@example.com", password=PASSWORD)
    d.use_interaction()
    await put(d, {"event": "SignIn", "identifier": {"username": "sam", "password": PASSWORD},
                  "profile": {"email": "sam2@example.com"}})
    error(await submit(d), 404, "session.verification_session_not_found")  # not verified yet
    await verified_email(d, "sam2@example.com")
    error(await submit(d), 400, "user.email_exists_in_profile")


async def test_sign_in_adds_a_verified_email(deployment):
    d = deployment
    await email_profile_setup(d)
    tom = d.identity.add_user(username="tom", password=PASSWORD)
    d.use_interaction()
    await put(d, {"event": "SignIn", "identifier": {"username": "tom", "password": PASSWORD}})
    body = error(await submit(d), 422, "user.missing_profile")
    assert body["data"] == {"missingProfile": ["email"]}
    await d.client.patch("/api/interaction/profile", json={"email": "tom@example.com"})
    await verified_email(d, "tom@example.com")
    assert (await submit(d)).status_code == 200
    assert tom.primary_email == "tom@example.com"


async def test_two_submits_racing_to_finish_a_registration_announce_it_once(deployment):
    import asyncio

    d = deployment
    await register_until_the_login_fails(d, "ned")
    first, second = await asyncio.gather(submit(d), submit(d))
    # The later one either joins the unfinished registration or, when it reads the finished
    # state, is a new registration of a taken username.
    assert sorted([first.status_code, second.status_code]) in ([200, 200], [200, 422])
    assert [u.username for u in d.identity.users.values()] == ["ned"]
    assert await submitted_events(d) == ["experience.interaction.registered"]
