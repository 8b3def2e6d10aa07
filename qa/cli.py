"""`qa`: build the index, inspect it, and search it from the command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qa.config import Settings
from qa.limits import MAX_FILE_BYTES
from qa.news.dates import describe, format_day
from qa.store import IndexUnusable


def _quiet_libraries() -> None:
    # The bundled model needs no hub; a user who wants one can set HF_HUB_OFFLINE=0.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from the chat


def _settings(args: argparse.Namespace) -> Settings:
    """The environment's settings (`Settings.from_env`), then the command's flags."""
    return Settings.from_env().with_values(
        embedding_model=getattr(args, "model", None),
        index_dir=getattr(args, "index", None),
        corpus_dir=getattr(args, "corpus", None),
        reader=getattr(args, "reader", None),
        reader_model=getattr(args, "reader_model", None),
        reader_precision=getattr(args, "reader_precision", None),
        cluster=getattr(args, "cluster", None),
        shards=getattr(args, "shards", None),
        cluster_workers=getattr(args, "workers", None),
        shard_replicas=getattr(args, "replicas", None),
    )


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


def _index_compact(args: argparse.Namespace) -> int:
    from qa.indexing import compact_index

    manifest = compact_index(_settings(args).index_dir)
    if args.json:
        _print_json(manifest.to_dict())
    else:
        print(
            f"compacted: {manifest.chunks:,} chunk vectors and {manifest.sentence_vectors:,} "
            "sentence vectors, one segment each"
        )
    return 0


def _index_stats(args: argparse.Namespace) -> int:
    from qa.store import open_index

    stats = open_index(_settings(args).index_dir).stats()
    if args.json:
        _print_json(stats)
    else:
        for key, value in stats.items():
            if key != "parts":
                print(f"{key:>15}: {value}")
        for name, part in stats["parts"].items():
            memory = f", {part['memory_bytes']:,} bytes in memory" if "memory_bytes" in part else ""
            rows = f"{part['rows']:,} rows, " if "rows" in part else ""
            deleted = f" ({part['deleted_rows']:,} deleted rows)" if "deleted_rows" in part else ""
            segments = f"{part['segments']} segments{deleted}, " if "segments" in part else ""
            print(
                f"{name:>15}: {part['kind']}; {rows}{segments}"
                f"{part.get('disk_bytes', 0):,} bytes on disk{memory}"
            )
    return 0


def _format_hit(rank: int, hit: Any) -> str:
    meta = ", ".join(x for x in (hit.source, hit.published) if x)
    header = f"[{rank}] {hit.title}" + (f" ({meta})" if meta else "")
    location = f"{hit.article_id} chars {hit.start}-{hit.end}, score {hit.score:.3f}"
    return f"{header}\n    {location}\n    {' '.join(hit.text.split())}"


def _search(args: argparse.Namespace) -> int:
    from qa.service import Assistant

    settings = _settings(args)
    assistant = Assistant.load(settings.index_dir, settings=settings)
    search_options: dict[str, Any] = {
        "k": args.k,
        "mode": args.mode,
        "source": args.source,
        "published_after": args.after,
        "published_before": args.before,
    }
    if args.query is not None:
        hits = assistant.search(args.query, **search_options)
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
        hits = assistant.search(query, **search_options)
        print("\n\n".join(_format_hit(i, h) for i, h in enumerate(hits, 1)) or "no hits")
    return 0


def _index_watch(args: argparse.Namespace) -> int:
    import contextlib
    import threading

    from qa.components import make_embedder
    from qa.live import watch_corpus

    settings = _settings(args)
    if not settings.corpus_dir.is_dir():
        print(f"error: corpus folder {settings.corpus_dir} does not exist", file=sys.stderr)
        return 2

    def on_report(report: Any) -> None:
        for skip in report.skipped:
            print(skip, file=sys.stderr, flush=True)
        if args.json:
            print(json.dumps(report.to_dict(), ensure_ascii=False), flush=True)
        else:
            print(report.summary(), flush=True)

    def on_error(error: Exception) -> None:
        print(f"error: {error}", file=sys.stderr, flush=True)

    print(
        f"watching {settings.corpus_dir} for {settings.index_dir}; Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    # Ctrl-C ends the watch; a build cut short leaves the previous index in place.
    with contextlib.suppress(KeyboardInterrupt):
        watch_corpus(
            settings, make_embedder(settings), on_report, threading.Event(), on_error=on_error
        )
    print("stopped watching", file=sys.stderr, flush=True)
    return 0


def _corpus_of(index_dir: Path) -> Path | None:
    """The corpus folder the index's last build read, when it still exists."""
    from qa.store import read_any_manifest

    manifest = read_any_manifest(index_dir)
    recorded = manifest.last_build.get("corpus") if manifest else None
    return Path(recorded) if recorded and Path(recorded).is_dir() else None


def _serve(args: argparse.Namespace) -> int:
    from qa.memory import tune_malloc

    # First, before the models and the request threads allocate: keeps RSS flat over rebuilds.
    tune_malloc()

    import uvicorn

    from qa.application import make_application
    from ui.app import create_app

    settings = _settings(args).with_values(max_file_bytes=args.max_upload_bytes)
    if not args.corpus:
        # Keep serving the corpus the index was built from, not whatever ./corpus holds.
        built_from = _corpus_of(settings.index_dir)
        if built_from is not None:
            settings = settings.with_values(corpus_dir=built_from)
    application = make_application(settings)
    report = application.updater.last_report
    if report is not None:
        for skip in report.skipped:
            print(skip, file=sys.stderr)
        print(report.summary(), file=sys.stderr)
    app = create_app(settings, application=application)
    application.live.get().ask("warm up")  # load the models before the first request
    admin = "enabled" if settings.admin_token else "disabled (set QA_ADMIN_TOKEN to enable)"
    print(
        f"serving {settings.index_dir} on http://{args.host}:{args.port}; admin routes {admin}",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def format_answer(answer: Any) -> str:
    """The answer for a terminal: short answer, the sentence with it marked, the sources."""
    if not answer.found:
        lines = ["No answer in the articles.", "", "Closest passages:"]
        lines += [_format_hit(i, h) for i, h in enumerate(answer.related[:3], 1)]
        return "\n".join(lines)
    marks = "".join(f"[{i}]" for i in range(1, len(answer.citations) + 1))
    first = answer.citations[0]
    local_start, local_end = first.span_start - first.start, first.span_end - first.start
    sentence = answer.sentence
    if local_end > local_start:
        sentence = f"{sentence[:local_start]}**{sentence[local_start:local_end]}**"
        sentence += answer.sentence[local_end:]
    lines = [answer.text or answer.sentence, f"  “{sentence}” {marks}"]
    if answer.sources_agreeing > 1:
        lines.append(f"  {answer.sources_agreeing} sources agree. {answer.corroboration}.")
    lines.append(f"  As of {format_day(answer.as_of)}." if answer.as_of else "  Sources undated.")
    for disagreement in answer.disagreements:
        outlets = ", ".join(c.source or c.article_id for c in disagreement.citations)
        lines.append(f"  Outlets differ: {outlets} says {disagreement.text}.")
    lines.append("")
    for i, citation in enumerate(answer.citations, 1):
        published = citation.published or "undated"
        meta = ", ".join(x for x in (citation.source, published, citation.url) if x)
        lines.append(f"[{i}] {citation.title}" + (f" — {meta}" if meta else ""))
        lines.append(f"    {citation.article_id}, characters {citation.start}-{citation.end}")
        if citation.speaker is not None:
            lines.append(f"    quotes {citation.speaker.name}")
        lines += [f"    {describe(mention)}" for mention in citation.dates]
    return "\n".join(lines)


def _ask(args: argparse.Namespace) -> int:
    from qa.service import Assistant

    settings = _settings(args)
    assistant = Assistant.load(settings.index_dir, settings=settings)
    options: dict[str, Any] = {
        "k": args.k,
        "source": args.source,
        "published_after": args.after,
        "published_before": args.before,
    }
    if args.file:
        lines = Path(args.file).read_text(encoding="utf-8").splitlines()
        for question in (line.strip() for line in lines):
            if question:
                answer = assistant.ask(question, **options)
                print(json.dumps(answer.to_dict(), ensure_ascii=False), flush=True)
        return 0
    if not args.question:
        print("error: give a question, or --file with one question per line", file=sys.stderr)
        return 2
    answer = assistant.ask(args.question, **options)
    if args.json:
        _print_json(answer.to_dict())
    else:
        print(format_answer(answer))
    return 0


def _train_reader(args: argparse.Namespace) -> int:
    from qa.training.reader import config_from, train

    train(config_from(args))
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
    _cluster_arguments(build)
    build.add_argument(
        "--shards", type=int, help="write a sharded index of N shards (default 3 with --cluster)"
    )
    build.add_argument(
        "--workers", type=int, default=2, help="embedding workers on the cluster (default 2)"
    )
    build.set_defaults(handler=_index_build)
    stats = index_commands.add_parser("stats", parents=[common], help="counts, model, size")
    stats.set_defaults(handler=_index_stats)
    compact = index_commands.add_parser(
        "compact", parents=[common], help="merge the segments, dropping deleted rows"
    )
    compact.set_defaults(handler=_index_compact)
    watch = index_commands.add_parser(
        "watch", parents=[common], help="rebuild whenever files in the corpus change"
    )
    watch.add_argument("--corpus", help="articles folder (default: corpus)")
    watch.set_defaults(handler=_index_watch)

    search = commands.add_parser("search", parents=[common], help="search the index")
    search.add_argument("query", nargs="?", help="omit for an interactive prompt")
    search.add_argument("-k", type=int, default=5, help="number of passages (default 5)")
    search.add_argument("--mode", choices=["hybrid", "dense", "lexical"], default="hybrid")
    search.add_argument("--source", help="only this outlet")
    search.add_argument("--after", help="only articles published on or after this date")
    search.add_argument("--before", help="only articles published on or before this date")
    search.set_defaults(handler=_search)

    ask = commands.add_parser("ask", parents=[common], help="answer a question from the index")
    ask.add_argument("question", nargs="?", help="the question")
    ask.add_argument("--file", help="answer one question per line, as JSON lines")
    ask.add_argument("-k", type=int, default=5, help="passages to read (default 5)")
    ask.add_argument("--source", help="only this outlet")
    ask.add_argument("--after", help="only articles published on or after this date")
    ask.add_argument("--before", help="only articles published on or before this date")
    ask.add_argument(
        "--reader",
        choices=["trained", "heuristic"],
        help="short-answer reader (default: trained, the heuristic one without its files)",
    )
    ask.add_argument("--reader-model", help="trained reader folder (default: models/reader)")
    ask.add_argument(
        "--reader-precision",
        choices=["int8", "fp32"],
        help="the trained reader's weights: int8 (default, faster) or fp32 (as trained)",
    )
    ask.set_defaults(handler=_ask)

    from qa.training.reader import add_arguments

    train = commands.add_parser(
        "train-reader",
        help="fine-tune the reader on SQuAD-format data (checkpoints, resumes)",
        description="Fine-tune a transformer with a question-answering head on SQuAD-format "
        "JSON. Checkpoints every few minutes; run again with the same --output to resume.",
    )
    add_arguments(train)
    train.set_defaults(handler=_train_reader)

    serve = commands.add_parser(
        "serve",
        parents=[common],
        help="start the HTTP API (admin routes need QA_ADMIN_TOKEN)",
        description="Build the index if it is missing or stale, then serve it over HTTP. The "
        "admin routes (adding articles, rebuilding) need the bearer token in the "
        "QA_ADMIN_TOKEN environment variable; without it they answer 403.",
    )
    serve.add_argument("--corpus", help="articles folder (default: corpus)")
    _cluster_arguments(serve)
    serve.add_argument(
        "--replicas", type=int, help="Ray Serve replicas of each shard, with --cluster (default 1)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    serve.add_argument(
        "--max-upload-bytes",
        type=int,
        default=MAX_FILE_BYTES,
        help=f"largest article upload accepted (default {MAX_FILE_BYTES})",
    )
    serve.set_defaults(handler=_serve)
    return parser


def _cluster_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="run on a Ray cluster: its address, 'auto' (the one `ray start` made here, else a "
        "new local one) or 'local' (needs pip install -e '.[cluster]')",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _quiet_libraries()
    try:
        return int(args.handler(args))
    except (IndexUnusable, ValueError, OSError) as error:
        # A missing or unwritable path is the user's to fix: a message, not a traceback.
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
