"""Settings from the environment, then from flags."""

from __future__ import annotations

from pathlib import Path

from qa.config import Settings


def test_from_env_reads_the_qa_variables_that_are_set() -> None:
    settings = Settings.from_env(
        {
            "QA_INDEX": "/data/index",
            "QA_MODEL": "my-model",
            "QA_READER": "heuristic",
            "QA_ADMIN_TOKEN": "secret",
            "QA_CORPUS": "",  # set but empty: the default stays
            "HOME": "/root",
        }
    )
    assert settings.index_dir == Path("/data/index")
    assert settings.corpus_dir == Settings().corpus_dir
    assert (settings.embedding_model, settings.reader) == ("my-model", "heuristic")
    assert settings.admin_token == "secret"
    assert "secret" not in repr(settings)
    assert Settings.from_env({}) == Settings()


def test_with_values_changes_only_what_is_given() -> None:
    settings = Settings().with_values(index_dir="elsewhere", reader=None, max_file_bytes=10)
    assert settings.index_dir == Path("elsewhere") and settings.reader == "trained"
    assert settings.max_file_bytes == 10


def test_the_reader_precision_reaches_the_reader() -> None:
    from qa.components import make_short_reader
    from qa.reading import TrainedReader

    assert Settings().reader_precision == "int8"
    settings = Settings.from_env({"QA_READER_PRECISION": "fp32"})
    assert settings.reader_precision == "fp32"
    reader = make_short_reader(settings)
    assert isinstance(reader, TrainedReader) and reader.precision == "fp32"


def test_the_passage_precision_reaches_the_embedder() -> None:
    from qa.components import make_embedder

    assert Settings().passage_precision == "auto"
    settings = Settings.from_env({"QA_PASSAGE_PRECISION": "fp32"})
    assert settings.passage_precision == "fp32"
    assert not make_embedder(settings).passages_in_bf16()
    assert make_embedder(settings.with_values(passage_precision="bf16")).passages_in_bf16()
