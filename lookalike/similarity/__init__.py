"""Visually similar products: the encoder, its tuning, the catalogue's embeddings and index,
the bundle the service loads, and the promotion that puts a new one in place.

Read it top to bottom as ``shopper`` reads: data (``data``, ``augment``, ``config``), model
(``model``: backbones, TF Similarity training; ``distributed``: Horovod ranks), tuning
(``tuning``), training (``training``: the run that registers a challenger; ``evaluate``,
``tracking``, ``plots``), index (``embeddings``, ``index``), bundle (``bundle``: answers;
``registry``: publish, serve, rollback), promotion (``promotion``).

TensorFlow is imported lazily inside functions: importing it costs ~20 s, and the CLI, the
DAG files and the service's start-up must not pay for it unless they train or embed.
"""
