"""The one way this project gets a SparkSession (CLI, ``spark-submit`` jobs, tests).

Binds driver and UI to loopback, points executors at this interpreter (so ``lookalike`` is
importable there) and writes Parquet timestamps as microseconds (what Delta and Arrow expect).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pyarrow as pa

from lookalike.config import Settings, get_settings

if TYPE_CHECKING:
    # pyspark 4.2 warns on every import that pandas 3 is "not yet fully supported"; the
    # project only uses Arrow batches (mapInArrow), not the pandas conversions.
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType


#: Environment that executors need to see the same deployment as the driver: the settings,
#: object-store credentials and endpoint, the MLflow server. Executors on other hosts get it
#: through ``spark.executorEnv`` (Spark redacts secret-looking values in its UI and logs).
EXECUTOR_ENV_PREFIXES = ("LOOKALIKE_", "AWS_", "MLFLOW_")


def executor_env() -> dict[str, str]:
    """The driver's environment variables that executors must share (see above)."""
    return {k: v for k, v in os.environ.items() if k.startswith(EXECUTOR_ENV_PREFIXES)}


def gpu_confs(gpus_per_task: float) -> dict[str, str]:
    """Spark settings that make every task (a Horovod rank, a Hyperopt trial) ask for
    ``gpus_per_task`` GPUs; none when it is 0. The executors' own GPU resources
    (``spark.executor.resource.gpu.amount`` and a discovery script) belong to the cluster's
    ``spark-submit --conf``, as Spark documents them."""
    if gpus_per_task <= 0:
        return {}
    return {"spark.task.resource.gpu.amount": f"{gpus_per_task:g}"}


def spark_session(app_name: str, settings: Settings | None = None) -> SparkSession:
    """A Spark session configured from the settings (driver memory, shuffle partitions, UTC,
    microsecond Parquet timestamps); on a laptop everything stays on loopback. Under
    ``spark-submit`` the master comes from the command line."""
    settings = settings or get_settings()
    if settings.spark_master.startswith("local"):  # one machine: nothing leaves loopback
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    # pyspark 4.2 warns on every import that pandas 3 is "not yet fully supported"; the
    # project only uses Arrow batches (mapInArrow), not the pandas conversions.
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.appName(app_name)
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.sql.shuffle.partitions", str(settings.spark_shuffle_partitions))
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "1000")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.showConsoleProgress", "false")
    )
    # Under spark-submit the master (and the driver's address) come from the command line.
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        builder = builder.master(settings.spark_master)
        if settings.spark_master.startswith("local"):
            builder = builder.config("spark.driver.host", "127.0.0.1").config(
                "spark.driver.bindAddress", "127.0.0.1"
            )
    for key, value in executor_env().items():
        builder = builder.config(f"spark.executorEnv.{key}", value)
    for key, value in gpu_confs(settings.gpus_per_task).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


# ----------------------------------------------------------- Parquet without Hadoop -------
# Executors read and write Parquet through ``pyarrow.fs`` (``lookalike.storage``) inside
# ``mapInArrow``: no Hadoop S3 connector (Maven is out of reach, many clusters lack it), and
# nothing passes through a path that only the driver's host can see.


def write_parquet(frame: DataFrame, uri: str) -> int:
    """Write ``frame`` as Parquet files under ``uri`` (one per non-empty partition, named by
    partition, so a retried task overwrites its own file); returns the rows written. The
    folder must not hold files yet: a job writes each intermediate result once."""
    from lookalike import storage

    if storage.listdir(uri):
        raise FileExistsError(f"{uri} already holds files")

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow.parquet as pq
        from pyspark import TaskContext

        ctx = TaskContext.get()
        part = ctx.partitionId() if ctx else 0
        writer, rows = None, 0
        for b in batches:
            if writer is None:
                storage.ensure_dir(uri)
                fs, path = storage.filesystem(storage.join(uri, f"part-{part:05d}.parquet"))
                writer = pq.ParquetWriter(fs.open_output_stream(path), b.schema)
            writer.write_batch(b)
            rows += b.num_rows
        if writer is not None:
            writer.close()
        yield pa.RecordBatch.from_pydict({"rows": [rows]}, schema=pa.schema([("rows", pa.int64())]))

    return int(sum(r[0] for r in frame.mapInArrow(run, "rows long").collect()))


def parquet_files(uri: str) -> list[str]:
    """The Parquet files under a folder ``write_parquet`` wrote (sorted)."""
    from lookalike import storage

    return [e.uri for e in storage.listdir(uri) if not e.is_dir and e.uri.endswith(".parquet")]


def read_parquet(
    spark: SparkSession, files: list[str], schema: StructType | str, batch_rows: int = 1000
) -> DataFrame:
    """Parquet files (local paths or object-store URIs) as a DataFrame of ``schema`` (the
    columns to read, cast to its types); executors read one file per task."""
    from pyspark.sql.pandas.types import to_arrow_schema
    from pyspark.sql.types import StructType as _StructType

    from lookalike import storage

    struct = schema if isinstance(schema, _StructType) else _StructType.fromDDL(schema)
    if not files:
        return spark.createDataFrame([], struct)
    target = to_arrow_schema(struct, timezone="UTC")

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            for uri in b.column(0).to_pylist():
                for rb in storage.parquet_batches(uri, target.names, batch_rows):
                    yield pa.RecordBatch.from_arrays(
                        [
                            rb.column(n).cast(t.type)
                            for n, t in zip(target.names, target, strict=True)
                        ],
                        schema=target,
                    )

    slices = min(len(files), 4 * spark.sparkContext.defaultParallelism)
    listing = spark.sparkContext.parallelize([(f,) for f in files], slices)
    return spark.createDataFrame(listing, "file string").mapInArrow(run, struct)
