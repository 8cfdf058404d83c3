"""The container image, built from the Dockerfile with buildah and run as an operator would."""

from __future__ import annotations

import http.client
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from subprocess import Popen

import pytest

from tests.kits.image import Container, build, image_config, serving_processes, stop, uid_of
from tests.kits.redis import free_port

pytestmark = pytest.mark.slow

UID = 10001


@pytest.fixture(scope="module")
def image() -> str:
    """The image of this checkout, on a base from Debian's packages (cached between runs)."""
    return build()


@pytest.fixture
def ports() -> dict[str, int]:
    return {"proxy": free_port(), "admin": free_port()}


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    """A data directory on the host owned by the image's user, as docs/container.md says."""
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, UID, UID)
    return data


@pytest.fixture
def container(image: str, volume: Path, ports: dict[str, int]) -> Iterator[Container]:
    env = {
        "KEYSTILE_PROXY_LISTEN": f"127.0.0.1:{ports['proxy']}",
        "KEYSTILE_ADMIN_LISTEN": f"127.0.0.1:{ports['admin']}",
    }
    box = Container(image, volume, env)
    yield box
    box.remove()


def entrypoint(image: str) -> list[str]:
    """What a container runtime runs: the image's ENTRYPOINT followed by its CMD."""
    config = image_config(image)
    return [*config["Entrypoint"], *config["Cmd"]]  # type: ignore[misc]


def get(port: int, path: str, token: str | None = None) -> tuple[int, bytes]:
    """GET ``path`` from the listener on loopback ``port``: status and body."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def serve(box: Container, image: str, port: int) -> Popen[str]:
    """The image's entrypoint in ``box``, once its readyz answers 200."""
    launcher = box.start(*entrypoint(image))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if launcher.poll() is not None:
            raise AssertionError(f"the container exited: {launcher.communicate()[1]}")
        try:
            if get(port, "/_keystile/readyz")[0] == 200:
                return launcher
        except OSError:
            pass
        time.sleep(0.1)
    stop(launcher)
    raise AssertionError("the container did not become ready")


def test_the_image_runs_as_uid_10001_and_its_health_check_passes(container, image, ports, volume):
    """Every process of the image runs as uid 10001; healthz, readyz and the HEALTHCHECK pass."""
    launcher = serve(container, image, ports["proxy"])
    try:
        uids = {uid_of(pid) for pid in serving_processes(launcher)}
        healthz = get(ports["proxy"], "/_keystile/healthz")
        health_check = image_config(image)["Healthcheck"]["Test"]  # type: ignore[index]
        checked = container.run(*health_check[1:])
    finally:
        stop(launcher)
    assert uids == {UID}
    assert healthz[0] == 200
    assert health_check[0] == "CMD" and checked.returncode == 0, checked.stderr
    assert {path.stat().st_uid for path in volume.iterdir()} == {UID}
    assert launcher.returncode == 0


def test_bootstrap_inside_gives_an_admin_token_that_outlives_a_restart(container, image, ports):
    """`keystile bootstrap` in the container gives a token that works, also after a restart."""
    launcher = serve(container, image, ports["proxy"])
    try:
        booted = container.run("keystile", "bootstrap", "--config", "/etc/keystile/config.toml",
                               "--user", "root")  # fmt: skip
        token = booted.stdout.strip()
        before = get(ports["admin"], "/admin/v1/tokens", token)
    finally:
        stop(launcher)
    launcher = serve(container, image, ports["proxy"])
    try:
        after = get(ports["admin"], "/admin/v1/tokens", token)
    finally:
        stop(launcher)
    assert booted.returncode == 0, booted.stderr
    assert before[0] == 200, before
    assert after[0] == 200, after
    assert [t["user"] for t in json.loads(after[1])["items"]] == ["root"]


def test_a_volume_the_user_cannot_write_names_the_uid_to_chown_to(container, image, volume):
    """A data volume owned by root stops the start with one line naming it and `chown 10001`."""
    os.chown(volume, 0, 0)
    volume.chmod(0o755)
    done = container.run(*entrypoint(image))
    said = [line for line in done.stderr.splitlines() if line.startswith("keystile:")]
    assert done.returncode != 0
    assert len(said) == 1, done.stderr
    assert "/var/lib/keystile/data" in said[0]
    assert "chown -R 10001 " in said[0]
    assert "redis.log" not in said[0]
