"""``lookalike ingest ...`` and ``lookalike catalog ...``: products in, and a look at them."""

from __future__ import annotations

import argparse
import json
from typing import Any

from lookalike.cli.output import UsageError, out, write_summary
from lookalike.config import get_settings


def read_ids(path: str | None, arg: str) -> list[str]:
    """The item ids in ``path`` (a local path or a store URI), one a line (``#`` comments and
    blank lines skipped)."""
    from lookalike import storage

    if path is None:
        return []
    if not storage.is_file(path):
        raise UsageError(f"{arg}: file not found: {path}")
    ids = [line.strip() for line in storage.read_bytes(path).decode().splitlines()]
    return [i for i in ids if i and not i.startswith("#")]


def print_ingest(summary: dict[str, Any], as_json: bool) -> None:
    """An ingest summary: one line and its rejects, or the JSON with ``--json``."""
    if as_json:
        out(json.dumps(summary, indent=2))
        return
    s = summary
    before = "none" if s["version_before"] is None else s["version_before"]
    taken = f" ({s['taken_over']} taken over)" if s.get("taken_over") else ""
    out(
        f"{s['source']}: read {s['rows_read']}, inserted {s['inserted']}, "
        f"updated {s['updated']}{taken}, deleted {s['deleted']}, unchanged {s['unchanged']}, "
        f"rejected {s['rejected']} "
        f"-> catalog version {s['version_after']} (was {before}) in {s['seconds']:.1f} s"
    )
    embed = s.get("embed")
    if embed is not None:
        out(
            f"  not embedded: {embed['skipped']}"
            if "skipped" in embed
            else f"  embedded {embed['embedded']}, deleted {embed['deleted']} with "
            f"{embed['encoder']} -> embeddings version {embed['table_version']}"
        )
    for r in s["reject_examples"]:
        out(f"  rejected {r['path'] or r['item_id']}: {r['reason']}")
    if s["rejected"] > len(s["reject_examples"]):
        out(f"  ... all {s['rejected']} reasons: lookalike catalog rejects --run {s['run_id']}")
    if any(r["reason"].startswith("item id owned by source") for r in s["reject_examples"]):
        out(
            "  ids another source owns stay its products: --id-prefix PREFIX keeps both feeds, "
            "--take-over [FILE] moves them to this source"
        )


def _check_folder_args(args: argparse.Namespace) -> None:
    from lookalike import storage

    if storage.is_file(args.path) or not storage.exists(args.path):
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


def cmd_ingest(args: argparse.Namespace) -> int:
    """``lookalike ingest fashion-mnist|folder``: one Spark ingest into the catalogue."""
    from lookalike.catalog import ingest
    from lookalike.spark import spark_session

    settings = get_settings()
    discontinued = read_ids(args.discontinued, "--discontinued")
    # --take-over alone: every collision of the run; --take-over FILE: only the listed ids.
    take_over = (
        args.take_over
        if isinstance(args.take_over, bool)
        else read_ids(args.take_over, "--take-over")
    )
    if args.source_kind == "folder":
        _check_folder_args(args)
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
    result = summary.to_dict()
    if args.embed_served:
        from lookalike.workflows.catalog import embed_for_serving

        result["embed"] = embed_for_serving(spark, settings)
    print_ingest(result, args.json)
    write_summary(result, args.summary_file)
    return 0


def cmd_catalog_stats(args: argparse.Namespace) -> int:
    """``lookalike catalog stats``: version, rows, counts per category and split."""
    from lookalike.catalog.table import catalog_stats

    out(json.dumps(catalog_stats(get_settings().catalog_uri), indent=2, default=str))
    return 0


def cmd_catalog_changes(args: argparse.Namespace) -> int:
    """``lookalike catalog changes``: net changes since a Delta version (first ``--show`` ids)."""
    from lookalike.catalog.changes import catalog_changes

    changes = catalog_changes(get_settings().catalog_uri, args.since, columns=["item_id"])
    result = changes.summary() | {
        "inserted_ids": changes.inserts.column("item_id").to_pylist()[: args.show],
        "updated_ids": changes.updates.column("item_id").to_pylist()[: args.show],
        "deleted_ids": changes.deletes[: args.show],
    }
    out(json.dumps(result, indent=2))
    return 0


def cmd_catalog_rejects(args: argparse.Namespace) -> int:
    """``lookalike catalog rejects``: rejected inputs and why (one run with ``--run``)."""
    from lookalike.catalog.table import delta_table, is_table

    uri = get_settings().rejects_uri
    if not is_table(uri):
        out("[]")
        return 0
    rows = delta_table(uri).to_pyarrow_table().to_pylist()
    if args.run:
        rows = [r for r in rows if r["run_id"] == args.run]
    rows = sorted(rows, key=lambda r: (r["rejected_at"], r["path"] or ""), reverse=True)
    out(json.dumps(rows[: args.limit], indent=2, default=str))
    return 0


def _ingest_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--delete-missing",
        action="store_true",
        help="delete catalogue items of this source that are not in this input",
    )
    common.add_argument(
        "--discontinued", metavar="FILE", help="file of item ids to delete, one a line"
    )
    common.add_argument(
        "--take-over",
        nargs="?",
        const=True,
        default=False,
        metavar="FILE",
        help="move items another source owns to this source: all of this run's collisions, "
        "or only the ids listed in FILE (one a line); without it they are rejected",
    )
    common.add_argument(
        "--embed-served",
        action="store_true",
        help="then embed what changed with the served bundle's encoder, in the same Spark "
        "session: running services apply it from the change feed within seconds",
    )
    common.add_argument("--json", action="store_true", help="print the summary as JSON")
    common.add_argument(
        "--summary-file",
        metavar="FILE",
        help="also write the JSON summary here (spark-submit mixes logs into stdout)",
    )
    return common


def add_parser(sub: Any) -> None:
    """``ingest fashion-mnist|folder`` and ``catalog stats|changes|rejects``."""
    ingest = sub.add_parser(
        "ingest", help="add, update and delete products in the catalogue (Spark)"
    )
    kinds = ingest.add_subparsers(dest="source_kind", required=True)
    common = _ingest_options()
    fm = kinds.add_parser("fashion-mnist", parents=[common], help="the Fashion-MNIST catalogue")
    fm.add_argument("--limit", type=int, help="only the first N records of each split")
    fm.set_defaults(func=cmd_ingest)
    folder = kinds.add_parser("folder", parents=[common], help="a folder of product photos")
    folder.add_argument(
        "path", metavar="PATH", help="folder or store URI (s3://...); sub-folders = categories"
    )
    folder.add_argument("--metadata", metavar="CSV", help="CSV: item_id,category,path[,split]")
    folder.add_argument("--source", help="source name (default: folder:<folder name>)")
    folder.add_argument(
        "--id-prefix",
        metavar="PREFIX",
        help="put PREFIX in front of every item id of this feed (CSV ids too), so feeds with "
        "overlapping file names coexist",
    )
    folder.set_defaults(func=cmd_ingest)

    catalog = sub.add_parser(
        "catalog", help="the catalogue: its version and counts, changes, rejected inputs"
    )
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
