"""docker-compose.yml and the Dockerfile describe the production-shaped stack (SPEC 2, 7).

Docker cannot run here, so the files are checked statically: services, commands, the
replica-set initialisation, health checks and the environment the services need.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

yaml = pytest.importorskip(
    "yaml", reason="PyYAML is not installed: docker-compose.yml cannot be parsed here"
)

REPO = Path(__file__).resolve().parents[2]
APP_SERVICES = {"api": "serve", "writer": "writer", "sweeper": "sweeper"}
MONGO_NODES = ("mongo1", "mongo2", "mongo3")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return command if isinstance(command, list) else command.split()


def _health(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else test


def test_every_service_is_there(services: dict[str, Any]) -> None:
    expected = {"redis", "mongo-init", *MONGO_NODES, *APP_SERVICES}
    assert expected <= set(services)


def test_redis_is_7_with_aof_expiry_events_and_no_eviction(services: dict[str, Any]) -> None:
    redis = services["redis"]
    assert redis["image"].startswith("redis:7")
    args = " ".join(_command(redis))
    assert "--appendonly yes" in args
    assert "--notify-keyspace-events Ex" in args
    assert "--maxmemory-policy noeviction" in args
    assert any(v.endswith(":/data") for v in redis["volumes"])
    assert "ping" in _health(redis)


def test_three_mongo_7_members_of_rs0(services: dict[str, Any]) -> None:
    for name in MONGO_NODES:
        node = services[name]
        assert node["image"].startswith("mongo:7")
        args = _command(node)
        assert args[0] == "mongod"
        assert args[args.index("--replSet") + 1] == "rs0"
        assert "--bind_ip_all" in args
        assert "ping" in _health(node)
        assert any(v.endswith(":/data/db") for v in node["volumes"])
    volumes = {v for name in MONGO_NODES for v in services[name]["volumes"]}
    assert len(volumes) == 3  # one data volume each


def test_the_replica_set_is_initiated_by_a_one_shot_container(
    services: dict[str, Any],
) -> None:
    init = services["mongo-init"]
    assert init["image"].startswith("mongo:7")
    assert init["restart"] == "no"
    assert {n: init["depends_on"][n]["condition"] for n in MONGO_NODES} == dict.fromkeys(
        MONGO_NODES, "service_healthy"
    )
    args = _command(init)
    assert args[0] == "mongosh"
    script = args[-1]
    assert "rs.initiate(" in script and '_id: "rs0"' in script
    for i, node in enumerate(MONGO_NODES):
        assert f'{{ _id: {i}, host: "{node}:27017"' in script
    assert "NotYetInitialized" in script  # idempotent: a restart does not re-initiate
    assert "PRIMARY" in script and "quit(1)" in script  # waits for a PRIMARY, or fails
    assert "$" not in script  # compose would interpolate it
    assert "PRIMARY" in _health(init)


@pytest.mark.parametrize(("name", "subcommand"), sorted(APP_SERVICES.items()))
def test_app_services_run_the_onsale_cli(
    services: dict[str, Any], name: str, subcommand: str
) -> None:
    service = services[name]
    assert service["build"] == "."
    assert _command(service) == ["onsale", subcommand]
    assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert service["depends_on"]["mongo-init"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_app_services_are_configured_by_environment(services: dict[str, Any], name: str) -> None:
    env = services[name]["environment"]
    assert env["APP_ENV"] == "production"
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert (
        env["MONGODB_URI"]
        == "mongodb://mongo1:27017,mongo2:27017,mongo3:27017/onsale?replicaSet=rs0"
    )
    assert re.fullmatch(r"\$\{JWT_SECRET:\?.+\}", env["JWT_SECRET"])  # required, no default
    assert re.fullmatch(
        r"\$\{CONFIRM_DURABILITY:-(redis|replica|store)\}", env["CONFIRM_DURABILITY"]
    )


def test_mongodb_uri_names_every_member_and_the_initiated_set(services: dict[str, Any]) -> None:
    uri = urlsplit(services["writer"]["environment"]["MONGODB_URI"])
    hosts = uri.netloc.split(",")
    assert hosts == [f"{n}:27017" for n in MONGO_NODES]
    assert uri.path == "/onsale"
    assert parse_qs(uri.query) == {"replicaSet": ["rs0"]}


def test_the_api_is_published_and_checked_for_readiness(services: dict[str, Any]) -> None:
    api = services["api"]
    assert any(str(p).endswith(":3000") for p in api["ports"])
    assert "/health/ready" in _health(api)
    # The dedicated services do the background work, not every API process.
    assert api["environment"]["RUN_WRITER"] == "false"
    assert api["environment"]["RUN_EXPIRY"] == "false"


def test_dockerfile_builds_the_package_on_python_311_slim() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    lines = [ln.strip() for ln in dockerfile.splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "FROM python:3.11-slim"
    assert "RUN pip install ." in lines
    for part in ("engine", "api", "persistence", "lua", "pyproject.toml"):
        assert any(ln.startswith("COPY") and part in ln for ln in lines), part
    assert any(ln.startswith("USER") and "root" not in ln for ln in lines)
