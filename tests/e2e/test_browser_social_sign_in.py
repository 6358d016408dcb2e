"""Social sign-in in a real browser (headless Chromium, Playwright) with the generic OIDC
connector, against a real OpenID Provider: a second Tessera, whose `/oidc` is the upstream
IdP and whose application is the connector's client.

The second Tessera answers on `127.0.0.1` and the first on `localhost`, so the browser keeps
their cookies apart (cookies ignore ports). On the first Tessera's sign-in page the user
clicks "Continue with Upstream", signs in upstream, and comes back through the callback page:
the first time a new account is registered from the upstream account, the next time the same
account signs in, and an upstream account whose email belongs to an existing account is linked
to it on request.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tessera_devstack.polling import until

pytestmark = pytest.mark.e2e

ADMIN = {"development-user-id": "e2e-admin"}
PASSWORD = "Upstr3am-Pass"
TARGET = "tessera-upstream"

@pytest.fixture(scope="module")
def upstream(postgres_dsn, nats_url, run_id, tmp_path_factory):
    """A second Tessera (own database, namespace and ports) on 127.0.0.1: the upstream IdP."""
    from tessera_devstack.admin_client import AdminClient
    from tessera_devstack.ports import free_ports
    from tessera_devstack.postgres import create_database, drop_database
    from tessera_devstack.services import ServiceStack, available_services
    from tessera_devstack.supervisor import Supervisor

    services = available_services()
    name = f"up_{run_id}"
    database = create_database(postgres_dsn, name)
    supervisor = Supervisor(log_dir=tmp_path_factory.mktemp("upstream-logs"), echo=False)
    ports = dict(zip([s.name for s in services], free_ports(len(services)), strict=True))
    the_stack = ServiceStack(
        supervisor=supervisor, services=services, ports=ports, database_url=database, nats_url=nats_url,
        namespace=f"up{run_id}", endpoint=f"http://127.0.0.1:{ports['gateway']}",
        admin_client=AdminClient.generate(), extra_env={"TESSERA_DEV_AUTH": "true"},
    )
    try:
        the_stack.start_all()
        yield the_stack
    finally:
        the_stack.stop_all()
        supervisor.close()
        try:
            drop_database(postgres_dsn, name)
        except Exception:  # a leftover test database is not worth failing the run
            pass


class App:
    """The downstream application: a client id, PKCE, and a redirect URI served on loopback."""

    def __init__(self, stack_url: str, client_id: str, origin: str):
        self.stack_url, self.client_id, self.origin = stack_url, client_id, origin
        self.verifier = secrets.token_urlsafe(48)
        self.callbacks: list[str] = []

    @property
    def redirect_uri(self) -> str:
        return f"{self.origin}/callback"

    def authorization_url(self) -> str:
        challenge = base64.urlsafe_b64encode(hashlib.sha256(self.verifier.encode()).digest()).rstrip(b"=").decode()
        return f"{self.stack_url}/oidc/auth?" + urlencode({
            "client_id": self.client_id, "redirect_uri": self.redirect_uri, "response_type": "code",
            "scope": "openid profile", "state": "st", "code_challenge": challenge, "code_challenge_method": "S256",
            "prompt": "login"})

    async def subject(self) -> str:
        code = parse_qs(urlsplit(self.callbacks[-1]).query)["code"][0]
        async with httpx.AsyncClient(base_url=self.stack_url, timeout=30) as client:
            response = await client.post("/oidc/token", data={
                "grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri,
                "client_id": self.client_id, "code_verifier": self.verifier})
        assert response.status_code == 200, response.text
        payload = response.json()["id_token"].split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]


async def ok(response: httpx.Response) -> dict:
    assert response.status_code in (200, 201), response.text
    return response.json()


@pytest.fixture
async def federation(stack, upstream, app_server):
    """The upstream application, the OIDC connector that uses it, the downstream app and
    sign-in experience; put back afterwards."""
    holder, origin = app_server
    async with httpx.AsyncClient(base_url=stack.url, headers=ADMIN, timeout=30) as down, \
            httpx.AsyncClient(base_url=upstream.url, headers=ADMIN, timeout=30) as up:
        client = await ok(await up.post("/api/applications", json={
            "name": "Downstream Tessera", "type": "Traditional",
            "oidcClientMetadata": {"redirectUris": [f"{stack.url}/placeholder"], "postLogoutRedirectUris": []}}))
        connector = await ok(await down.post("/api/connectors", json={
            "connectorId": "oidc", "metadata": {"target": TARGET, "name": {"en": "Upstream"}},
            "config": {"clientId": client["id"], "clientSecret": client["secret"], "scope": "openid profile email",
                       "issuer": f"{upstream.url}/oidc"}}))
        await ok(await up.patch(f"/api/applications/{client['id']}", json={"oidcClientMetadata": {
            "redirectUris": [f"{stack.url}/sign-in/social/{connector['id']}/callback"], "postLogoutRedirectUris": []}}))
        app = await ok(await down.post("/api/applications", json={
            "name": "Social browser test app", "type": "SPA",
            "oidcClientMetadata": {"redirectUris": [f"{origin}/callback"], "postLogoutRedirectUris": []}}))
        holder.append(App(stack.url, app["id"], origin))
        before = (await down.get("/api/sign-in-exp")).json()
        try:
            async def connector_taken() -> bool:  # once experience's read model knows it
                sie = await ok(await down.patch("/api/sign-in-exp", json={
                    "signUp": {"identifiers": [], "password": False, "verify": False},
                    "socialSignInConnectorTargets": [TARGET]}))
                return sie["socialSignInConnectorTargets"] == [TARGET]

            await until(connector_taken, "experience learnt of the OIDC connector", tries=200, interval=0.05)
            yield holder[0], down, up
        finally:
            await down.patch("/api/sign-in-exp", json={
                "signUp": before["signUp"], "socialSignInConnectorTargets": before["socialSignInConnectorTargets"]})
            await down.delete(f"/api/connectors/{connector['id']}")


async def sign_in_upstream(page, stack, upstream, app: App, username: str) -> None:
    await page.goto(f"{app.origin}/login")
    await page.wait_for_url(f"{stack.url}/sign-in")
    await page.get_by_role("button", name="Continue with Upstream").click()
    await page.wait_for_url(f"{upstream.url}/sign-in")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()


async def test_register_then_sign_in_then_link_through_the_upstream_tessera(browser_page, stack, upstream, federation):
    app, down, up = federation
    context, page = browser_page
    # First time: a new account from the upstream account.
    ada = await ok(await up.post("/api/users", json={"username": f"ada_{secrets.token_hex(3)}", "password": PASSWORD}))
    await sign_in_upstream(page, stack, upstream, app, ada["username"])
    await page.wait_for_url(f"{app.redirect_uri}?**")
    registered = await app.subject()
    user = await ok(await down.get(f"/api/users/{registered}"))
    assert user["identities"][TARGET]["userId"] == ada["id"]

    # Next time (prompt=login downstream; upstream remembers the browser): the same account.
    await page.goto(f"{app.origin}/login")
    await page.wait_for_url(f"{stack.url}/sign-in")
    await page.get_by_role("button", name="Continue with Upstream").click()
    await page.wait_for_url(f"{app.redirect_uri}?**")
    assert await app.subject() == registered

    # An upstream account whose email belongs to an existing account: linked on request.
    email = f"bo_{secrets.token_hex(3)}@example.com"
    existing = await ok(await down.post("/api/users", json={"primaryEmail": email, "password": PASSWORD}))
    bo = await ok(await up.post("/api/users", json={"username": f"bo_{secrets.token_hex(3)}", "password": PASSWORD,
                                                    "primaryEmail": email}))
    await context.clear_cookies()
    await sign_in_upstream(page, stack, upstream, app, bo["username"])
    await page.wait_for_url(f"{stack.url}/sign-in/social/**")
    assert f"An account with email {email} already exists" in await page.content()
    await page.get_by_role("button", name=f"Link with {email}").click()
    await page.wait_for_url(f"{app.redirect_uri}?**")
    assert await app.subject() == existing["id"]
    linked = await ok(await down.get(f"/api/users/{existing['id']}"))
    assert linked["identities"][TARGET]["userId"] == bo["id"]
