"""Keeping a running assistant in step with a corpus and an index that change underneath it.

- `reload`: `LiveAssistant` serves the newest index generation and swaps in a new one after a
  build, without stopping queries.
- `builds`: `IndexUpdater` runs builds one at a time (in the background or on request) and adds
  uploaded or pasted articles; `locked_build` is one build.
- `uploads`: checking uploaded files and pasted records, and saving them into the corpus
  folder, which stays the one source of truth.
- `watch`: `watch_corpus` rebuilds whenever files under the corpus folder change.

Every build holds an exclusive lock on `<index>/.build.lock` (see `qa.store.build_lock`), so
the server, the watcher and `qa index build` never build the same index at once.
"""

from qa.live.builds import IndexUpdater, locked_build
from qa.live.reload import LiveAssistant
from qa.live.uploads import (
    RECORD_FIELDS,
    UPLOAD_SUFFIXES,
    UPLOADS,
    AddResult,
    Upload,
    UploadRefused,
    record_file,
    safe_upload_name,
)
from qa.live.watch import corpus_change_filter, watch_corpus

__all__ = [
    "RECORD_FIELDS",
    "UPLOADS",
    "UPLOAD_SUFFIXES",
    "AddResult",
    "IndexUpdater",
    "LiveAssistant",
    "Upload",
    "UploadRefused",
    "corpus_change_filter",
    "locked_build",
    "record_file",
    "safe_upload_name",
    "watch_corpus",
]
