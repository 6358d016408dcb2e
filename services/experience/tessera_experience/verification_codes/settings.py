"""Limits on verification codes, from the environment (names as in `tessera_kit.config`),
each `"<count>/<period>"` (`1/60s`, `10/1h`) or `off`:

- `TESSERA_VERIFICATION_CODE_RESEND_COOLDOWN` (default `1/60s`): one code per recipient
  (email address or phone number) per minute.
- `TESSERA_VERIFICATION_CODE_SEND_QUOTA` (default `10/1h`): codes per recipient.
- `TESSERA_VERIFICATION_CODE_SEND_PER_IP` (default `30/1h`): codes requested per client
  address (SMS pumping).
- `TESSERA_VERIFICATION_CODE_VERIFY_PER_IP` (default `60/10m`): code checks per client address.
- `TESSERA_VERIFICATION_CODE_VERIFY_PER_RECIPIENT` (default `20/1h`): code checks per
  recipient, whatever the code (beyond Logto's 10 tries per code: requesting new codes gives
  no new guesses).

A refusal is 429 `request.too_many_requests` with `Retry-After`. A message the connector
failed to send does not count against the sending limits. The dev and test stack
(libs/devstack) switch the cooldown off: Logto's suite sends codes to one address in quick
succession.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from tessera_kit.config import env_name, load_settings
from tessera_kit.ratelimit import Limit


class CodeSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_name):
    verification_code_resend_cooldown: str = "1/60s"
    verification_code_send_quota: str = "10/1h"
    verification_code_send_per_ip: str = "30/1h"
    verification_code_verify_per_ip: str = "60/10m"
    verification_code_verify_per_recipient: str = "20/1h"


@dataclass(frozen=True)
class CodeLimits:
    resend_cooldown: Limit
    send_quota: Limit
    send_per_ip: Limit
    verify_per_ip: Limit
    verify_per_recipient: Limit

    @classmethod
    def of(cls, settings: CodeSettings) -> "CodeLimits":
        return cls(
            resend_cooldown=Limit.parse("code_resend", settings.verification_code_resend_cooldown),
            send_quota=Limit.parse("code_send_recipient", settings.verification_code_send_quota),
            send_per_ip=Limit.parse("code_send_ip", settings.verification_code_send_per_ip),
            verify_per_ip=Limit.parse("code_verify_ip", settings.verification_code_verify_per_ip),
            verify_per_recipient=Limit.parse("code_verify_recipient",
                                             settings.verification_code_verify_per_recipient),
        )


def load() -> CodeSettings:
    return load_settings(CodeSettings)
