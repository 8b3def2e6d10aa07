"""The running application: every part a server or a watcher needs, built once from Settings.

    application = make_application(Settings.from_env())
    application.live.get().ask("Where did Blinken and Lavrov meet?")

The CLI (`qa serve`, `qa index watch`), the HTTP app and the chat all start from here, so a
setting means the same in each and the models are loaded once per process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qa.components import make_embedder, make_short_reader
from qa.config import Settings
from qa.embedding import Embedder
from qa.live import IndexUpdater, LiveAssistant
from qa.news.speakers import SpeakerFinder
from qa.reading import Reader
from qa.service import Assistant
from qa.store import AnyIndex, open_index


@dataclass(frozen=True)
class Application:
    """The parts of a running assistant.

    `live` answers from the newest index generation; `updater` runs builds (one at a time) and
    saves uploaded articles; both share `embedder`, and every generation shares `reader`.
    """

    settings: Settings
    embedder: Embedder
    reader: Reader
    live: LiveAssistant
    updater: IndexUpdater


def make_application(
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    check_interval: float = 1.0,
    startup_build: bool = True,
) -> Application:
    """The application over `settings.index_dir`, first brought up to date with the corpus.

    Args:
        embedder: instead of the configured model (tests pass a fake one).
        check_interval: how often, at most, a request looks for a new index generation.
        startup_build: build (incrementally) before loading, when the corpus folder exists.

    Raises:
        IndexUnusable: there is no index and no corpus folder to build one from.
    """
    shared = embedder or make_embedder(settings)
    # One reader for every generation: loading it again after each index update would cost a
    # model load per build.
    reader = make_short_reader(settings)
    speakers = SpeakerFinder()  # spaCy, loaded on the first quote it looks at

    def make_assistant(index: AnyIndex, embedder: Embedder) -> Assistant:
        return Assistant(index, embedder, short_reader=reader, speakers=speakers)

    opener: Callable[[Path], AnyIndex] = open_index
    if settings.cluster:
        from qa.cluster.serve import shard_opener

        opener = shard_opener(settings)
    live = LiveAssistant(
        settings.index_dir,
        shared,
        check_interval=check_interval,
        make_assistant=make_assistant,
        open_reader=opener,
    )
    updater = IndexUpdater(settings, shared, live)
    if startup_build and Path(settings.corpus_dir).is_dir():
        updater.build_now(operation="startup build")  # a no-op when the index is up to date
    live.get()  # load now, so that a missing or unusable index fails here and not per request
    return Application(settings, shared, reader, live, updater)
