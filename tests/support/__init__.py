"""Reusable test fakes, builders and harnesses: in-memory service fakes, image bytes, landed
photos, a local Airflow environment, a Spark standalone cluster. The landed photos and the S3
server live in ``bench/`` (the benchmarks use them too); ``photos`` and ``s3`` here re-export
them."""
