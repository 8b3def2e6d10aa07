"""`qa`: build the index, inspect it, and search it from the command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from qa.config import Settings
from qa.store import IndexUnusable


def _quiet_libraries() -> None:
    # The bundled model needs no hub; a user who wants one can set HF_HUB_OFFLINE=0.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings()
    if os.environ.get("QA_MODEL"):
        settings = replace(settings, embedding_model=os.environ["QA_MODEL"])
    if getattr(args, "model", None):
        settings = replace(settings, embedding_model=args.model)
    if getattr(args, "index", None):
        settings = replace(settings, index_dir=Path(args.index))
    if getattr(args, "corpus", None):
        settings = replace(settings, corpus_dir=Path(args.corpus))
    return settings


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _index_build(args: argparse.Namespace) -> int:
    from qa.service import build

    settings = _settings(args)
    if not settings.corpus_dir.is_dir():
        print(f"error: corpus folder {settings.corpus_dir} does not exist", file=sys.stderr)
        return 2
    report = build(
        settings,
        full=args.full,
        progress=sys.stderr.isatty() and not args.json,
        on_skip=lambda skip: print(skip, file=sys.stderr),
    )
    if args.json:
        _print_json(report.to_dict())
    else:
        print(report.summary())
    return 0


def _index_stats(args: argparse.Namespace) -> int:
    from qa.store import IndexReader

    reader = IndexReader.open(_settings(args).index_dir)
    manifest = reader.manifest
    stats = {
        "articles": manifest.articles,
        "chunks": manifest.chunks,
        "model": manifest.model,
        "dimension": manifest.dimension,
        "chunk_tokens": manifest.chunk_tokens,
        "overlap_tokens": manifest.overlap_tokens,
        "built_at": manifest.built_at,
        "size_bytes": reader.size_on_disk(),
    }
    if args.json:
        _print_json(stats)
    else:
        for key, value in stats.items():
            print(f"{key:>15}: {value}")
    return 0


def _format_hit(rank: int, hit: Any) -> str:
    meta = ", ".join(x for x in (hit.source, hit.published) if x)
    header = f"[{rank}] {hit.title}" + (f" ({meta})" if meta else "")
    location = f"{hit.article_id} chars {hit.start}-{hit.end}, score {hit.score:.3f}"
    return f"{header}\n    {location}\n    {' '.join(hit.text.split())}"


def _search(args: argparse.Namespace) -> int:
    from qa.service import Assistant, make_embedder

    settings = _settings(args)
    assistant = Assistant.load(settings.index_dir, embedder=make_embedder(settings))
    if args.query is not None:
        hits = assistant.search(args.query, k=args.k)
        if args.json:
            _print_json({"query": args.query, "hits": [h.to_dict() for h in hits]})
        else:
            print("\n\n".join(_format_hit(i, h) for i, h in enumerate(hits, 1)) or "no hits")
        return 0
    stats = assistant.stats()
    print(f"Searching {stats['articles']} articles ({stats['chunks']} passages). Empty line quits.")
    while True:
        try:
            query = input("search> ").strip()
        except EOFError:
            break
        if not query:
            break
        hits = assistant.search(query, k=args.k)
        print("\n\n".join(_format_hit(i, h) for i, h in enumerate(hits, 1)) or "no hits")
    return 0


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--index", help="index folder (default: index)")
    common.add_argument("--model", help="sentence-transformers model name or path")
    common.add_argument("--json", action="store_true", help="print JSON for scripts")

    parser = argparse.ArgumentParser(prog="qa", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    index = commands.add_parser("index", help="build or inspect the index")
    index_commands = index.add_subparsers(dest="index_command", required=True)
    build = index_commands.add_parser("build", parents=[common], help="build or update the index")
    build.add_argument("--corpus", help="articles folder (default: corpus)")
    build.add_argument("--full", action="store_true", help="re-embed every article")
    build.set_defaults(handler=_index_build)
    stats = index_commands.add_parser("stats", parents=[common], help="counts, model, size")
    stats.set_defaults(handler=_index_stats)

    search = commands.add_parser("search", parents=[common], help="search the index")
    search.add_argument("query", nargs="?", help="omit for an interactive prompt")
    search.add_argument("-k", type=int, default=5, help="number of passages (default 5)")
    search.set_defaults(handler=_search)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _quiet_libraries()
    try:
        return int(args.handler(args))
    except IndexUnusable as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
