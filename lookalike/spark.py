"""The one way this project gets a SparkSession (CLI, ``spark-submit`` jobs, tests).

Binds driver and UI to loopback, points executors at this interpreter (so ``lookalike`` is
importable there) and writes Parquet timestamps as microseconds (what Delta and Arrow expect).
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import TYPE_CHECKING

from lookalike.config import Settings, get_settings

if TYPE_CHECKING:
    # pyspark 4.2 warns on every import that pandas 3 is "not yet fully supported"; the
    # project only uses Arrow batches (mapInArrow), not the pandas conversions.
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
    from pyspark.sql import SparkSession


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
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
