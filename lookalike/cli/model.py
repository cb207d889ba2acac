"""``lookalike train|tune|evaluate``: the image encoder."""

from __future__ import annotations

import argparse
import json
from typing import Any

from lookalike.cli.output import JSON_HELP, UsageError, emit, output_options
from lookalike.config import get_settings
from lookalike.registry.aliases import CHALLENGER


def train_config(args: argparse.Namespace) -> Any:
    """The ``TrainConfig`` of ``--config`` and ``--set``; a bad value names its argument."""
    from lookalike.similarity.config import ConfigError, TrainConfig, parse_overrides

    values: dict[str, Any] = {}
    if args.config:
        from lookalike import storage

        if not storage.is_file(args.config):
            raise UsageError(f"--config: file not found: {args.config}")
        try:
            values = json.loads(storage.read_bytes(args.config))
        except json.JSONDecodeError as e:
            raise UsageError(f"--config: not valid JSON: {e}") from None
    try:
        values |= parse_overrides(args.set or [])
    except ConfigError as e:
        raise UsageError(str(e)) from None
    try:
        return TrainConfig.from_dict(values)
    except (ConfigError, TypeError) as e:
        raise UsageError(f"--set/--config: {e}") from None


def cmd_train(args: argparse.Namespace) -> int:
    """``lookalike train``: train, evaluate and register an encoder (Horovod on Spark with
    ``--horovod N``)."""
    from lookalike.similarity.data import EmptyDataError
    from lookalike.similarity.training import run_training

    cfg = train_config(args)
    if args.horovod is not None and args.horovod < 0:
        raise UsageError(f"--horovod: must be >= 0, got {args.horovod}")
    spark = None
    if args.horovod:
        from lookalike.spark import spark_session

        spark = spark_session("lookalike-train")
    try:
        result = run_training(
            cfg,
            settings=get_settings(),
            catalog_version=args.catalog_version,
            num_proc=args.horovod or None,
            spark=spark,
            register_model=not args.no_register,
            eval_limit=args.eval_limit,
        )
    except EmptyDataError as e:
        raise UsageError(f"data: {e}") from None
    emit(result.to_dict(), args.summary_file)
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    """``lookalike tune``: Hyperopt search on Spark; prints the best parameters."""
    from lookalike.similarity.tuning import run_tuning

    cfg = train_config(args)
    if args.trials < 1:
        raise UsageError(f"--trials: must be >= 1, got {args.trials}")
    if args.parallelism is not None and args.parallelism < 1:
        raise UsageError(f"--parallelism: must be >= 1, got {args.parallelism}")
    result = run_tuning(
        cfg, trials=args.trials, parallelism=args.parallelism, catalog_version=args.catalog_version
    )
    emit(result.to_dict(), args.summary_file)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``lookalike evaluate``: evaluate a registered encoder on the catalogue."""
    from lookalike.similarity.registry_eval import evaluate_registered

    result = evaluate_registered(
        get_settings(), args.model, catalog_version=args.catalog_version, eval_limit=args.eval_limit
    )
    emit(result, args.summary_file)
    return 0


def add_parser(sub: Any) -> None:
    """``train``, ``tune`` and ``evaluate``."""
    model_opts = argparse.ArgumentParser(add_help=False)
    model_opts.add_argument(
        "--config", metavar="JSON", help="training config file (a path or a store URI)"
    )
    model_opts.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override one setting (repeatable)"
    )
    model_opts.add_argument("--catalog-version", type=int, help="default: the latest version")
    parents = [model_opts, output_options()]

    train = sub.add_parser(
        "train", parents=parents, help="train an encoder, evaluate it, register it as challenger"
    )
    train.add_argument(
        "--horovod", type=int, metavar="N", help="data-parallel on N Spark tasks (0: in-process)"
    )
    train.add_argument("--eval-limit", type=int, help="evaluate on the first N test items")
    train.add_argument("--no-register", action="store_true", help="log, but do not register")
    train.set_defaults(func=cmd_train)
    tune = sub.add_parser(
        "tune", parents=parents, help="search training settings (Hyperopt on Spark)"
    )
    tune.add_argument("--trials", type=int, default=8)
    tune.add_argument("--parallelism", type=int, help="default: LOOKALIKE_TUNE_PARALLELISM")
    tune.set_defaults(func=cmd_tune)
    ev = sub.add_parser("evaluate", help="evaluate a registered encoder on the catalogue")
    ev.add_argument("--model", default=CHALLENGER, help=f"alias or version (default {CHALLENGER})")
    ev.add_argument("--catalog-version", type=int)
    ev.add_argument("--eval-limit", type=int)
    ev.add_argument("--summary-file", metavar="FILE", help="a local path or a store URI")
    ev.add_argument("--json", action="store_true", help=JSON_HELP)
    ev.set_defaults(func=cmd_evaluate)
