"""A real S3-compatible server for the object-store tests: moved to ``bench.s3`` (the pipeline
benchmark's ``--store s3`` runs on it too); re-exported here for the tests."""

from bench.s3 import ENV_PORT, S3Server, configure_env

__all__ = ["ENV_PORT", "S3Server", "configure_env"]
