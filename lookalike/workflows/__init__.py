"""Workflows that combine the layers below: the encoder promotion (evaluate, gate, build the
index, publish the bundle, move the aliases).

Layering: above ``model``, ``index``, ``bundle`` and ``shopper`` (and the ``registry`` below
them); only ``cli``, ``orchestration`` and the service-side scripts import it.
"""
