"""Registry alias, tag and experiment names, defined once.

The aliases the service follows are settings (``Settings.serve_alias`` for the similarity
bundle, ``Settings.shopper_alias`` for the shopper model; both default to ``PRODUCTION``);
model names are settings too (``encoder_model_name``, ``recommender_model_name``,
``shopper_model_name``).
"""

from __future__ import annotations

#: A newly registered version (encoder, shopper model) waiting for the gate.
CHALLENGER = "challenger"
#: The encoder version the production bundle embeds with (moved by the encoder promotion).
CHAMPION = "champion"
#: The default alias the service follows (``Settings.serve_alias``, ``Settings.shopper_alias``).
PRODUCTION = "production"

# Model-version tags.
#: On a bundle or shopper-model version: the version the followed alias pointed to before it
#: (what a rollback returns to).
PREVIOUS_PRODUCTION_TAG = "lookalike.previous_production"
#: On an encoder version: the champion it replaced.
PREVIOUS_CHAMPION_TAG = "lookalike.previous_champion"
#: On a bundle version: its index version, encoder (``name/version``) and catalogue version.
INDEX_VERSION_TAG = "lookalike.index_version"
ENCODER_TAG = "lookalike.encoder"
CATALOG_VERSION_TAG = "lookalike.catalog_version"
#: On a shopper-model version: the interactions table version it was trained on.
INTERACTIONS_VERSION_TAG = "lookalike.interactions_version"

# Experiments of the registry's own runs (training experiments are settings).
RECOMMENDER_EXPERIMENT = "lookalike-recommender"
PROMOTION_EXPERIMENT = "lookalike-promotion"
SHOPPER_PROMOTION_EXPERIMENT = "lookalike-shopper-promotion"
