"""lookalike: visually similar products and shopper recommendations that keep themselves fresh."""

import os

# TensorFlow Similarity needs legacy Keras (tf-keras); the switch must be set before TensorFlow
# is first imported anywhere (CLI, Spark executors, Airflow tasks, service, tests), and every
# one of those imports this package first.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

__version__ = "0.1.0"
