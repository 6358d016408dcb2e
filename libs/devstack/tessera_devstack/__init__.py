"""Local PostgreSQL and NATS from PyPI packages, the process runner behind `make run`
(`python -m tessera_devstack.run`) and the pytest fixtures (`tessera_devstack.pytest_plugin`).

Kept import-free on purpose: the pytest plugin loads this package for every test run.
"""
