"""gateway: wiring only. Served by `python -m tessera_kit.serve tessera_gateway.main:app`."""

from tessera_kit.logging import configure_logging
from tessera_gateway.gateway import Gateway
from tessera_gateway.settings import load

settings = load()
configure_logging("gateway", settings.log_level)
app = Gateway(settings)
