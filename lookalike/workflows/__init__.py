"""Workflows that combine the layers below, and the steps the Airflow DAGs run between their
Spark jobs, one module per domain:

- ``promotion``: the encoder promotion (evaluate, gate, build the index, publish the bundle,
  move the aliases);
- ``encoder``, ``catalog``, ``shopper``: the steps of the train-and-promote, catalogue refresh
  and shopper model DAGs; ``summaries`` reads the JSON summaries their Spark jobs write;
- ``service``: the HTTP readiness probe that waits until the service serves a new bundle.

Layering: above ``model``, ``index``, ``bundle`` and ``shopper`` (and the ``registry`` below
them); only ``cli``, the DAG files and the benchmarks import it. Heavy libraries are imported
inside the functions, so a DAG file that imports a step parses fast.
"""
