"""``lookalike embed|index|bundle|promote|rollback``: embeddings, ScaNN indexes, the bundle."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lookalike.cli.output import UsageError, emit, out, output_options
from lookalike.config import get_settings
from lookalike.registry.aliases import CHALLENGER, CHAMPION


def cmd_embed(args: argparse.Namespace) -> int:
    """``lookalike embed``: embed the catalogue with one encoder version (Spark)."""
    from lookalike.registry.encoders import fetch_encoder
    from lookalike.similarity.embeddings import embed_catalog
    from lookalike.spark import spark_session

    settings = get_settings()
    encoder = fetch_encoder(settings, args.encoder)
    spark = spark_session("lookalike-embed", settings)
    summary = embed_catalog(spark, settings, encoder, args.catalog_version)
    emit(summary.to_dict(), args.summary_file)
    return 0


def _publish(index_path: str | None, publish: bool) -> dict[str, Any] | None:
    if not (publish and index_path):
        return None
    from lookalike.similarity.registry import publish_bundle

    return publish_bundle(get_settings(), Path(index_path)).to_dict()


def cmd_index_build(args: argparse.Namespace) -> int:
    """``lookalike index build``: a full index version (publishes the bundle unless
    ``--no-publish``), then prune old versions."""
    from lookalike.index.versions import prune_versions
    from lookalike.registry.encoders import fetch_encoder
    from lookalike.similarity.index import build_full
    from lookalike.spark import spark_session

    settings = get_settings()
    encoder = fetch_encoder(settings, args.encoder)
    spark = spark_session("lookalike-index-build", settings)
    result = build_full(settings, encoder, spark=spark, catalog_version=args.catalog_version)
    summary = result.to_dict() | {"bundle": _publish(result.path, not args.no_publish)}
    summary["pruned"] = prune_versions(settings)
    emit(summary, args.summary_file)
    return 0


def cmd_index_update(args: argparse.Namespace) -> int:
    """``lookalike index update``: an incremental version from the change feed, by default
    from the index the service serves (publishes the bundle unless ``--no-publish``), then
    prune old versions."""
    from lookalike import locks
    from lookalike.index.versions import prune_versions
    from lookalike.registry.encoders import fetch_encoder
    from lookalike.similarity.index import update_index

    settings = get_settings()
    encoder = fetch_encoder(settings, args.encoder) if args.encoder else None
    # the base is resolved under the index writers' lease, held until the bundle is published:
    # a second update started meanwhile starts from what this one served
    with locks.writer_lease(settings, locks.INDEXES, "incremental index update and publish"):
        result = update_index(settings, base=args.base, encoder=encoder)
        bundle = _publish(result.path, not args.no_publish)
    summary = result.to_dict() | {"bundle": bundle}
    summary["pruned"] = prune_versions(settings)
    emit(summary, args.summary_file)
    return 0


def cmd_index_list(args: argparse.Namespace) -> int:
    """``lookalike index list``: the published index versions and their manifests' key
    facts."""
    from lookalike.index.versions import list_versions, read_manifest

    settings = get_settings()
    rows = []
    for name in list_versions(settings):
        m = read_manifest(settings, name)
        rows.append(
            {
                k: m.get(k)
                for k in ("index_version", "kind", "size", "catalog_version", "recall_at_10")
            }
            | {"encoder": f"{m['encoder']['name']}/{m['encoder']['version']}"}
        )
    out(json.dumps(rows, indent=2))
    return 0


def cmd_index_verify(args: argparse.Namespace) -> int:
    """``lookalike index verify``: check an index version's files against its checksums."""
    from lookalike.index.scann_index import verify_version
    from lookalike.index.versions import find_version

    path = find_version(get_settings(), args.version)
    manifest = verify_version(path)
    out(f"{path.name}: {len(manifest.get('files', {}))} files match their checksums")
    return 0


def cmd_bundle_show(args: argparse.Namespace) -> int:
    """``lookalike bundle show``: the production bundle and its versions."""
    from lookalike.similarity.registry import describe

    out(json.dumps(describe(get_settings()), indent=2, default=str))
    return 0


def cmd_bundle_publish(args: argparse.Namespace) -> int:
    """``lookalike bundle publish``: publish an index version as the production bundle."""
    from lookalike.index.versions import find_version

    path = find_version(get_settings(), args.index)
    emit(_publish(str(path), True) or {}, args.summary_file)
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    """``lookalike promote``: gate the challenger encoder; a winner gets its full index, bundle
    and the ``champion`` and ``production`` aliases."""
    from lookalike.similarity.promotion import promote
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
    emit(result.to_dict(), args.summary_file)
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    """``lookalike rollback``: point the served alias back at the previous bundle."""
    from lookalike.similarity.registry import rollback

    emit(rollback(get_settings()), None)
    return 0


def add_parser(sub: Any) -> None:
    """``embed``, ``index build|update|list|verify``, ``bundle show|publish``, ``promote``,
    ``rollback``."""
    out_opts = output_options()
    emb = sub.add_parser(
        "embed", parents=[out_opts], help="embed the catalogue with an encoder (Spark)"
    )
    emb.add_argument("--encoder", default=CHAMPION, help=f"alias or version (default {CHAMPION})")
    emb.add_argument("--catalog-version", type=int)
    emb.set_defaults(func=cmd_embed)

    index = sub.add_parser("index", help="ScaNN index versions: build, update, list, verify")
    isub = index.add_subparsers(dest="index_command", required=True)
    ib = isub.add_parser(
        "build", parents=[out_opts], help="full build: embed, index, check, publish"
    )
    ib.add_argument("--encoder", default=CHAMPION, help=f"alias or version (default {CHAMPION})")
    ib.add_argument("--catalog-version", type=int)
    ib.add_argument("--no-publish", action="store_true", help="build only; production stays")
    ib.set_defaults(func=cmd_index_build)
    iu = isub.add_parser(
        "update", parents=[out_opts], help="apply catalogue changes since the last version"
    )
    iu.add_argument(
        "--base",
        default="served",
        help="index version to start from: a version (v000003), `served` (the default: the "
        "index of the bundle the service is told to serve, or the latest while none is) or "
        "`latest` (the newest on the store, published or not)",
    )
    iu.add_argument("--encoder", help="must be the base's encoder version (default: it is)")
    iu.add_argument("--no-publish", action="store_true", help="build only; production stays")
    iu.set_defaults(func=cmd_index_update)
    isub.add_parser("list", help="index versions on disk").set_defaults(func=cmd_index_list)
    iv = isub.add_parser("verify", help="check an index version's files against its manifest")
    iv.add_argument("version", nargs="?", help="default: the latest")
    iv.set_defaults(func=cmd_index_verify)

    bundle = sub.add_parser(
        "bundle", help="what the service serves: show it, publish an index version"
    )
    bsub = bundle.add_subparsers(dest="bundle_command", required=True)
    bsub.add_parser("show", help="the production bundle").set_defaults(func=cmd_bundle_show)
    bp = bsub.add_parser("publish", parents=[out_opts], help="publish an index version")
    bp.add_argument("--index", help="index version (default: the latest)")
    bp.set_defaults(func=cmd_bundle_publish)

    pr = sub.add_parser(
        "promote",
        parents=[out_opts],
        help="gate challenger vs champion; a winner is indexed and served",
    )
    pr.add_argument("--challenger", default=CHALLENGER, help="alias or version")
    pr.add_argument("--margin", type=float, help="default: LOOKALIKE_PROMOTE_MARGIN")
    pr.add_argument("--catalog-version", type=int)
    pr.set_defaults(func=cmd_promote)
    sub.add_parser(
        "rollback", help="move production back to the previous bundle version"
    ).set_defaults(func=cmd_rollback)
