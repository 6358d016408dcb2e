"""Sign-in rate limits as experience sees them: identity counts each password check against
the client's address (the X-Forwarded-For hop the gateway appended, never one the client
wrote) and refuses with 429; the API and the pages pass the 429 on with its Retry-After."""

from __future__ import annotations

import re

PASSWORD = "s3cret-Pass"


def alert(html: str) -> str:
    """The page's error summary (a rate limit belongs to no single field)."""
    return re.search(r'<div class="alert" role="alert" id="form-errors">(.*?)</div>', html, re.S)[1]


async def test_password_checks_name_the_address_the_gateway_signed(deployment):
    d = deployment
    d.identity.add_user(username="amy", password=PASSWORD)
    d.use_interaction()
    # The gateway states (and signs) the client's address; a forwarded-for is not believed.
    spoofed = {"x-tessera-client-ip": "192.0.2.7", "x-forwarded-for": "203.0.113.66"}
    response = await d.client.put("/api/interaction", headers=spoofed,
                                  json={"event": "SignIn", "identifier": {"username": "amy", "password": PASSWORD}})
    assert response.status_code == 204, response.text
    response = await d.client.patch("/api/interaction/identifiers", headers=spoofed,
                                    json={"username": "amy", "password": "wrong-pass-1"})
    assert response.status_code == 422
    d.use_interaction()
    page = await d.client.post("/sign-in", data={"identifier": "amy", "password": PASSWORD},
                               headers={"x-tessera-client-ip": "192.0.2.8", "x-forwarded-for": "203.0.113.66"})
    assert page.status_code == 303, page.text
    assert [c.client_ip for c in d.identity.password_checks] == ["192.0.2.7", "192.0.2.7", "192.0.2.8"]
    # The step log keeps the same address.
    ips = {data["payload"]["ip"] for _, data in await d.events("experience.interaction.step")}
    assert ips >= {"192.0.2.7", "192.0.2.8"} and "203.0.113.66" not in ips


async def test_a_refused_check_is_429_with_retry_after_on_the_api_and_the_pages(deployment):
    d = deployment
    d.identity.add_user(username="ben", password=PASSWORD)
    d.identity.sign_in_retry_after = 41.2
    try:
        d.use_interaction()
        refused_put = await d.client.put("/api/interaction", json={
            "event": "SignIn", "identifier": {"username": "ben", "password": PASSWORD}})
        assert (await d.client.put("/api/interaction", json={"event": "SignIn"})).status_code == 204
        refused_patch = await d.client.patch("/api/interaction/identifiers",
                                             json={"username": "ben", "password": PASSWORD})
        for response in (refused_put, refused_patch):
            assert response.status_code == 429, response.text
            assert response.headers["retry-after"] == "42"
            assert response.json() == {"code": "request.too_many_requests", "data": {"retryAfter": 42},
                                       "message": "Too many requests. Please try again in 42 seconds."}
        page = await d.client.post("/sign-in", data={"identifier": "ben", "password": PASSWORD})
        assert page.status_code == 429 and page.headers["retry-after"] == "42"
        assert page.headers["content-type"].startswith("text/html")
        # the pages speak the sentence of the locale; the status and Retry-After say how long
        assert "<li>Too many attempts. Please wait a while and try again.</li>" in alert(page.text)
    finally:
        d.identity.sign_in_retry_after = None
    assert ("Interaction.SignIn.Identifier.Password.Submit", "Error") in await d.steps()
