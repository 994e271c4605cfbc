"""Hugging Face ``datasets`` as sources: a Dataset's Arrow files read directly, its features as
their storage, indices mappings, IterableDatasets over files, and what is refused. Every dataset
is built here (``from_dict``, ``save_to_disk``, ``load_from_disk``); nothing is downloaded."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

# Before `datasets` is imported: its caches go to a scratch directory and it never goes online.
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="zenith-hf-"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
datasets = pytest.importorskip("datasets", reason="`make test` installs datasets")
torch = pytest.importorskip("torch", reason="torch is not installed; `make test` installs it")

import zenith  # noqa: E402
import zenith.torch as zt  # noqa: E402
from zenith import ValidationError, _hf  # noqa: E402

ROWS = 2_500
FEATURES = datasets.Features(
    {
        "id": datasets.Value("int64"),
        "x": datasets.Value("float32"),
        "label": datasets.ClassLabel(names=["cat", "dog", "owl"]),
        "pair": datasets.Sequence(datasets.Value("float32"), length=2),
        "tokens": datasets.Sequence(datasets.Value("int32")),
        "text": datasets.Value("string"),
    }
)


def columns() -> dict[str, list]:
    ids = list(range(ROWS))
    return {
        "id": ids,
        "x": [i / 4 for i in ids],
        "label": [i % 3 for i in ids],
        "pair": [[i, -i] for i in ids],
        "tokens": [list(range(i % 5)) for i in ids],
        "text": [f"row {i}" for i in ids],
    }


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dataset saved in 3 shards (3 Arrow stream files)."""
    path = tmp_path_factory.mktemp("hf") / "saved"
    datasets.Dataset.from_dict(columns(), features=FEATURES).save_to_disk(str(path), num_shards=3)
    return path


def ids_of(dl) -> list[int]:
    return [int(i) for b in dl for i in b["id"]]


def test_a_saved_dataset_is_read_from_its_arrow_files(saved: Path) -> None:
    ds = datasets.load_from_disk(str(saved))
    files = [f["filename"] for f in ds.cache_files]
    assert len(files) == 3
    kwargs = {"batch_size": 100, "seed": 4}
    want = ids_of(zenith.DataLoader(files, format="arrows", **kwargs))
    got = zenith.DataLoader(ds, **kwargs)
    assert ids_of(got) == want and sorted(want) == list(range(ROWS)) and want != sorted(want)
    assert _hf.dataset_source(ds).paths == files  # read as files, not through a table
    batch = next(iter(zenith.DataLoader(ds, batch_size=7, shuffle=False)))
    assert batch["id"].tolist() == list(range(7))
    assert batch["label"].dtype == np.int64 and batch["label"].tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert batch["pair"].dtype == np.float32 and batch["pair"].shape == (7, 2)
    assert batch["pair"][3].tolist() == [3.0, -3.0]
    assert batch["tokens"].to_pylist() == [list(range(i % 5)) for i in range(7)]
    assert batch["text"].to_pylist() == [f"row {i}" for i in range(7)]
    np.testing.assert_array_equal(batch["x"], np.arange(7, dtype=np.float32) / 4)


def test_an_in_memory_dataset_gives_its_tables_epoch(saved: Path) -> None:
    ds = datasets.Dataset.from_dict(columns(), features=FEATURES)
    assert ds.cache_files == []
    kwargs = {"batch_size": 128, "seed": 8, "rank": 1, "world_size": 2}
    want = ids_of(zenith.DataLoader(ds.data.table, **kwargs))
    assert ids_of(zenith.DataLoader(ds, **kwargs)) == want
    assert len(want) == ROWS // 2


def test_indices_mappings_and_column_edits_give_the_datasets_rows(saved: Path) -> None:
    ds = datasets.load_from_disk(str(saved))
    cases = {
        "select": ds.select([5, 3, 2_000, 17]),
        "filter": ds.filter(lambda row: row["id"] % 7 == 0),
        "split": ds.train_test_split(test_size=0.2, seed=1)["test"],
        "shuffle": ds.shuffle(seed=3),
        "slice": ds.select(range(100, 400)),
    }
    for name, part in cases.items():
        got = ids_of(zenith.DataLoader(part, batch_size=64, seed=2))
        assert sorted(got) == sorted(part["id"]), name
    renamed = ds.rename_column("x", "quarter").remove_columns(["tokens", "text"])
    batch = next(iter(zenith.DataLoader(renamed, batch_size=4, shuffle=False)))
    assert sorted(batch) == ["id", "label", "pair", "quarter"]
    assert batch["quarter"].tolist() == [0.0, 0.25, 0.5, 0.75]
    chosen = ds.with_format("torch", columns=["id", "label"])
    assert sorted(next(iter(zenith.DataLoader(chosen, batch_size=4)))) == ["id", "label"]


def test_resume_mid_epoch_on_a_dataset(saved: Path) -> None:
    ds = datasets.load_from_disk(str(saved))
    full = ids_of(zenith.DataLoader(ds, batch_size=50, seed=6))
    dl = zenith.DataLoader(ds, batch_size=50, seed=6)
    it = iter(dl)
    head = [int(i) for _ in range(13) for i in next(it)["id"]]
    state = dl.state_dict()
    it.close()
    again = zenith.DataLoader(datasets.load_from_disk(str(saved)), batch_size=50, num_workers=2)
    again.load_state_dict(state)
    assert head + ids_of(again) == full


def test_torch_loader_gives_tensors_and_maps_over_a_dataset(saved: Path) -> None:
    ds = datasets.load_from_disk(str(saved))
    dl = zt.DataLoader(ds, batch_size=32, shuffle=True, seed=1, columns=["id", "label", "pair"])
    batches = list(dl)
    assert sorted(ids_of(batches)) == list(range(ROWS))
    first = batches[0]
    assert first["label"].dtype == torch.int64 and first["pair"].shape == (32, 2)
    torch.testing.assert_close(first["label"], first["id"] % 3)
    mapped = zt.DataLoader(
        ds, batch_size=32, columns=["id", "x"], map=lambda s: {"id": s["id"], "y": s["x"] * 4}
    )
    for b in mapped:
        torch.testing.assert_close(b["y"], b["id"].float())


def test_image_features_stay_bytes_and_path_structs(tmp_path: Path) -> None:
    from PIL import Image

    blobs = []
    for i in range(5):
        out = io.BytesIO()
        Image.new("RGB", (4, 4), (i * 40, 0, 0)).save(out, "PNG")
        blobs.append(out.getvalue())
    ds = datasets.Dataset.from_dict(
        {"image": [{"bytes": b, "path": None} for b in blobs], "id": list(range(5))},
        features=datasets.Features({"image": datasets.Image(), "id": datasets.Value("int64")}),
    )
    ds.save_to_disk(str(tmp_path / "images"))
    ds = datasets.load_from_disk(str(tmp_path / "images"))
    batch = next(iter(zenith.DataLoader(ds, batch_size=5, shuffle=False)))
    assert batch["image"].field("bytes").to_pylist() == blobs


def test_iterable_datasets_over_files_are_read_from_the_files(saved: Path, tmp_path: Path) -> None:
    table = datasets.Dataset.from_dict(columns(), features=FEATURES).data.table
    paths = []
    for k in range(2):
        paths.append(str(tmp_path / f"part-{k}.parquet"))
        pq.write_table(table.slice(k * ROWS // 2, ROWS // 2), paths[-1], row_group_size=300)
    streaming = datasets.load_dataset("parquet", data_files=paths, split="train", streaming=True)
    kwargs = {"batch_size": 64, "seed": 3}
    assert ids_of(zenith.DataLoader(streaming, **kwargs)) == ids_of(
        zenith.DataLoader(paths, **kwargs)
    )
    from_saved = datasets.load_from_disk(str(saved)).to_iterable_dataset(num_shards=3)
    assert sorted(ids_of(zenith.DataLoader(from_saved, **kwargs))) == list(range(ROWS))

    mapped = streaming.map(lambda row: {"double": row["id"] * 2})
    with pytest.raises(ValidationError, match="has operations of its own"):
        zenith.DataLoader(mapped)
    # zenith.torch passes it through: its own order, batched and collated here.
    through = zt.DataLoader(mapped.select_columns(["id", "double"]), batch_size=100)
    got = [(int(i), int(d)) for b in through for i, d in zip(b["id"], b["double"], strict=True)]
    assert got == [(i, 2 * i) for i in range(ROWS)]
    with pytest.raises(ValidationError, match="cannot be resumed"):
        through.state_dict()


def test_a_dataset_with_a_transform_set_is_refused_with_the_way_out(saved: Path) -> None:
    ds = datasets.load_from_disk(str(saved)).with_transform(lambda batch: batch)
    with pytest.raises(ValidationError, match=r"set_transform/with_transform.*map= \(per sample\)"):
        zenith.DataLoader(ds)
