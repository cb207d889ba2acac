"""Steps of the shopper model DAG (``lookalike_shopper_model``) around its Spark training job.

Land simulated shoppers on a fresh home, ingest landed interaction files, skip training when
nothing arrived since the production model, validate the trained model against popularity,
and promote it. Heavy libraries are imported inside the functions, so a DAG file that imports
this parses fast; ``bench/shopper.py`` uses the first two to prepare a home.
"""

from __future__ import annotations

from typing import Any

from lookalike.config import Settings, get_settings
from lookalike.workflows.summaries import read_summary


def ensure_interactions(
    settings: Settings | None = None, *, users: int = 5000, events: int = 500_000
) -> dict[str, Any]:
    """First run on a fresh home: no interactions table and nothing landed -> land simulated
    shoppers (default: the documented 5,000 users and 500,000 events; seeded, so a retry lands
    the same file and ingests nothing new)."""
    from lookalike.catalog.table import is_table
    from lookalike.shopper.interactions import land_events, landed_files

    settings = settings or get_settings()
    if is_table(settings.interactions_uri) or landed_files(settings):
        return {"simulated": False}
    from lookalike import storage
    from lookalike.shopper.items import load_item_space
    from lookalike.shopper.simulator import SimConfig, simulate

    cfg = SimConfig(users=users, events=events)
    space = load_item_space(settings)
    events = simulate(cfg, space.item_ids, space.categories, space.vectors)
    out = land_events(
        events, storage.join(settings.interactions_landing_uri, f"simulated-seed{cfg.seed}.parquet")
    )
    return {"simulated": True, "file": out, "events": events.num_rows}


def ingest_landed_interactions(settings: Settings | None = None) -> dict[str, Any]:
    """Ingest every landed interaction file (merge on event id: a retry inserts nothing)."""
    from lookalike.shopper.interactions import ingest_file, landed_files

    settings = settings or get_settings()
    done = [ingest_file(settings, f).to_dict() for f in landed_files(settings)]
    return {
        "files": len(done),
        "inserted": sum(d["inserted"] for d in done),
        "rejected": sum(d["rejected"] for d in done),
    }


def interactions_changed_since_production(settings: Settings | None = None) -> bool:
    """True when the interactions table moved past what the production shopper model was
    trained on (or there is no production model yet): otherwise training would only redo it."""
    from lookalike.catalog.table import table_version
    from lookalike.registry.aliases import INTERACTIONS_VERSION_TAG
    from lookalike.shopper.registry import version_by

    settings = settings or get_settings()
    current = table_version(settings.interactions_uri)
    if current is None:
        return False
    prod = version_by(settings, settings.shopper_alias)
    raw = (prod.tags or {}).get(INTERACTIONS_VERSION_TAG, "") if prod is not None else ""
    return not raw.isdigit() or current > int(raw)


def validate_shopper(train_summary: str) -> bool:
    """The trained model must beat the popularity baseline on NDCG@10 to go to the gate
    (a model that does not personalise is not worth promoting)."""
    summary = read_summary(train_summary)
    if not summary.get("model_version"):
        raise ValueError(f"{train_summary}: the training run registered no model version")
    metrics = summary["metrics"]
    return float(metrics["mf"]["ndcg_at_10"]) > float(metrics["popularity"]["ndcg_at_10"])


def promote_shopper(margin: float | None = None) -> dict[str, Any]:
    """Gate the shopper ``challenger`` against the served alias on the challenger's
    interactions version, and move the alias when it wins (the registry's promotion path,
    the encoder's too)."""
    from lookalike.shopper.promotion import promote

    return promote(get_settings(), margin=margin).to_dict()
