"""``lookalike shopper ...``: simulate, ingest, train, promote, recommend (thin, like the rest)."""

from __future__ import annotations

import argparse
from typing import Any

from lookalike.cli.output import UsageError, emit, output_options
from lookalike.config import get_settings
from lookalike.registry.aliases import CHALLENGER, PRODUCTION


def cmd_simulate(args: argparse.Namespace) -> int:
    """``lookalike shopper simulate``: land simulated shoppers over the catalogue as one
    Parquet file (written aside, then renamed), and ingest it with ``--ingest``."""
    from lookalike import storage
    from lookalike.shopper.interactions import ingest_file, land_events
    from lookalike.shopper.items import load_item_space
    from lookalike.shopper.simulator import SimConfig, simulate

    for name in ("users", "events"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name}: must be >= 1, got {getattr(args, name)}")
    settings = get_settings()
    cfg = SimConfig(users=args.users, events=args.events, seed=args.seed)
    space = load_item_space(settings, limit=args.items)
    events = simulate(cfg, space.item_ids, space.categories, space.vectors)
    out = land_events(
        events,
        args.out
        or storage.join(
            settings.interactions_landing_uri,
            f"simulated-seed{cfg.seed}-{cfg.users}u-{cfg.events}e.parquet",
        ),
    )
    result: dict[str, Any] = {
        "file": out,
        "events": events.num_rows,
        "users": cfg.users,
        "items": len(space),
        "item_space": space.source,
        "config": cfg.to_dict(),
    }
    if args.ingest:
        result["ingest"] = ingest_file(settings, out, source="simulator").to_dict()
    emit(result, args.summary_file)
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    """``lookalike shopper ingest``: ingest interaction files (or every landed one)."""
    from lookalike import storage
    from lookalike.shopper.interactions import ingest_file, landed_files

    settings = get_settings()
    files = list(args.paths or [])
    if args.landing:
        files += landed_files(settings)
    if not files:
        raise UsageError(
            f"PATH: give interaction files, or --landing for {settings.interactions_landing_uri}"
        )
    for f in files:
        if not storage.is_file(str(f)):
            raise UsageError(f"PATH: file not found: {f}")
    summaries = [
        ingest_file(settings, f, check_items=not args.no_item_check).to_dict() for f in files
    ]
    result = {
        "files": summaries,
        "inserted": sum(s["inserted"] for s in summaries),
        "rejected": sum(s["rejected"] for s in summaries),
        "table_version": summaries[-1]["table_version"],
    }
    emit(result, args.summary_file)
    return 0


def _mf_config(args: argparse.Namespace) -> Any:
    """MFConfig from ``--set`` and ``--sets``; a bad pair names its key."""
    from lookalike.shopper.model import MFConfig, ShopperConfigError

    try:
        return MFConfig.from_overrides([*(args.set or []), *args.sets.split()])
    except ShopperConfigError as e:
        raise UsageError(f"--set: {e}") from None


def _check_parallelism(args: argparse.Namespace) -> None:
    if args.parallelism is not None and args.parallelism < 1:
        raise UsageError(f"--parallelism: must be >= 1, got {args.parallelism}")


def cmd_tune(args: argparse.Namespace) -> int:
    """``lookalike shopper tune``: Hyperopt on Spark, objective on the validation split;
    prints the best parameters (``best_sets`` goes to ``shopper train --sets``)."""
    from lookalike.shopper.tuning import run_shopper_tuning
    from lookalike.spark import spark_session

    cfg = _mf_config(args)
    if args.trials < 1:
        raise UsageError(f"--trials: must be >= 1, got {args.trials}")
    _check_parallelism(args)
    result = run_shopper_tuning(
        get_settings(),
        cfg,
        trials=args.trials,
        parallelism=args.parallelism,
        interactions_version=args.interactions_version,
        spark=spark_session("lookalike-shopper-tune"),
    )
    emit(result.to_dict(), args.summary_file)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """``lookalike shopper train``: (``--tune``: the best of a Hyperopt search, by default
    the latest one that fits the data, see ``shopper.tuning.tuned_config``) train, evaluate and
    register the shopper model."""
    from lookalike.shopper.training import train_shopper
    from lookalike.shopper.tuning import parse_tune, tuned_config

    cfg = _mf_config(args)
    if args.horovod < 0:
        raise UsageError(f"--horovod: must be >= 0, got {args.horovod}")
    try:
        tune = parse_tune(args.tune)
    except ValueError as e:
        raise UsageError(f"--tune: {e}") from None
    _check_parallelism(args)
    spark = None
    if args.horovod or tune or not args.no_baselines:
        from lookalike.spark import spark_session

        spark = spark_session("lookalike-shopper")
    cfg, tuned = tuned_config(
        get_settings(),
        cfg,
        tune,
        parallelism=args.parallelism,
        interactions_version=args.interactions_version,
        spark=spark,
    )
    result = train_shopper(
        get_settings(),
        cfg,
        interactions_version=args.interactions_version,
        horovod=args.horovod,
        baselines=not args.no_baselines,
        register=not args.no_register,
        eval_users=args.eval_users,
        spark=spark,
        tuned_by=tuned.parent_run_id if tuned else None,
    )
    out = result.to_dict()
    if tuned is not None:
        out["tuning"] = tuned.to_dict()
    emit(out, args.summary_file)
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    """``lookalike shopper promote``: gate the challenger against production."""
    from lookalike.shopper.promotion import promote

    if args.margin is not None and args.margin < 0:
        raise UsageError(f"--margin: must be >= 0, got {args.margin}")
    result = promote(get_settings(), challenger=args.challenger, margin=args.margin)
    emit(result.to_dict(), args.summary_file)
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    """``lookalike shopper recommend``: one shopper's recommendations from a registered version."""
    from lookalike.shopper.registry import load_version, version_by

    settings = get_settings()
    mv = version_by(settings, args.model)
    if mv is None:
        from lookalike.registry.gate import PromotionError

        raise PromotionError(f"{settings.shopper_model_name!r} has no version {args.model!r}")
    if not 0 <= args.blend <= 1:
        raise UsageError(f"--blend: must be within 0..1, got {args.blend}")
    rec = load_version(settings, str(mv.version))
    hits, mode = rec.recommend(
        args.user_id, args.k, exclude_seen=not args.include_seen, blend=args.blend
    )
    emit(
        {
            "user_id": args.user_id,
            "mode": mode,
            "versions": rec.versions(),
            "items": [h.__dict__ for h in hits],
        },
        None,
    )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """``lookalike shopper show``: the interactions version and what each alias was trained on."""
    from lookalike.catalog.table import table_version
    from lookalike.registry.aliases import INTERACTIONS_VERSION_TAG
    from lookalike.shopper.registry import version_by

    settings = get_settings()
    result: dict[str, Any] = {
        "model": settings.shopper_model_name,
        "interactions_version": table_version(settings.interactions_uri),
    }
    for key, alias in (("production", settings.shopper_alias), (CHALLENGER, CHALLENGER)):
        mv = version_by(settings, alias)
        result[key] = (
            None
            if mv is None
            else {
                "version": str(mv.version),
                "trained_on": (mv.tags or {}).get(INTERACTIONS_VERSION_TAG),
            }
        )
    emit(result, None)
    return 0


def _mf_options() -> argparse.ArgumentParser:
    """The options ``shopper train`` and ``shopper tune`` share."""
    mf = argparse.ArgumentParser(add_help=False)
    mf.add_argument("--set", action="append", metavar="KEY=VALUE", help="e.g. epochs=5, mlp=64,32")
    mf.add_argument(
        "--sets", default="", metavar="'K=V K=V'", help="space-separated --set pairs (DAG forms)"
    )
    mf.add_argument("--interactions-version", type=int, help="default: the latest")
    mf.add_argument("--parallelism", type=int, help="Hyperopt trials at once (tuning)")
    return mf


def add_parser(sub: Any) -> None:
    """``shopper simulate|ingest|train|promote|show|recommend``."""
    shop = sub.add_parser("shopper", help="recommendations for shoppers: data, model, gate")
    ssub = shop.add_subparsers(dest="shopper_command", required=True)
    out = output_options("the result is JSON on stdout (always)")

    sim = ssub.add_parser("simulate", parents=[out], help="simulated shoppers over the catalogue")
    sim.add_argument("--users", type=int, default=5000)
    sim.add_argument("--events", type=int, default=500_000)
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--items", type=int, help="only the first N catalogue items (tests)")
    sim.add_argument("--out", help="Parquet file, a path or URI (default: the landing folder)")
    sim.add_argument("--ingest", action="store_true", help="also ingest it")
    sim.set_defaults(func=cmd_simulate)

    ing = ssub.add_parser("ingest", parents=[out], help="ingest interaction files (CSV/Parquet)")
    ing.add_argument("paths", nargs="*", metavar="PATH")
    ing.add_argument("--landing", action="store_true", help="every file in the landing folder")
    ing.add_argument(
        "--no-item-check", action="store_true", help="accept items the catalogue lacks (MovieLens)"
    )
    ing.set_defaults(func=cmd_ingest)

    mf = _mf_options()
    tr = ssub.add_parser("train", parents=[out, mf], help="train, evaluate, register (challenger)")
    tr.add_argument("--horovod", type=int, default=0, metavar="N", help="Horovod ranks (0: none)")
    tr.add_argument(
        "--tune",
        default="auto",
        metavar="auto|N",
        help="train the best of a Hyperopt search: N new trials (0: no search), or auto: the "
        "latest search for data of this shape, a new one of LOOKALIKE_SHOPPER_TUNE_TRIALS "
        "trials when there is none (default)",
    )
    tr.add_argument("--no-baselines", action="store_true", help="skip the ALS baseline")
    tr.add_argument("--no-register", action="store_true")
    tr.add_argument("--eval-users", type=int, help="evaluate on a sample of N users")
    tr.set_defaults(func=cmd_train)

    tu = ssub.add_parser(
        "tune", parents=[out, mf], help="Hyperopt on Spark, objective on the validation split"
    )
    tu.add_argument("--trials", type=int, default=8)
    tu.set_defaults(func=cmd_tune)

    pr = ssub.add_parser("promote", parents=[out], help="gate challenger vs production")
    pr.add_argument("--challenger", default=CHALLENGER, help="alias or version")
    pr.add_argument("--margin", type=float)
    pr.set_defaults(func=cmd_promote)

    sh = ssub.add_parser("show", help="interactions version and the model's aliases")
    sh.set_defaults(func=cmd_show)

    rc = ssub.add_parser("recommend", help="recommendations for one shopper")
    rc.add_argument("user_id")
    rc.add_argument("--k", type=int, default=10)
    rc.add_argument("--blend", type=float, default=0.0, help="weight of visual similarity 0..1")
    rc.add_argument("--include-seen", action="store_true")
    rc.add_argument("--model", default=PRODUCTION, help="alias or version")
    rc.set_defaults(func=cmd_recommend)
