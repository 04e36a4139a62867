"""The production stack (docker-compose.yml, Dockerfile.gpu) checked against the code, without a Docker engine."""

from __future__ import annotations

import json
import os
import re
import shlex
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from client import cli
from client.pipeline_file import load_pipeline_file
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES = COMPOSE["services"]
PREFIX = Settings.model_config["env_prefix"]


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile.gpu").read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def invocations(command: list[str] | str) -> list[list[str]]:
    """argv after `stagerun` of each command a service runs (``sh -c "a && exec b"`` gives two)."""
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    parts = [shlex.split(p) for p in argv[2].split("&&")] if argv[:2] == ["sh", "-c"] else [argv]
    parts = [p[1:] if p[0] == "exec" else p for p in parts]
    assert all(p[0] == "stagerun" for p in parts), parts
    return [p[1:] for p in parts]


def named_mounts(service: dict) -> dict[str, str]:
    """Container path -> named volume, for short-syntax mounts whose source is not a host path."""
    mounts = {}
    for spec in service.get("volumes", []):
        source, target = spec.split(":")[:2]
        if not source.startswith((".", "/", "$", "~")):
            mounts[target] = source
    return mounts


def test_services_and_images():
    assert {"postgres", "redis", "api", "worker"} <= set(SERVICES)
    assert SERVICES["postgres"]["image"] == "postgres:16"
    assert SERVICES["redis"]["image"] == "redis:7"
    redis_command = SERVICES["redis"]["command"]
    argv = shlex.split(redis_command) if isinstance(redis_command, str) else redis_command
    assert argv[0] == "redis-server"
    assert argv[argv.index("--appendonly") + 1] == "yes"
    assert named_mounts(SERVICES["redis"]) == {"/data": "redisdata"}
    assert named_mounts(SERVICES["postgres"]) == {"/var/lib/postgresql/data": "pgdata"}


def test_worker_reserves_one_nvidia_gpu():
    worker = SERVICES["worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert worker["shm_size"] == "8gb"
    assert "deploy" not in SERVICES["api"]


def test_api_and_worker_share_image_environment_and_volumes():
    api, worker = SERVICES["api"], SERVICES["worker"]
    assert api["build"] == worker["build"] == {"context": ".", "dockerfile": "Dockerfile.gpu"}
    assert api["image"] == worker["image"]
    assert api["environment"] == worker["environment"]
    assert api["volumes"] == worker["volumes"]
    assert api["ports"] == ["8000:8000"]


@pytest.mark.parametrize("service", ["api", "worker"])
def test_environment_names_settings_fields(service):
    assert PREFIX == "STAGERUN_"
    names = [key for key in SERVICES[service]["environment"] if key.startswith(PREFIX)]
    assert {"STAGERUN_DATABASE_URL", "STAGERUN_BROKER_URL", "STAGERUN_ARTIFACTS_ROOT"} <= set(names)
    unknown = [key for key in names if key[len(PREFIX) :].lower() not in Settings.model_fields]
    assert unknown == []


def test_urls_point_at_the_compose_services():
    env = SERVICES["api"]["environment"]
    database = urlsplit(env["STAGERUN_DATABASE_URL"])
    postgres_env = SERVICES["postgres"]["environment"]
    assert database.scheme == "postgresql+psycopg"
    assert (database.hostname, database.port) == ("postgres", 5432)
    assert (database.username, database.password) == (postgres_env["POSTGRES_USER"], postgres_env["POSTGRES_PASSWORD"])
    assert database.path == "/" + postgres_env["POSTGRES_DB"]
    broker = urlsplit(env["STAGERUN_BROKER_URL"])
    assert (broker.scheme, broker.hostname, broker.port) == ("redis", "redis", 6379)


@pytest.mark.parametrize("service", ["api", "worker"])
def test_settings_roots_are_named_volumes(service, monkeypatch):
    for key in [k for k in os.environ if k.startswith(PREFIX)]:
        monkeypatch.delenv(key)
    for key, value in SERVICES[service]["environment"].items():
        monkeypatch.setenv(key, str(value))
    settings = Settings()
    assert not settings.is_embedded
    assert settings.database_url.startswith("postgresql+psycopg://")
    mounts = named_mounts(SERVICES[service])
    assert mounts[str(settings.artifacts_root)] == "artifacts"
    assert mounts[str(settings.datasets_root)] == "datasets"
    assert mounts[str(settings.weights_root)] == "weights"


def test_named_volumes_are_declared():
    used = {name for service in SERVICES.values() for name in named_mounts(service).values()}
    assert used == {"pgdata", "redisdata", "artifacts", "datasets", "weights"}
    assert used <= set(COMPOSE["volumes"])


def test_api_command_migrates_then_serves():
    parsed = [cli.build_parser().parse_args(argv) for argv in invocations(SERVICES["api"]["command"])]
    assert [args.func for args in parsed] == [cli.cmd_db_upgrade, cli.cmd_api]
    assert (parsed[1].host, parsed[1].port) == ("0.0.0.0", 8000)


def test_worker_command_and_one_shot_run():
    [argv] = invocations(SERVICES["worker"]["command"])
    args = cli.build_parser().parse_args(argv)
    assert (args.func, args.concurrency) == (cli.cmd_worker, 1)
    args = cli.build_parser().parse_args(["run", "examples/pipeline.yaml"])
    assert (args.func, args.file) == (cli.cmd_run, "examples/pipeline.yaml")


def test_depends_on_healthy_services():
    api_deps, worker_deps = SERVICES["api"]["depends_on"], SERVICES["worker"]["depends_on"]
    assert {name: dep["condition"] for name, dep in api_deps.items()} == {
        "postgres": "service_healthy",
        "redis": "service_healthy",
    }
    assert worker_deps["api"]["condition"] == "service_healthy"


def test_healthchecks():
    def check(service: str) -> str:
        test = SERVICES[service]["healthcheck"]["test"]
        return " ".join(test) if isinstance(test, list) else test

    assert "pg_isready -U stagerun" in check("postgres")
    assert "redis-cli ping" in check("redis")
    assert "http://localhost:8000/healthz" in check("api") and "urllib" in check("api")
    assert "celery -A worker.celery_app inspect ping" in check("worker")
    from api.routes.health import router

    assert "/healthz" in {route.path for route in router.routes}


def test_dockerfile():
    instructions = dockerfile_instructions()
    base = [arg for name, arg in instructions if name == "FROM"]
    assert len(base) == 1 and base[0].startswith("nvidia/cuda:") and "runtime" in base[0]
    runs = " ".join(arg for name, arg in instructions if name == "RUN")
    assert re.search(r"pip install(\s+--?\S+)*\s+\.(\s|$)", runs)
    env = " ".join(arg for name, arg in instructions if name == "ENV")
    assert re.search(r"(^|\s)YOLO_OFFLINE=1(\s|$)", env)
    assert "STAGERUN_HOME=/var/lib/stagerun" in env
    users = [arg for name, arg in instructions if name == "USER"]
    assert users and users[-1] not in ("root", "0")
    # No ENTRYPOINT, so compose commands (and `docker compose run worker stagerun ...`) start with `stagerun`.
    assert "ENTRYPOINT" not in {name for name, _ in instructions}
    [cmd] = [json.loads(arg) for name, arg in instructions if name == "CMD"]
    [argv] = invocations(cmd)
    assert cli.build_parser().parse_args(argv).func is cli.cmd_api


def test_pyproject_pins_and_console_script():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert {"torch==2.14.1", "torchvision==0.29.1"} <= set(project["dependencies"])
    assert project["scripts"]["stagerun"] == "client.cli:main"


def test_example_pipeline_validates():
    spec = load_pipeline_file(ROOT / "examples" / "pipeline.yaml")
    assert (spec.dataset, spec.model) == ("demo", "yolov8n.yaml")
    assert [stage.type for stage in spec.stages] == ["train", "evaluate"]
    train, evaluate = spec.stages
    assert (train.epochs, train.imgsz, train.batch) == (3, 128, 8)
    assert (evaluate.split, evaluate.imgsz) == ("val", 128)


def test_flower_and_tensorboard_are_optional_views_of_the_same_broker_and_volume():
    flower, tensorboard = SERVICES["flower"], SERVICES["tensorboard"]
    assert flower["profiles"] == ["observability"] and tensorboard["profiles"] == ["observability"]
    assert all("observability" not in SERVICES[name].get("profiles", []) for name in ("api", "worker", "postgres"))
    broker = SERVICES["worker"]["environment"][f"{PREFIX}BROKER_URL"]
    assert f"--broker={broker}" in flower["command"] and flower["image"].startswith("mher/flower:")
    assert flower["depends_on"]["redis"]["condition"] == "service_healthy"

    assert tensorboard["image"] == SERVICES["worker"]["image"]  # the stagerun image ships tensorboard
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(dep.startswith("tensorboard") for dep in dependencies)
    artifacts = SERVICES["worker"]["environment"][f"{PREFIX}ARTIFACTS_ROOT"]
    assert tensorboard["volumes"] == [f"artifacts:{artifacts}:ro"]
    command = tensorboard["command"]
    assert command[0] == "tensorboard" and command[command.index("--logdir") + 1].startswith(artifacts)
    assert {"5555:5555", "6006:6006"} == set(flower["ports"]) | set(tensorboard["ports"])
