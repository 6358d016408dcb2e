"""The admin client credentials `make run` hands to the services (and the e2e stack uses).

Logto-style ids: lowercase [0-9a-z], 21 characters for the id, 32 for the secret.
"""

from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

ID_VARIABLE = "TESSERA_ADMIN_CLIENT_ID"
SECRET_VARIABLE = "TESSERA_ADMIN_CLIENT_SECRET"
_ALPHABET = string.digits + string.ascii_lowercase


def random_id(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


@dataclass(frozen=True)
class AdminClient:
    id: str
    secret: str

    @classmethod
    def generate(cls) -> AdminClient:
        return cls(id=random_id(21), secret=random_id(32))

    def as_env(self) -> dict[str, str]:
        return {ID_VARIABLE: self.id, SECRET_VARIABLE: self.secret}


def load_or_create_admin_client(path: Path | str) -> AdminClient:
    """From the environment if both variables are set, else from `path`, else generated once
    and saved to `path` (readable by the owner only)."""
    from_env_id, from_env_secret = os.environ.get(ID_VARIABLE), os.environ.get(SECRET_VARIABLE)
    if from_env_id and from_env_secret:
        return AdminClient(from_env_id, from_env_secret)
    path = Path(path)
    if path.exists():
        saved = json.loads(path.read_text())
        return AdminClient(id=saved["id"], secret=saved["secret"])
    client = AdminClient.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"id": client.id, "secret": client.secret}, handle, indent=2)
        handle.write("\n")
    return client
