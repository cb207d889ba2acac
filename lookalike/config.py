"""All settings, from environment variables (prefix ``LOOKALIKE_``), in one typed place.

Everything that runs (CLI, Spark jobs, DAGs, the service) reads ``get_settings()``, so one
environment describes one deployment. Locations are derived, not configured one by one: the
shared state (lake, landing folders, staging, index versions) lives under ``store_uri`` (a
local path or ``s3://...``, see ``lookalike.storage``), host-local state (caches, the default
MLflow store) under ``home``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lookalike import storage

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Every setting, read once from ``LOOKALIKE_*`` environment variables (or defaults): the
    one place the CLI, jobs, DAGs and service read configuration from. Paths derive from
    ``home``."""

    model_config = SettingsConfigDict(env_prefix="LOOKALIKE_", extra="ignore")

    home: Path = Field(
        default=REPO_ROOT / ".lookalike",
        description="Host-local state: caches, logs, the default MLflow store; and the "
        "shared state too unless store_uri is set.",
    )
    store_uri: str | None = Field(
        default=None,
        description="Root of the shared state (lake, landing, staging, index versions): a "
        "local path or s3://bucket/prefix. Default: home.",
    )
    lake_uri: str | None = Field(
        default=None, description="The Delta lake (every table). Default: <store_uri>/lake."
    )
    spark_master: str = Field(default="local[2]", description="Spark master URL.")
    spark_driver_memory: str = "2g"
    spark_shuffle_partitions: int = Field(default=8, ge=1)
    fashion_mnist_dir: Path = Path("/usr/share/datasets/fashion-mnist")

    # Image normalisation at ingest: the stored PNG is the product photo, bounded in size.
    max_image_side: int = Field(default=512, ge=8, description="Longer side after ingest.")
    min_image_side: int = Field(default=8, ge=1)
    max_image_pixels: int = Field(default=40_000_000, description="Decompression-bomb guard.")
    max_image_bytes: int = Field(default=20 * 1024 * 1024, description="Largest file read.")
    test_fraction: float = Field(default=0.1, ge=0.0, lt=1.0, description="Folder items held out.")
    ingest_follow_links_out: bool = Field(
        default=True,
        description="Folder ingest reads links whose target is outside the folder; false "
        "rejects them (links inside the folder are always read through).",
    )

    # MLflow: tracking defaults to a SQLite store under home; any tracking URI works.
    mlflow_tracking_uri: str | None = None
    encoder_experiment: str = "lookalike-encoder"
    encoder_model_name: str = "lookalike-encoder"
    tune_parallelism: int = Field(default=2, ge=1, description="Hyperopt SparkTrials parallelism")
    gpus_per_task: float = Field(
        default=0.0,
        ge=0.0,
        description="GPUs each training task (Horovod rank, Hyperopt trial) asks Spark for; "
        "0: CPU only. Executors must offer GPUs (spark.executor.resource.gpu.*).",
    )

    # Index, bundle and promotion.
    recommender_model_name: str = "lookalike-recommender"
    index_min_recall: float = Field(
        default=0.98, gt=0.0, le=1.0, description="recall@10 vs exact search to publish"
    )
    index_target_recall: float = Field(
        default=0.99,
        gt=0.0,
        le=1.0,
        description="recall@10 (with ties) a partitioned index is tuned to at publish: the "
        "fewest partitions searched that reach it (at least index_min_recall)",
    )
    recall_tolerance: float = Field(
        default=1e-3,
        ge=0.0,
        description="a result counts as a hit when its exact score is within this of the k-th "
        "exact score (ann-benchmarks' recall; near-identical photos are ties, not misses)",
    )
    index_rebalance_share: float = Field(
        default=0.2, gt=0.0, description="rebalance once this share changed since the last"
    )
    index_keep_versions: int = Field(default=10, ge=2, description="index versions kept on disk")
    landing_poll_seconds: float = Field(
        default=2.0,
        gt=0.0,
        description="how often Airflow's triggerer lists the landing store for the fresh "
        "ingest (lookalike_catalog_fresh)",
    )
    index_snapshot_share: float = Field(
        default=0.05,
        gt=0.0,
        description="a fresh ingest also writes a full index snapshot (recall-checked, "
        "published) once the catalogue changes since the served one reach this share of its "
        "items; the nightly refresh writes one whatever the share",
    )
    lock_wait_seconds: float = Field(
        default=1800.0,
        ge=0.0,
        description="how long an index build or update, or a move of the served alias, waits "
        "for another writer's lease (see lookalike.locks) before it refuses",
    )
    promote_metric: str = "precision_at_1"
    promote_margin: float = Field(
        default=0.0, ge=0.0, description="challenger must beat champion by more than this"
    )
    promote_eval_limit: int | None = Field(default=None, description="test queries (None: all)")
    promote_require_baseline: bool = Field(
        default=True,
        description="a challenger must also beat the raw-pixel baseline (encoder) or "
        "popularity (shopper model) on the gate metric",
    )

    # The recommendation service.
    serve_host: str = Field(default="127.0.0.1", description="Bind address (loopback default).")
    serve_port: int = Field(default=8000, ge=1, le=65535)
    serve_alias: str = Field(default="production", description="Bundle alias the service follows")
    serve_poll_seconds: float = Field(default=10.0, gt=0, description="Alias polling interval.")
    serve_tail_seconds: float = Field(
        default=2.0,
        ge=0.0,
        description="how often the service reads the embeddings change feed and applies it "
        "to its live searcher in place (0: never; the service then changes only with a bundle)",
    )
    serve_admin_token: str | None = Field(default=None, description="Bearer token for /v1/admin")
    serve_max_upload_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    serve_photo_cache_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=0,
        description="product photos the service keeps in memory (read from the catalogue "
        "table on demand; the rest stay on the store)",
    )

    # Shopper recommendations (matrix factorisation on interaction events).
    shopper_model_name: str = "lookalike-shopper-model"
    shopper_experiment: str = "lookalike-shopper"
    shopper_alias: str = Field(default="production", description="alias the service follows")
    shopper_promote_metric: str = "ndcg_at_10"
    shopper_promote_margin: float = Field(default=0.0, ge=0.0)
    shopper_schedule: str = Field(default="0 3 * * *", description="shopper model cron")
    shopper_tune_trials: int = Field(
        default=12,
        ge=1,
        description="Hyperopt trials of an automatic shopper search (`shopper train --tune "
        "auto`, the default), run when no earlier search fits the data's shape",
    )
    shopper_tune_max_pairs: int = Field(
        default=100_000,
        ge=1000,
        description="a shopper search trains its trials on a random sample of users holding "
        "about this many train pairs (the final model trains on all of them)",
    )
    shopper_tune_minutes: float = Field(
        default=30.0,
        gt=0,
        description="a shopper search starts no trial after this (the best finished one "
        "wins), so a first nightly training stays inside the task's 2-hour limit",
    )
    shopper_retune_days: float = Field(
        default=30.0,
        gt=0,
        description="an automatic shopper search older than this is run again",
    )

    # Orchestration (Airflow).
    refresh_schedule: str = Field(default="0 2 * * *", description="catalogue refresh cron")
    train_schedule: str = Field(default="0 4 * * 0", description="train-and-promote cron")
    serve_url: str | None = Field(
        default=None, description="service the refresh DAG confirms (unset: skip the check)"
    )

    @field_validator("home", "fashion_mnist_dir")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    @property
    def store_root(self) -> str:
        """Root location of the shared state (``store_uri``, else ``home``)."""
        return storage.normalise(self.store_uri or self.home)

    @property
    def lake(self) -> str:
        """The Delta lake: every table lives under it."""
        return storage.normalise(self.lake_uri) if self.lake_uri else self.at("lake")

    def at(self, *parts: str) -> str:
        """A location under the shared-state root."""
        return storage.join(self.store_root, *parts)

    def table(self, name: str) -> str:
        """The location of the lake's table ``name``."""
        return storage.join(self.lake, name)

    @property
    def catalog_uri(self) -> str:
        """Delta table ``catalog``: one row per product."""
        return self.table("catalog")

    @property
    def rejects_uri(self) -> str:
        """Delta table ``catalog_rejects``: rejected catalogue inputs and why."""
        return self.table("catalog_rejects")

    @property
    def interactions_uri(self) -> str:
        """Delta table ``interactions``: shopper events."""
        return self.table("interactions")

    @property
    def interactions_rejects_uri(self) -> str:
        """Delta table ``interactions_rejects``: rejected interaction rows and why."""
        return self.table("interactions_rejects")

    @property
    def interactions_landing_uri(self) -> str:
        """Where interaction files (CSV or Parquet) land for the nightly shopper DAG."""
        return self.at("landing-interactions")

    @property
    def mlflow_dir(self) -> Path:
        """MLflow's local store (database and artifacts) when no tracking server is set."""
        return self.home / "mlflow"

    @property
    def tracking_uri(self) -> str:
        """``mlflow_tracking_uri`` if set, else a SQLite database under the home."""
        return self.mlflow_tracking_uri or f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    @property
    def embeddings_uri(self) -> str:
        """Delta table ``embeddings``: one vector per (encoder version, item)."""
        return self.table("embeddings")

    @property
    def index_uri(self) -> str:
        """Index versions, one folder each (``v000001``...)."""
        return self.at("indexes")

    def lock_uri(self, name: str) -> str:
        """The writer lease ``name`` (a one-row Delta table, see ``lookalike.locks``)."""
        return self.at("locks", name)

    @property
    def cache_dir(self) -> Path:
        """Local copies of registered models, shared by the driver and local executors."""
        return self.home / "cache"

    @property
    def landing_uri(self) -> str:
        """Where the retailer's product photos land (one sub-folder per category)."""
        return self.at("landing")

    @property
    def state_uri(self) -> str:
        """Small markers of what ran (e.g. which landing listing was ingested)."""
        return self.at("state")

    @property
    def staging_uri(self) -> str:
        """Scratch space for a job's intermediate Parquet; never read as a table."""
        return self.at("staging")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment once (tests clear the cache)."""
    return Settings()
