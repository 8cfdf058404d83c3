"""Building the container image with buildah and running it, for tests/test_image.py.

No container registry is needed: the base image is assembled from Debian's
packages with debootstrap (the machine's own release and mirror) and kept,
with buildah's storage, in ``CACHE`` outside the repository, so only the first
run pays for it. buildah builds daemonless (vfs storage, chroot isolation) and
``buildah run`` runs the image's processes on the host network, so the tests
reach its listeners on loopback.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Kept across runs and reboots on purpose (that is what /var/tmp is for); only root writes it.
CACHE = Path(os.environ.get("KEYSTILE_IMAGE_CACHE", "/var/tmp/keystile-image"))  # noqa: S108
STORAGE = [
    "--root", str(CACHE / "storage"), "--runroot", str(CACHE / "run"), "--storage-driver", "vfs",
]  # fmt: skip
IMAGE = "localhost/keystile:test"
#: Where the machine's CA bundle is mounted for pip during the build.
BUILD_CA = "/run/keystile-build/ca.crt"
#: Left out of the base: documentation and package caches nobody runs.
TRIM = ["var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"]


def buildah(*args: str, timeout: float = 120) -> str:
    """Run ``buildah ARGS`` on the cached storage; its stdout, or a failure saying why."""
    done = subprocess.run(
        ["buildah", *STORAGE, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"buildah {args[0]} failed: {done.stderr[-3000:]}"
    return done.stdout


def debian_release() -> str:
    """This machine's Debian release: the base gets the same Python the machine has."""
    text = Path("/etc/os-release").read_text()
    found = re.search(r"^VERSION_CODENAME=(\w+)", text, re.MULTILINE)
    return found.group(1) if found else "bookworm"


def debian_mirror() -> str:
    """The Debian mirror apt uses here (the only package source reachable)."""
    for source in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
        text = source.read_text() if source.is_file() else ""
        for url in re.findall(r"(https?://\S+/debian)/?(?:\s|$)", text):
            return str(url)
    return "http://deb.debian.org/debian"


@contextmanager
def cache_lock() -> Iterator[None]:
    """One builder of the cache at a time, across processes."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def base_image() -> str:
    """A local image with python3, pip and venv, made by debootstrap on first use."""
    name = f"localhost/keystile-base:{debian_release()}"
    if not buildah("images", "--quiet", "--filter", f"reference={name}").strip():
        _make_base(name)
    return name


def _make_base(name: str) -> None:
    with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
        rootfs = Path(scratch) / "rootfs"
        debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"  # root's PATH only
        subprocess.run(
            [debootstrap, "--variant=minbase", "--include=python3,python3-pip,python3-venv",
             debian_release(), str(rootfs), debian_mirror()],
            check=True, capture_output=True, timeout=420,
        )  # fmt: skip
        for part in TRIM:
            shutil.rmtree(rootfs / part, ignore_errors=True)
        archive = Path(scratch) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(archive), "."], check=True)
        container = buildah("from", "scratch").strip()
        buildah("add", container, str(archive), "/")
        buildah("commit", "--rm", container, name)


def pip_settings() -> tuple[str | None, str | None]:
    """The CA bundle and index URL this machine's pip uses (environment, then pip config)."""
    listed = subprocess.run(
        ["python3", "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    ).stdout
    config = dict(re.findall(r"^[\w:]+\.([\w-]+)='(.*)'$", listed, re.MULTILINE))
    cert = os.environ.get("PIP_CERT") or config.get("cert")
    index = os.environ.get("PIP_INDEX_URL") or config.get("index-url")
    return cert, index


def build() -> str:
    """Build the repository's Dockerfile on the local base; the image's name."""
    with cache_lock():
        args = ["--build-arg", f"BASE={base_image()}"]
        cert, index = pip_settings()
        if cert:
            args += ["--volume", f"{cert}:{BUILD_CA}:ro", "--build-arg", f"PIP_CERT={BUILD_CA}"]
        if index:
            args += ["--build-arg", f"PIP_INDEX_URL={index}"]
        buildah(
            "bud", "--isolation", "chroot", "--format", "docker", "--layers=false",
            *args, "--tag", IMAGE, str(ROOT), timeout=420,
        )  # fmt: skip
        # The image this one replaced; best effort: one a leftover container still
        # uses stays until the next run, which is no reason to fail this one.
        subprocess.run(["buildah", *STORAGE, "rmi", "--prune"], capture_output=True, check=False)
    return IMAGE


def image_config(image: str) -> dict[str, object]:
    """The image's Docker config: User, Entrypoint, Cmd, Env, Healthcheck..."""
    config: dict[str, object] = json.loads(buildah("inspect", "--type", "image", image))["Docker"][
        "config"
    ]
    return config


class Container:
    """A working container of the image whose processes run on the host network."""

    def __init__(self, image: str, volume: Path, env: dict[str, str]) -> None:
        self.name = buildah("from", image).strip()
        self.volume = volume
        self.env = env

    def start(self, *argv: str) -> subprocess.Popen[str]:
        """``argv`` in the container, with the data volume and environment."""
        return subprocess.Popen(
            ["buildah", *STORAGE, "run", "--isolation", "chroot", "--network", "host",
             "--volume", f"{self.volume}:/var/lib/keystile/data",
             *(f"--env={key}={value}" for key, value in self.env.items()),
             self.name, "--", *argv],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``argv`` in the container to completion."""
        process = self.start(*argv)
        out, err = process.communicate(timeout=timeout)
        return subprocess.CompletedProcess(argv, process.returncode, out, err)

    def remove(self) -> None:
        buildah("rm", self.name)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``: with chroot isolation they share the host's pid space."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # the process ended while we looked
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def uid_of(pid: int) -> int:
    """The real uid of process ``pid``."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^Uid:\s+(\d+)", status, re.MULTILINE).group(1))  # type: ignore[union-attr]


def serving_processes(launcher: subprocess.Popen[str]) -> list[int]:
    """The image's own processes under ``buildah run``: keystile, its workers, redis-server."""
    below = descendants(launcher.pid)
    execs = [pid for pid in below if _argv(pid)[:1] == ["buildah-chroot-exec"]]
    return [pid for pid in below if any(pid in descendants(e) for e in execs)]


def stop(launcher: subprocess.Popen[str]) -> None:
    """SIGTERM to the image's entrypoint, as a container runtime sends it (buildah run does not)."""
    for pid in serving_processes(launcher):
        argv = _argv(pid)
        if len(argv) > 1 and argv[1].endswith("/keystile"):
            os.kill(pid, signal.SIGTERM)
            break
    launcher.communicate(timeout=60)


def _argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().split("\0")[:-1]
    except OSError:
        return []
