"""Reusable test fakes and builders (no Spark, MLflow registry or TensorFlow needed)."""
