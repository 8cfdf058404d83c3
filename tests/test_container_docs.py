"""docs/compose.yaml and docs/kubernetes.yaml against the config keys and the Dockerfile.

Each manifest is read as its tool would read it, and the config Keystile
would get from it (the image's ENV, the manifest's environment, the TOML it
mounts) is parsed by ``sidecar.config``: a misspelt variable, a port that is
not the listener's, or a probe on the wrong path fails here.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from sidecar import config

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def image_env() -> dict[str, str]:
    """The ENV of the Dockerfile's final stage."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    final = text.rpartition("\nFROM ")[2]
    pairs = [m for line in re.findall(r"^ENV (.+)$", final, re.MULTILINE) for m in line.split()]
    return dict(pair.split("=", 1) for pair in pairs)


def image_config_path() -> str:
    """The config file the image's CMD serves with."""
    cmd = re.search(r"^CMD (\[.*\])$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert cmd is not None
    argv: list[str] = yaml.safe_load(cmd.group(1))
    return argv[argv.index("--config") + 1]


def is_config_key(name: str, value: str) -> bool:
    """Whether Keystile reads the variable ``name``: setting it changes the config."""
    return config.parse({}, {name: value}) != config.parse({}, {})


def effective(raw: dict[str, Any], env: dict[str, str]) -> config.Config:
    """What Keystile runs with in the container: the image's ENV, then the manifest's."""
    return config.parse(raw, {**image_env(), **env})


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DOCS / "compose.yaml").read_text())
    return loaded


def kubernetes() -> dict[str, dict[str, Any]]:
    """The manifest's objects by kind."""
    return {doc["kind"]: doc for doc in yaml.safe_load_all((DOCS / "kubernetes.yaml").read_text())}


def pod_containers() -> dict[str, dict[str, Any]]:
    spec = kubernetes()["Deployment"]["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec["containers"]}


def sample(env: dict[str, Any]) -> dict[str, str]:
    """Literal values, and a sample URL for one taken from a Secret."""
    return {k: v if isinstance(v, str) else "redis://redis:6379/0" for k, v in env.items()}


def test_the_image_env_sets_config_keys():
    """Every KEYSTILE_* variable of the Dockerfile is a config key Keystile reads."""
    env = image_env()
    assert {"KEYSTILE_PROXY_LISTEN", "KEYSTILE_REDIS_DATA_DIR"} <= set(env)
    assert [name for name, value in env.items() if name.startswith("KEYSTILE_")] == [
        name for name, value in env.items() if is_config_key(name, value)
    ]


def test_compose_sets_only_config_keys_and_a_reachable_redis():
    """Each variable of the Compose file's keystile service is a config key; Redis is a service."""
    services = compose()["services"]
    env = services["keystile"]["environment"]
    assert [n for n in env if not is_config_key(n, env[n])] == []
    assert urlsplit(env["KEYSTILE_REDIS_URL"]).hostname in services


def test_compose_publishes_the_listeners_and_serves_its_upstream():
    """Compose publishes proxy and loopback-only admin ports; upstream is the example app."""
    spec = compose()
    keystile = spec["services"]["keystile"]
    mounted = keystile["configs"][0]
    raw = tomllib.loads(spec["configs"][mounted["source"]]["content"])
    running = effective(raw, keystile["environment"])
    published = {p.rpartition(":")[2]: p for p in keystile["ports"]}
    upstream = urlsplit(running.apis[0].upstream)
    orders = spec["services"][upstream.hostname]
    assert mounted["target"] == image_config_path()
    assert published[str(running.proxy.listen.port)] == "8080:8080"
    assert published[str(running.admin.listen.port)].startswith("127.0.0.1:")
    assert running.admin.listen.host == "0.0.0.0"
    assert orders["command"] == ["--port", str(upstream.port)]


def test_kubernetes_takes_the_redis_url_from_a_secret():
    """The sidecar's variables are config keys, and KEYSTILE_REDIS_URL comes from a Secret."""
    env = {
        e["name"]: e.get("value", e.get("valueFrom")) for e in pod_containers()["keystile"]["env"]
    }
    assert [n for n, v in sample(env).items() if not is_config_key(n, v)] == []
    assert set(env["KEYSTILE_REDIS_URL"]["secretKeyRef"]) == {"name", "key"}


def test_kubernetes_probes_and_service_reach_the_proxy_listener():
    """Probes and the Service reach the proxy's port, which forwards to the app on pod loopback."""
    objects, containers = kubernetes(), pod_containers()
    sidecar = containers["keystile"]
    env = sample({e["name"]: e.get("value", e.get("valueFrom")) for e in sidecar["env"]})
    mount = sidecar["volumeMounts"][0]["mountPath"]
    toml = objects["ConfigMap"]["data"][Path(image_config_path()).name]
    running = effective(tomllib.loads(toml), env)
    port = running.proxy.listen.port
    named = {p["name"]: p["containerPort"] for p in sidecar["ports"]}
    target = objects["Service"]["spec"]["ports"][0]["targetPort"]
    upstream = urlsplit(running.apis[0].upstream)
    assert str(Path(mount) / "config.toml") == image_config_path()
    assert sidecar["readinessProbe"]["httpGet"] == {"path": "/_keystile/readyz", "port": port}
    assert sidecar["livenessProbe"]["httpGet"] == {"path": "/_keystile/healthz", "port": port}
    assert named.get(target, target) == port
    assert (upstream.hostname, upstream.port) == ("127.0.0.1", 9000)
    assert containers["app"]["args"] == ["--port", str(upstream.port)]


def test_kubernetes_runs_keystile_as_the_image_user():
    """The pod's security context names the uid the Dockerfile's USER runs as."""
    user = re.search(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    context = pod_containers()["keystile"]["securityContext"]
    assert user is not None
    assert (context["runAsUser"], context["runAsGroup"]) == (int(user[1]), int(user[2]))
