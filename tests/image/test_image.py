"""The container image (Containerfile at the repository root), built for real: opt-in with
``TICKMESH_IMAGE_TEST=1`` because it takes a minute or two (README.md, "Container image").

It builds with Debian's buildah, without a Docker daemon (``--isolation chroot``, the ``vfs``
storage driver, in ``TICKMESH_IMAGE_STORAGE``, default /var/tmp/tickmesh-image, kept between runs).
The bases are ``TICKMESH_BASE_IMAGE`` / ``TICKMESH_NODE_IMAGE`` when set, else the Containerfile's
defaults from Docker Hub when it answers, else local bases made once with mmdebstrap: Debian
bookworm with python3 (and one with this machine's Node.js for the dashboard stage), trusting
the CA bundle of this machine so that pip and npm get through its network. Then, inside the
image (``buildah run``): ``tickmesh settings``, and an edge connected to a real nats-server that
answers /healthz, /readyz and serves the dashboard built into the image; the image's own
HEALTHCHECK command passes against it and fails once it is gone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.natsserver import NatsServer
from tests.support.procs import free_port, wait_http
from tests.support.timing import t

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("TICKMESH_IMAGE_TEST") != "1",
        reason="slow: set TICKMESH_IMAGE_TEST=1 to build the container image",
    ),
    pytest.mark.timeout(3600),
]

ROOT = Path(__file__).resolve().parents[2]
VERSION = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
IMAGE = f"localhost/tickmesh:{VERSION}"
STORAGE = Path(os.environ.get("TICKMESH_IMAGE_STORAGE", "/var/tmp/tickmesh-image"))
LOCAL_PYTHON = "localhost/tickmesh-base/python:3.11-bookworm"
LOCAL_NODE = "localhost/tickmesh-base/node:20-bookworm"
BOOKWORM = [
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
]


def buildah(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [
        "buildah",
        "--root",
        str(STORAGE / "storage"),
        "--runroot",
        str(STORAGE / "run"),
        "--storage-driver",
        "vfs",
        *args,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=t(timeout))
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args[:2])} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def _has_image(name: str) -> bool:
    return buildah("inspect", "--type", "image", name, check=False).returncode == 0


def _local_base(name: str, tar: Path, include: list[str], hooks: list[str], env: dict[str, str], cmd: str) -> None:
    """A Debian bookworm rootfs from mmdebstrap with ``include``, committed as image ``name``."""
    subprocess.run(
        [
            "mmdebstrap",
            "--variant=minbase",
            "--quiet",
            f"--include={','.join(include)}",
            *[f"--customize-hook={h}" for h in hooks],
            "--customize-hook=upload /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt",
            '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*',
            "bookworm",
            str(tar),
            *BOOKWORM,
        ],
        check=True,
        capture_output=True,
        timeout=t(900),
    )
    ctr = buildah("from", "scratch").stdout.strip()
    try:
        buildah("add", ctr, str(tar), "/", timeout=300)
        buildah(
            "config",
            "--env",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            *[a for k, v in env.items() for a in ("--env", f"{k}={v}")],
            "--cmd",
            cmd,
            ctr,
        )
        buildah("commit", "--quiet", ctr, name, timeout=300)
    finally:
        buildah("rm", ctr, check=False)
        tar.unlink(missing_ok=True)


def bases() -> dict[str, str]:
    """Build arguments naming the two bases (see the module docstring for the order tried)."""
    if os.environ.get("TICKMESH_BASE_IMAGE"):
        return {
            "BASE_IMAGE": os.environ["TICKMESH_BASE_IMAGE"],
            **({"NODE_IMAGE": os.environ["TICKMESH_NODE_IMAGE"]} if os.environ.get("TICKMESH_NODE_IMAGE") else {}),
        }
    if (
        buildah("pull", "--quiet", "docker.io/library/python:3.11-slim-bookworm", timeout=90, check=False).returncode
        == 0
        and buildah("pull", "--quiet", "docker.io/library/node:20-bookworm-slim", timeout=90, check=False).returncode
        == 0
    ):
        return {}
    # Docker Hub is unreachable: local bases with what the official ones provide to this file.
    if not _has_image(LOCAL_PYTHON):
        _local_base(
            LOCAL_PYTHON,
            STORAGE / "python-base.tar",
            ["python3", "python3-venv", "ca-certificates", "passwd"],
            [],
            {"PIP_CERT": "/etc/ssl/certs/ca-certificates.crt"},
            "python3",
        )
    if not _has_image(LOCAL_NODE):
        node = shutil.which("node")
        assert node, "no Node.js on this machine to make the dashboard stage's base from"
        _local_base(
            LOCAL_NODE,
            STORAGE / "node-base.tar",
            ["ca-certificates"],
            [
                f"copy-in {node} /usr/bin",
                'mkdir -p "$1"/usr/lib/node_modules',
                "copy-in /usr/lib/node_modules/npm /usr/lib/node_modules",
                'ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$1"/usr/bin/npm',
            ],
            {"NODE_EXTRA_CA_CERTS": "/etc/ssl/certs/ca-certificates.crt"},
            "node",
        )
    return {"BASE_IMAGE": LOCAL_PYTHON, "NODE_IMAGE": LOCAL_NODE}


@pytest.fixture(scope="module")
def image() -> dict:
    """Build the image; its configuration (``buildah inspect``)."""
    STORAGE.mkdir(parents=True, exist_ok=True)
    args = bases()
    started = time.monotonic()
    result = buildah(
        "bud",
        "--isolation",
        "chroot",
        "--format",
        "docker",
        "--layers=false",
        "--quiet",
        *[a for k, v in args.items() for a in ("--build-arg", f"{k}={v}")],
        "--build-arg",
        f"VERSION={VERSION}",
        "-t",
        IMAGE,
        "-f",
        str(ROOT / "Containerfile"),
        str(ROOT),
        timeout=1800,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    print(f"\nimage {IMAGE} built in {time.monotonic() - started:.0f} s from {args or 'the default bases'}")
    return json.loads(buildah("inspect", "--type", "image", IMAGE).stdout)


@pytest.fixture
def container(image):
    ctr = buildah("from", "--quiet", "--pull-never", IMAGE).stdout.strip()
    yield ctr
    buildah("rm", ctr, check=False)


def run_in(ctr: str, *argv: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return buildah(
        "run",
        "--isolation",
        "chroot",
        *[a for k, v in (env or {}).items() for a in ("--env", f"{k}={v}")],
        ctr,
        "--",
        *argv,
        timeout=timeout,
        check=False,
    )


def test_the_image_is_labelled_non_root_and_runs_tickmesh(image, container):
    config = image["Docker"]["config"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.title"] == "tickmesh"
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["tickmesh"] and config["Cmd"] == ["edge"]
    assert config["Healthcheck"]["Test"][0] == "CMD"
    settings = run_in(container, "tickmesh", "settings")
    assert settings.returncode == 0, settings.stderr
    assert "EDGE_PORT" in settings.stdout and "VALUER_SHARDS" in settings.stdout
    who = run_in(container, "id", "-u")
    assert who.stdout.strip() == "10001"
    # No compilers or Node in the runtime, no local state or secrets from the build context.
    leftovers = run_in(
        container,
        "sh",
        "-c",
        "command -v gcc cc g++ node npm; ls -a /opt/tickmesh /tmp; "
        "find / -xdev -name jwt-secret -o -xdev -name '.tickmesh' 2>/dev/null",
    )
    assert not re.search(r"/(gcc|cc|g\+\+|node|npm)$", leftovers.stdout, re.M), leftovers.stdout
    assert "jwt-secret" not in leftovers.stdout and ".tickmesh" not in leftovers.stdout


def test_an_edge_in_the_image_serves_health_readiness_and_the_built_dashboard(image, container, tmp_path):
    nats = NatsServer(tmp_path / "nats").start()
    port = free_port()
    env = {"EDGE_PORT": str(port), "NATS_URL": nats.url, "TICKMESH_JWT_SECRET": "image-test-secret"}
    # chroot isolation shares the host's network, so the edge listens on this machine's loopback.
    edge = subprocess.Popen(
        [
            "buildah",
            "--root",
            str(STORAGE / "storage"),
            "--runroot",
            str(STORAGE / "run"),
            "--storage-driver",
            "vfs",
            "run",
            "--isolation",
            "chroot",
            *[a for k, v in env.items() for a in ("--env", f"{k}={v}")],
            container,
            "--",
            "tickmesh",
            "edge",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/readyz", 60, edge)
        with urllib.request.urlopen(f"{base}/healthz", timeout=t(5)) as resp:
            assert json.loads(resp.read()) == {"status": "alive"}
        with urllib.request.urlopen(f"{base}/", timeout=t(5)) as resp:
            page = resp.read().decode()
        assert "<!doctype html>" in page.lower() and "/assets/" in page, "the dashboard built into the image"
        asset = re.search(r'/assets/[^"]+\.js', page).group(0)
        with urllib.request.urlopen(f"{base}{asset}", timeout=t(5)) as resp:
            assert resp.status == 200
        check = image["Docker"]["config"]["Healthcheck"]["Test"][1:]
        assert run_in(container, *check, env=env).returncode == 0, "the image's HEALTHCHECK passes on a live edge"
    finally:
        edge.send_signal(signal.SIGTERM)
        try:
            edge.wait(t(30))
        except subprocess.TimeoutExpired:
            edge.kill()
            edge.wait()
        nats.stop()
    assert run_in(container, *check, env=env).returncode != 0, "and fails once the edge is gone"
