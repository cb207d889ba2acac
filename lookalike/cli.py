"""The ``lookalike`` command line. Thin: parse, validate arguments, call library functions.

Bad arguments exit with status 2 and a message naming the argument; a failed job exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from lookalike.config import get_settings


class UsageError(Exception):
    """A command-line argument is wrong; the message names it."""


def _read_ids(path: Path | None, arg: str) -> list[str]:
    if path is None:
        return []
    if not path.is_file():
        raise UsageError(f"{arg}: file not found: {path}")
    ids = [line.strip() for line in path.read_text().splitlines()]
    return [i for i in ids if i and not i.startswith("#")]


#: Where results go: the real stdout. While a command runs, ``sys.stdout`` is stderr, so
#: library chatter (TF Similarity prints progress with ``print``) never mixes into a JSON
#: result that a script or DAG parses.
_RESULTS: TextIO | None = None  # set by main() while a command runs


def _out(text: str) -> None:
    """A command's result: the only thing written to stdout."""
    print(text, file=_RESULTS or sys.stdout, flush=True)


def _print_ingest(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _out(json.dumps(summary, indent=2))
        return
    s = summary
    before = "none" if s["version_before"] is None else s["version_before"]
    taken = f" ({s['taken_over']} taken over)" if s.get("taken_over") else ""
    _out(
        f"{s['source']}: read {s['rows_read']}, inserted {s['inserted']}, "
        f"updated {s['updated']}{taken}, deleted {s['deleted']}, unchanged {s['unchanged']}, "
        f"rejected {s['rejected']} "
        f"-> catalog version {s['version_after']} (was {before}) in {s['seconds']:.1f} s"
    )
    for r in s["reject_examples"]:
        _out(f"  rejected {r['path'] or r['item_id']}: {r['reason']}")
    if s["rejected"] > len(s["reject_examples"]):
        _out(f"  ... all {s['rejected']} reasons: lookalike catalog rejects --run {s['run_id']}")
    if any(r["reason"].startswith("item id owned by source") for r in s["reject_examples"]):
        _out(
            "  ids another source owns stay its products: --id-prefix PREFIX keeps both feeds, "
            "--take-over [FILE] moves them to this source"
        )


def cmd_ingest(args: argparse.Namespace) -> int:
    from lookalike.catalog import ingest
    from lookalike.spark import spark_session

    settings = get_settings()
    discontinued = _read_ids(args.discontinued, "--discontinued")
    # --take-over alone: every collision of the run; --take-over FILE: only the listed ids.
    take_over = (
        args.take_over
        if isinstance(args.take_over, bool)
        else _read_ids(args.take_over, "--take-over")
    )
    if args.source_kind == "folder":
        if not args.path.is_dir():
            raise UsageError(f"PATH: not a folder: {args.path}")
        if args.id_prefix is not None:
            from lookalike.catalog.sources import check_id_prefix

            try:
                check_id_prefix(args.id_prefix)
            except ValueError as e:
                raise UsageError(f"--id-prefix: {e}") from None
        if args.metadata is not None:
            from lookalike.catalog.sources import read_metadata_header

            try:
                read_metadata_header(args.metadata)
            except (FileNotFoundError, ValueError) as e:
                raise UsageError(f"--metadata: {e}") from None
    elif args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit: must be >= 1, got {args.limit}")

    spark = spark_session(f"lookalike-ingest-{args.source_kind}", settings)
    if args.source_kind == "fashion-mnist":
        summary = ingest.ingest_fashion_mnist(
            spark,
            settings=settings,
            limit=args.limit,
            delete_missing=args.delete_missing,
            discontinued=discontinued,
            take_over=take_over,
        )
    else:
        summary = ingest.ingest_folder(
            spark,
            args.path,
            settings=settings,
            metadata_csv=args.metadata,
            source=args.source,
            delete_missing=args.delete_missing,
            discontinued=discontinued,
            take_over=take_over,
            id_prefix=args.id_prefix or "",
        )
    _print_ingest(summary.to_dict(), args.json)
    _write_summary(summary.to_dict(), args.summary_file)
    return 0


def cmd_catalog_stats(args: argparse.Namespace) -> int:
    from lookalike.catalog.table import catalog_stats

    _out(json.dumps(catalog_stats(get_settings().catalog_path), indent=2, default=str))
    return 0


def cmd_catalog_changes(args: argparse.Namespace) -> int:
    from lookalike.catalog.changes import catalog_changes

    changes = catalog_changes(get_settings().catalog_path, args.since, columns=["item_id"])
    out = changes.summary() | {
        "inserted_ids": changes.inserts.column("item_id").to_pylist()[: args.show],
        "updated_ids": changes.updates.column("item_id").to_pylist()[: args.show],
        "deleted_ids": changes.deletes[: args.show],
    }
    _out(json.dumps(out, indent=2))
    return 0


def cmd_catalog_rejects(args: argparse.Namespace) -> int:
    from deltalake import DeltaTable

    path = get_settings().rejects_path
    if not DeltaTable.is_deltatable(str(path)):
        _out("[]")
        return 0
    rows = DeltaTable(str(path)).to_pyarrow_table().to_pylist()
    if args.run:
        rows = [r for r in rows if r["run_id"] == args.run]
    rows = sorted(rows, key=lambda r: (r["rejected_at"], r["path"] or ""), reverse=True)
    _out(json.dumps(rows[: args.limit], indent=2, default=str))
    return 0


def _train_config(args: argparse.Namespace) -> Any:
    from lookalike.model.config import ConfigError, TrainConfig, parse_overrides

    values: dict[str, Any] = {}
    if args.config:
        if not args.config.is_file():
            raise UsageError(f"--config: file not found: {args.config}")
        try:
            values = json.loads(args.config.read_text())
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
    from lookalike.model.data import EmptyDataError
    from lookalike.model.pipeline import run_training

    cfg = _train_config(args)
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
    _emit(result.to_dict(), args.summary_file)
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from lookalike.model.tune import run_tuning

    cfg = _train_config(args)
    if args.trials < 1:
        raise UsageError(f"--trials: must be >= 1, got {args.trials}")
    if args.parallelism is not None and args.parallelism < 1:
        raise UsageError(f"--parallelism: must be >= 1, got {args.parallelism}")
    result = run_tuning(
        cfg, trials=args.trials, parallelism=args.parallelism, catalog_version=args.catalog_version
    )
    _emit(result, args.summary_file)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from lookalike.model.registry_eval import evaluate_registered

    result = evaluate_registered(
        get_settings(), args.model, catalog_version=args.catalog_version, eval_limit=args.eval_limit
    )
    _emit(result, args.summary_file)
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from lookalike.index.embeddings import embed_catalog
    from lookalike.model.encoder_store import fetch_encoder
    from lookalike.spark import spark_session

    settings = get_settings()
    encoder = fetch_encoder(settings, args.encoder)
    spark = spark_session("lookalike-embed", settings)
    summary = embed_catalog(spark, settings, encoder, args.catalog_version)
    _emit(summary.to_dict(), args.summary_file)
    return 0


def _publish(index_path: str | None, publish: bool) -> dict[str, Any] | None:
    if not (publish and index_path):
        return None
    from lookalike.bundle.registry import publish_bundle

    return publish_bundle(get_settings(), Path(index_path)).to_dict()


def cmd_index_build(args: argparse.Namespace) -> int:
    from lookalike.index.builder import build_full, prune_versions
    from lookalike.model.encoder_store import fetch_encoder
    from lookalike.spark import spark_session

    settings = get_settings()
    encoder = fetch_encoder(settings, args.encoder)
    spark = spark_session("lookalike-index-build", settings)
    result = build_full(settings, encoder, spark=spark, catalog_version=args.catalog_version)
    out = result.to_dict() | {"bundle": _publish(result.path, not args.no_publish)}
    out["pruned"] = prune_versions(settings)
    _emit(out, args.summary_file)
    return 0


def cmd_index_update(args: argparse.Namespace) -> int:
    from lookalike.index.builder import find_version, prune_versions, update_index
    from lookalike.model.encoder_store import fetch_encoder

    settings = get_settings()
    base = find_version(settings, args.base)
    encoder = fetch_encoder(settings, args.encoder) if args.encoder else None
    result = update_index(settings, base=base, encoder=encoder)
    out = result.to_dict() | {"bundle": _publish(result.path, not args.no_publish)}
    out["pruned"] = prune_versions(settings)
    _emit(out, args.summary_file)
    return 0


def cmd_index_list(args: argparse.Namespace) -> int:
    from lookalike.index.builder import list_versions
    from lookalike.index.scann_index import read_manifest

    rows = []
    for path in list_versions(get_settings()):
        m = read_manifest(path)
        rows.append(
            {
                k: m.get(k)
                for k in ("index_version", "kind", "size", "catalog_version", "recall_at_10")
            }
            | {"encoder": f"{m['encoder']['name']}/{m['encoder']['version']}"}
        )
    _out(json.dumps(rows, indent=2))
    return 0


def cmd_index_verify(args: argparse.Namespace) -> int:
    from lookalike.index.builder import find_version
    from lookalike.index.scann_index import verify_version

    path = find_version(get_settings(), args.version)
    manifest = verify_version(path)
    _out(f"{path.name}: {len(manifest.get('files', {}))} files match their checksums")
    return 0


def cmd_bundle_show(args: argparse.Namespace) -> int:
    from lookalike.bundle.registry import describe

    _out(json.dumps(describe(get_settings()), indent=2, default=str))
    return 0


def cmd_bundle_publish(args: argparse.Namespace) -> int:
    from lookalike.index.builder import find_version

    path = find_version(get_settings(), args.index)
    _emit(_publish(str(path), True) or {}, args.summary_file)
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from lookalike.model.promotion import promote
    from lookalike.spark import spark_session

    if args.margin is not None and args.margin < 0:
        raise UsageError(f"--margin: must be >= 0, got {args.margin}")
    settings = get_settings()
    spark = spark_session("lookalike-promote", settings)
    result = promote(
        settings,
        challenger=args.challenger,
        margin=args.margin,
        catalog_version=args.catalog_version,
        spark=spark,
    )
    _emit(result.to_dict(), args.summary_file)
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from lookalike.bundle.registry import rollback

    _emit(rollback(get_settings()), None)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from serving.main import create_app

    settings = get_settings()
    host = args.host or settings.serve_host
    port = args.port or settings.serve_port
    if not 0 < port < 65536:
        raise UsageError(f"--port: must be 1..65535, got {port}")
    uvicorn.run(create_app(settings), host=host, port=port, log_level=args.log_level)
    return 0


def _write_summary(result: dict[str, Any], summary_file: Path | None) -> None:
    """``--summary-file``: the JSON result in a file (spark-submit mixes logs into stdout)."""
    if summary_file:
        summary_file.parent.mkdir(parents=True, exist_ok=True)
        summary_file.write_text(json.dumps(result, indent=2, default=str))


def _emit(result: dict[str, Any], summary_file: Path | None) -> None:
    _out(json.dumps(result, indent=2, default=str))
    _write_summary(result, summary_file)


#: Commands whose result is always JSON accept --json too, so scripts can pass it everywhere.
JSON_HELP = "the result is JSON on stdout (always; logs go to stderr)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lookalike", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    ingest = sub.add_parser("ingest", help="ingest products into the catalogue (Spark)")
    kinds = ingest.add_subparsers(dest="source_kind", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--delete-missing",
        action="store_true",
        help="delete catalogue items of this source that are not in this input",
    )
    common.add_argument(
        "--discontinued", type=Path, metavar="FILE", help="file of item ids to delete, one a line"
    )
    common.add_argument(
        "--take-over",
        nargs="?",
        const=True,
        default=False,
        type=Path,
        metavar="FILE",
        help="move items another source owns to this source: all of this run's collisions, "
        "or only the ids listed in FILE (one a line); without it they are rejected",
    )
    common.add_argument("--json", action="store_true", help="print the summary as JSON")
    common.add_argument(
        "--summary-file",
        type=Path,
        metavar="FILE",
        help="also write the JSON summary here (spark-submit mixes logs into stdout)",
    )
    fm = kinds.add_parser("fashion-mnist", parents=[common], help="the Fashion-MNIST catalogue")
    fm.add_argument("--limit", type=int, help="only the first N records of each split")
    fm.set_defaults(func=cmd_ingest)
    folder = kinds.add_parser("folder", parents=[common], help="a folder of product photos")
    folder.add_argument("path", type=Path, metavar="PATH", help="folder; sub-folders = categories")
    folder.add_argument(
        "--metadata", type=Path, metavar="CSV", help="CSV: item_id,category,path[,split]"
    )
    folder.add_argument("--source", help="source name (default: folder:<folder name>)")
    folder.add_argument(
        "--id-prefix",
        metavar="PREFIX",
        help="put PREFIX in front of every item id of this feed (CSV ids too), so feeds with "
        "overlapping file names coexist",
    )
    folder.set_defaults(func=cmd_ingest)

    catalog = sub.add_parser("catalog", help="inspect the catalogue")
    csub = catalog.add_subparsers(dest="catalog_command", required=True)
    csub.add_parser("stats", help="version, rows, counts per category and split").set_defaults(
        func=cmd_catalog_stats
    )
    ch = csub.add_parser("changes", help="net changes since a Delta version (change data feed)")
    ch.add_argument("--since", type=int, required=True, metavar="VERSION")
    ch.add_argument("--show", type=int, default=20, help="ids listed per kind")
    ch.set_defaults(func=cmd_catalog_changes)
    rj = csub.add_parser("rejects", help="rejected inputs and why")
    rj.add_argument("--run", help="only this ingest run id")
    rj.add_argument("--limit", type=int, default=50)
    rj.set_defaults(func=cmd_catalog_rejects)
    model_opts = argparse.ArgumentParser(add_help=False)
    model_opts.add_argument("--config", type=Path, metavar="JSON", help="training config file")
    model_opts.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override one setting (repeatable)"
    )
    model_opts.add_argument("--catalog-version", type=int, help="default: the latest version")
    model_opts.add_argument("--summary-file", type=Path, metavar="FILE")
    model_opts.add_argument("--json", action="store_true", help=JSON_HELP)
    train = sub.add_parser("train", parents=[model_opts], help="train + evaluate + register")
    train.add_argument(
        "--horovod", type=int, metavar="N", help="data-parallel on N Spark tasks (0: in-process)"
    )
    train.add_argument("--eval-limit", type=int, help="evaluate on the first N test items")
    train.add_argument("--no-register", action="store_true", help="log, but do not register")
    train.set_defaults(func=cmd_train)
    tune = sub.add_parser("tune", parents=[model_opts], help="Hyperopt search on Spark")
    tune.add_argument("--trials", type=int, default=8)
    tune.add_argument("--parallelism", type=int, help="default: LOOKALIKE_TUNE_PARALLELISM")
    tune.set_defaults(func=cmd_tune)
    ev = sub.add_parser("evaluate", help="evaluate a registered encoder on the catalogue")
    ev.add_argument("--model", default="challenger", help="alias or version (default challenger)")
    ev.add_argument("--catalog-version", type=int)
    ev.add_argument("--eval-limit", type=int)
    ev.add_argument("--summary-file", type=Path, metavar="FILE")
    ev.add_argument("--json", action="store_true", help=JSON_HELP)
    ev.set_defaults(func=cmd_evaluate)

    out_opts = argparse.ArgumentParser(add_help=False)
    out_opts.add_argument("--summary-file", type=Path, metavar="FILE")
    out_opts.add_argument("--json", action="store_true", help=JSON_HELP)
    emb = sub.add_parser("embed", parents=[out_opts], help="embed the catalogue (Spark)")
    emb.add_argument("--encoder", default="champion", help="alias or version (default champion)")
    emb.add_argument("--catalog-version", type=int)
    emb.set_defaults(func=cmd_embed)

    index = sub.add_parser("index", help="ScaNN index versions")
    isub = index.add_subparsers(dest="index_command", required=True)
    ib = isub.add_parser(
        "build", parents=[out_opts], help="full build: embed, index, check, publish"
    )
    ib.add_argument("--encoder", default="champion", help="alias or version (default champion)")
    ib.add_argument("--catalog-version", type=int)
    ib.add_argument("--no-publish", action="store_true", help="build only; production stays")
    ib.set_defaults(func=cmd_index_build)
    iu = isub.add_parser(
        "update", parents=[out_opts], help="apply catalogue changes since the last version"
    )
    iu.add_argument("--base", help="index version to start from (default: the latest)")
    iu.add_argument("--encoder", help="must be the base's encoder version (default: it is)")
    iu.add_argument("--no-publish", action="store_true", help="build only; production stays")
    iu.set_defaults(func=cmd_index_update)
    isub.add_parser("list", help="index versions on disk").set_defaults(func=cmd_index_list)
    iv = isub.add_parser("verify", help="check an index version's files against its manifest")
    iv.add_argument("version", nargs="?", help="default: the latest")
    iv.set_defaults(func=cmd_index_verify)

    bundle = sub.add_parser("bundle", help="the lookalike-recommender bundle in MLflow")
    bsub = bundle.add_subparsers(dest="bundle_command", required=True)
    bsub.add_parser("show", help="the production bundle").set_defaults(func=cmd_bundle_show)
    bp = bsub.add_parser("publish", parents=[out_opts], help="publish an index version")
    bp.add_argument("--index", help="index version (default: the latest)")
    bp.set_defaults(func=cmd_bundle_publish)

    pr = sub.add_parser(
        "promote", parents=[out_opts], help="gate challenger vs champion; index; production"
    )
    pr.add_argument("--challenger", default="challenger", help="alias or version")
    pr.add_argument("--margin", type=float, help="default: LOOKALIKE_PROMOTE_MARGIN")
    pr.add_argument("--catalog-version", type=int)
    pr.set_defaults(func=cmd_promote)
    sub.add_parser(
        "rollback", help="move production back to the previous bundle version"
    ).set_defaults(func=cmd_rollback)
    sv = sub.add_parser("serve", help="run the recommendation service (uvicorn)")
    sv.add_argument("--host", help="default: LOOKALIKE_SERVE_HOST (127.0.0.1)")
    sv.add_argument("--port", type=int, help="default: LOOKALIKE_SERVE_PORT (8000)")
    sv.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sv.set_defaults(func=cmd_serve)

    from lookalike.shopper.commands import add_parser as add_shopper

    add_shopper(sub)
    return p


def _known_errors() -> tuple[type[BaseException], ...]:
    """Failures reported as one line (exit 1), not a traceback: the message says it all."""
    from lookalike.bundle.recommender import BundleCheckError
    from lookalike.bundle.registry import BundleError
    from lookalike.catalog.table import CatalogError
    from lookalike.index.builder import IndexBuildError
    from lookalike.index.scann_index import IndexVersionError, RecallTooLow
    from lookalike.model.encoder_store import EncoderNotFound
    from lookalike.model.promotion import PromotionError
    from lookalike.shopper.data import EmptyInteractions
    from lookalike.shopper.interactions import InteractionsError

    return (
        InteractionsError,
        EmptyInteractions,
        CatalogError,
        FileNotFoundError,
        IndexBuildError,
        IndexVersionError,
        RecallTooLow,
        EncoderNotFound,
        BundleError,
        BundleCheckError,
        PromotionError,
    )


def main(argv: Sequence[str] | None = None) -> int:
    global _RESULTS
    parser = build_parser()
    args = parser.parse_args(argv)
    _RESULTS = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return args.func(args)
    except UsageError as e:
        parser.error(str(e))
    except Exception as e:
        if isinstance(e, _known_errors()):
            print(f"lookalike: error: {e}", file=sys.stderr)
            return 1
        raise
    finally:
        _RESULTS = None
    return 0


if __name__ == "__main__":
    # `python -m lookalike.cli`: run the imported module's main, so the errors other modules
    # raise (lookalike.cli.UsageError) are the classes main() catches, not __main__'s copies.
    from lookalike.cli import main as module_main

    sys.exit(module_main())
