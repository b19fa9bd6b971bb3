"""The Helm chart configures NATS permissions per component the way ``tickmesh up`` does: each
workload connects as its role's user, the NATS servers the chart configures know those users
with the permissions of contracts/permissions.toml, and a Job creates the streams as admin."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import yaml

from tests.observability.test_helm import _container, _workloads, chart_dir, render, values  # noqa: F401 - fixtures
from tests.support.timing import t
from tickmesh.contracts.permissions import inbox_prefix, roles
from tickmesh.ops.codegen import natsconf
from tickmesh.ops.up import nats_server_binary

STAGING = {"natscluster": {"enabled": False}, "nats": {"embedded": True}}
SECRET = "tickmesh-nats-users"


def _entries(doc: dict) -> dict[str, dict]:
    return {e["name"]: e for e in _container(doc)["env"]}


def _role_of(doc: dict) -> str:
    args = _container(doc)["args"]
    return "edge" if args == ["edge"] else args[-1]


def _check_conf(tmp_path, text: str) -> None:
    """nats-server itself accepts ``text`` (-t: test the configuration), passwords from env."""
    conf = tmp_path / "nats.conf"
    conf.write_text(text)
    env = {**os.environ, **{natsconf.password_env(u): f"pw-{u}" for u in roles()}}
    done = subprocess.run(
        [nats_server_binary(), "-c", str(conf), "-t"], env=env, capture_output=True, text=True, timeout=t(30)
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_workload_connects_as_its_roles_user_and_leaves_the_streams_to_the_admin_job(render):
    out = render()
    for name, doc in _workloads(out).items():
        env, role = _entries(doc), _role_of(doc)
        assert role in roles(), f"{name}: no NATS role {role}"
        assert env["NATS_USER"]["value"] == role
        assert env["NATS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": SECRET, "key": role}
        assert env["TICKMESH_STREAMS_MANAGE"]["value"] == "off"
        assert "NATS_INBOX_PREFIX" not in env, f"{name}: the prefix follows the user (_INBOX_<user>)"
    [job] = [d for k, d in out.items() if k[0] == "Job"]
    env = _entries(job)
    assert _container(job)["args"] == ["streams"] and env["NATS_USER"]["value"] == "admin"
    assert env["NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "admin"
    assert "TICKMESH_STREAMS_MANAGE" not in env and env["TICKMESH_STREAM_REPLICAS"]["value"] == "3"
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"


def test_the_nats_cluster_values_carry_every_role_with_its_permissions(tmp_path):
    v = values()["natscluster"]
    users = v["config"]["merge"]["authorization"]["users"]
    assert [u["user"] for u in users] == list(roles())
    for u in users:
        assert u["permissions"] == roles()[u["user"]].server_permissions(inbox_prefix(u["user"]))
        assert u["password"] == f"<< ${natsconf.password_env(u['user'])} >>"
        ref = v["container"]["env"][natsconf.password_env(u["user"])]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": values()["natsAuth"]["secret"], "key": u["user"]}
    # The official chart writes `<< $VAR >>` unquoted (a variable) and every other string quoted:
    # the same block as nats.conf must be accepted by nats-server.
    conf = "authorization: " + json.dumps(v["config"]["merge"]["authorization"])
    _check_conf(tmp_path, re.sub(r'"<< (\$[A-Z0-9_]+) >>"', r"\1", conf))


def test_the_embedded_nats_gets_the_same_users_from_the_secret(render, tmp_path):
    out = render(staging=True)
    [config] = [d for k, d in out.items() if k[0] == "ConfigMap" and k[1].endswith("nats-config")]
    text = config["data"]["nats.conf"]
    assert "authorization {" in text and '{user: "admin", password: $TM_NATS_PW_ADMIN' in text
    _check_conf(tmp_path, text.replace("/data", str(tmp_path / "js")))
    [server] = [d for k, d in out.items() if k[0] == "StatefulSet" and k[1].endswith("-nats")]
    env = _entries(server)
    for user in roles():
        assert env[natsconf.password_env(user)]["valueFrom"]["secretKeyRef"] == {"name": SECRET, "key": user}


def test_without_nats_auth_nothing_of_it_is_rendered(render):
    out = render({"natsAuth": {"enabled": False}}, staging=True)
    assert not [k for k in out if k[0] == "Job"]
    for name, doc in _workloads(out).items():
        if name[1].endswith("-nats"):
            continue
        assert not {"NATS_USER", "NATS_PASSWORD", "TICKMESH_STREAMS_MANAGE"} & set(_entries(doc)), name
    [config] = [d for k, d in out.items() if k[0] == "ConfigMap" and k[1].endswith("nats-config")]
    assert "authorization" not in config["data"]["nats.conf"]


def test_the_nats_servers_and_the_components_must_read_the_same_secret(render):
    error = render({"natsAuth": {"secret": "other"}}, expect_error=True)
    assert "natsAuth.secret" in error and "other" in error


@pytest.mark.parametrize("path", ["files/nats-authorization.conf", "files/nats-users.yaml"])
def test_generated_chart_files_name_every_role(path):
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "helm" / "tickmesh" / path).read_text()
    for user in roles():
        assert natsconf.password_env(user) in text
    if path.endswith(".yaml"):
        assert yaml.safe_load(text) == {u: natsconf.password_env(u) for u in roles()}


def test_the_documented_list_of_secret_keys_is_every_role():
    from pathlib import Path

    chart = Path(__file__).resolve().parents[2] / "helm" / "tickmesh"
    for doc in (chart / "README.md", chart / "templates" / "NOTES.txt", chart / "values.yaml"):
        text = " ".join(doc.read_text().split())
        for user in roles():
            assert re.search(rf"\b{re.escape(user)}\b", text), f"{doc.name} does not list the NATS user {user}"
