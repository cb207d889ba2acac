"""The MLflow model registry, in one layer: set-up, alias and tag names, version lookup, the
download-once cache, registered encoders as embedding functions, and the promotion gate.

Layering: this package sits just above ``config`` and ``images``, beside ``catalog`` and
``spark`` (neither imports the other), and below ``model`` and ``index``; ``model``,
``index``, ``bundle``, ``shopper`` and ``workflows`` import it, it imports none of them.
MLflow is imported inside functions (the CLI, DAG files and service start-up do not pay for
it unless they touch the registry).
"""
