"""The similarity encoder: configuration, data, backbones, training, evaluation, tracking.

TensorFlow is imported lazily inside functions: importing it costs ~20 s, and the CLI, the
DAG files and the service's start-up must not pay for it unless they train or embed.
"""
