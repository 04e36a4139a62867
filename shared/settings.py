"""All configuration in one place. Nothing else reads ``os.environ`` for stagerun settings."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every field maps to ``STAGERUN_<NAME>``. With nothing set, everything lives under ``./var``
    (the embedded default: SQLite database, SQLite Celery broker, artifacts on the local disk)."""

    model_config = SettingsConfigDict(env_prefix="STAGERUN_", extra="ignore")

    home: Path = Field(Path("var"), description="Root of everything stagerun keeps on this machine.")
    database_url: str = Field("", description="SQLAlchemy URL; default sqlite:///<home>/stagerun.db")
    broker_url: str = Field("", description="Celery broker URL; default sqla+sqlite:///<home>/broker.db")
    artifacts_root: Path = Field(Path(), description="Shared volume for job artifacts; default <home>/artifacts")
    datasets_root: Path = Field(Path(), description="Datasets a job may name; default <home>/datasets")
    weights_root: Path = Field(
        Path(), description="Weights files a job may name (e.g. yolov8n.pt); default <home>/weights"
    )
    yolo_config_dir: Path = Field(Path(), description="Ultralytics' writable config dir; default <home>/ultralytics")

    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    api_shutdown_grace_s: int = Field(
        5, ge=1, le=600, description="On SIGTERM, how long the API waits for open requests (event streams) to end."
    )
    api_url: str = Field("", description="Where the CLI finds the API; default http://<api_host>:<api_port>")
    log_format: Literal["text", "json"] = Field(
        "text",
        description="'json': one JSON object per log line (time, level, logger, message, and job_id, stage_id, "
        "stage_index where known) from the API, the worker and the stage processes.",
    )

    db_pool_size: int = Field(10, ge=1, le=1000, description="Database connections kept open per process.")
    db_max_overflow: int = Field(
        40, ge=0, le=1000, description="Extra connections under load; pool + overflow must cover the API's 40 threads."
    )

    api_job_cache_ttl_s: float = Field(
        0.25,
        ge=0,
        le=10,
        description="How long the API reuses a job document it just read (0: never); polls see changes this late.",
    )

    token: str = Field(
        "", repr=False, description="Bearer token the CLI sends; default: the local token in <home>/api-token"
    )
    auth_cache_ttl_s: float = Field(
        5.0, ge=0, le=300, description="How long the API trusts a token it checked (a revoke takes this long)."
    )
    api_max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest request body, except dataset uploads.")
    job_create_per_minute: float = Field(
        60.0, gt=0, description="Jobs one token may create per minute, sustained (per API process)."
    )
    job_create_burst: int = Field(30, ge=1, description="Jobs one token may create at once before the rate applies.")

    dataset_upload_max_bytes: int = Field(2 * 1024**3, ge=1024, description="Largest dataset zip upload.")
    dataset_unzipped_max_bytes: int = Field(
        20 * 1024**3, ge=1024, description="Largest total uncompressed size of an uploaded zip."
    )
    dataset_zip_max_ratio: float = Field(
        200.0, ge=1, description="Largest uncompressed/compressed size ratio of a zip member (zip bombs)."
    )
    dataset_zip_max_files: int = Field(500_000, ge=1, description="Most files an uploaded zip may hold.")
    dataset_max_images: int = Field(
        200_000, ge=1, description="Most images a dataset may hold to be validated within the registering request."
    )

    queue: str = Field("stagerun", description="Celery queue the API sends stages to and the worker consumes.")
    device: str = Field("", description="Torch device for stages ('cpu', '0', ...); default: first GPU, else cpu")
    heartbeat_interval_s: float = Field(5.0, gt=0)
    broker_poll_interval_s: float = Field(0.1, gt=0, description="Polling interval of the SQL broker transport.")
    cancel_grace_s: float = Field(
        600.0, gt=0, description="After a cancel, how long a stage may run before it is killed."
    )
    lease_ttl_s: float = Field(
        60.0,
        gt=0,
        description="A running stage whose worker has not renewed its lease (heartbeat) for this long is taken "
        "back by the reaper and queued again; must exceed a few heartbeat intervals and a database blip.",
    )
    reaper_interval_s: float = Field(10.0, gt=0, description="How often each worker's reaper looks for lost stages.")
    max_stage_attempts: int = Field(
        3, ge=1, le=100, description="A stage whose worker was lost this many times fails instead of running again."
    )
    requeue_queued_after_s: float = Field(
        120.0,
        gt=0,
        description="A stage queued in the database and unclaimed for this long is sent to the broker again "
        "(the broker may have lost it); duplicates are harmless, claiming is a compare-and-set.",
    )
    fault_oom_epochs: str = Field(
        "",
        description="TEST ONLY, never set in production: comma-separated 1-based epochs at whose start a train "
        "stage raises torch.cuda.OutOfMemoryError, each listed occurrence once per stage process "
        "('2,2' fails epoch 2 twice). Exercises out-of-memory recovery on a machine without a GPU.",
    )

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        if self.lease_ttl_s <= 2 * self.heartbeat_interval_s:
            raise ValueError(
                f"lease_ttl_s ({self.lease_ttl_s}) must exceed twice heartbeat_interval_s ({self.heartbeat_interval_s})"
            )
        self.home = self.home.expanduser().resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.home / 'stagerun.db'}"
        if not self.broker_url:
            self.broker_url = f"sqla+sqlite:///{self.home / 'broker.db'}"
        for name, default in (
            ("artifacts_root", "artifacts"),
            ("datasets_root", "datasets"),
            ("weights_root", "weights"),
            ("yolo_config_dir", "ultralytics"),
        ):
            value: Path = getattr(self, name)
            setattr(self, name, (self.home / default) if value == Path() else value.expanduser().resolve())
        if not self.api_url:
            self.api_url = f"http://{self.api_host}:{self.api_port}"
        return self

    @property
    def token_file(self) -> Path:
        """The local admin token written on first start of the embedded default (mode 0600)."""
        return self.home / "api-token"

    @property
    def oom_fault_epochs(self) -> list[int]:
        """``fault_oom_epochs`` parsed (test-only fault injection)."""
        return [int(part) for part in self.fault_oom_epochs.replace(" ", "").split(",") if part]

    @property
    def is_embedded(self) -> bool:
        return self.database_url.startswith("sqlite")

    def ensure_dirs(self) -> None:
        for path in (self.home, self.artifacts_root, self.datasets_root, self.weights_root, self.yolo_config_dir):
            path.mkdir(parents=True, exist_ok=True)


@lru_cache
def get_settings() -> Settings:
    return Settings()
