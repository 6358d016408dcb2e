"""Rpc contracts, one module per serving service (`contracts/identity.py` holds what
identity answers). Callers import the operation and call it through `tessera_kit.rpc`."""
