"""The embed, index, search, verify and check --weights verbs end to end (real subprocesses, tiny models)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_cli import last_json, ok, pixelmind

from pixelmind.api import Model
from pixelmind.errors import DataError
from pixelmind.similarity.index import VectorIndex

pytestmark = pytest.mark.slow  # real subprocesses: ~4 s each


@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_thread) -> dict[str, Path]:
    """An embed model and a classifier, each trained 1 epoch on digits at 16 px, and a gallery of digits."""
    from pixelmind.data.builtin import digits

    root = tmp_path_factory.mktemp("similarity")
    weights = {}
    for task in ("embed", "classify"):
        m = Model("pm_cnn_t", task=task)
        m.train(data="digits", epochs=1, imgsz=16, project=str(root), name=task, workers=0, model_kwargs={"dim": 32} if task == "embed" else None)
        weights[task] = m.weights_path
    images, labels, _ = digits()
    gallery = root / "gallery"
    for i in range(40):
        (gallery / str(int(labels[i]))).mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i, 0].numpy()).resize((32, 32)).save(gallery / str(int(labels[i])) / f"{i}.png")
    (gallery / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return {**weights, "gallery": gallery, "root": root}


def test_embed_writes_unit_vectors_and_their_paths(trained, tmp_path):
    proc = ok(pixelmind("embed", "--weights", trained["embed"], "--source", trained["gallery"], "-o", tmp_path / "v", "--json", cwd=tmp_path))
    summary = last_json(proc)
    assert summary["count"] == 40 and summary["dim"] == 32 and summary["skipped"] == 1
    assert "broken.png" in proc.stderr
    vectors = np.load(tmp_path / "v.npy")
    rows = [json.loads(line) for line in (tmp_path / "v.jsonl").read_text().splitlines()]
    assert vectors.shape == (40, 32) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert [r["row"] for r in rows] == list(range(40)) and all(Path(r["source"]).is_file() for r in rows)


def test_index_then_search_finds_each_query_first_and_draws_it(trained, tmp_path):
    ok(pixelmind("index", "--weights", trained["embed"], "--source", trained["gallery"], "-o", tmp_path / "idx", cwd=tmp_path))
    info = json.loads((tmp_path / "idx" / "index.json").read_text())
    assert info["kind"] == "flat" and info["count"] == 40 and info["task"] == "embed"
    queries = sorted((trained["gallery"] / "3").glob("*.png"))
    proc = ok(pixelmind("search", "--index", tmp_path / "idx", "--source", trained["gallery"] / "3", "--k", "3",
                        "-o", tmp_path / "found", "--json", cwd=tmp_path))  # fmt: skip
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == len(queries) > 0
    for row in rows:  # every gallery image is its own nearest neighbour, at cosine 1
        assert row["neighbours"][0]["source"] == row["source"] and row["neighbours"][0]["score"] == pytest.approx(1, abs=1e-4)
        assert len(row["neighbours"]) == 3
    assert len(list((tmp_path / "found").glob("*.jpg"))) == len(queries)
    assert (tmp_path / "found" / "results.jsonl").read_text().count("\n") == len(queries)


def test_verify_answers_with_score_and_stored_threshold(trained, tmp_path):
    a, b = sorted((trained["gallery"] / "3").glob("*.png"))[:2]
    result = last_json(ok(pixelmind("verify", "--weights", trained["embed"], a, a, "--json", cwd=tmp_path)))
    assert result["same"] is True and result["score"] == pytest.approx(1, abs=1e-5)
    meta = Model.load(trained["embed"]).meta
    assert result["threshold"] == pytest.approx(meta.extra["threshold"], abs=1e-5)
    assert meta.extra["loss"] == "supcon"  # the default for few (8) training identities
    result = last_json(ok(pixelmind("verify", "--weights", trained["embed"], a, b, "--threshold", "1.01", "--json", cwd=tmp_path)))
    assert result["same"] is False
    bad = pixelmind("verify", "--weights", trained["embed"], a, trained["gallery"] / "broken.png", cwd=tmp_path)
    assert bad.returncode == 2 and "broken.png" in bad.stderr and "Traceback" not in bad.stderr


def test_classifier_weights_give_penultimate_features(trained, tmp_path):
    summary = last_json(ok(pixelmind("embed", "--weights", trained["classify"], "--source", trained["gallery"],
                                     "-o", tmp_path / "c", "--json", cwd=tmp_path)))  # fmt: skip
    net = Model.load(trained["classify"]).net
    assert summary["dim"] == net.head[-1].in_features  # the features the class scores are made from
    no_threshold = pixelmind("verify", "--weights", trained["classify"], *sorted(trained["gallery"].rglob("*.png"))[:2], cwd=tmp_path)
    assert no_threshold.returncode == 2 and "--threshold" in no_threshold.stderr


def test_index_of_another_model_or_corrupt_gives_one_line_errors(trained, tmp_path):
    ok(pixelmind("index", "--weights", trained["embed"], "--source", trained["gallery"], "-o", tmp_path / "idx", cwd=tmp_path))
    query = next((trained["gallery"] / "1").glob("*.png"))

    def fails(*args, expect: str) -> None:
        proc = pixelmind("search", *args, "--source", query, cwd=tmp_path)
        assert proc.returncode == 2 and expect in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr

    fails("--index", tmp_path / "idx", "--weights", trained["classify"], expect="not the model this index was made with")
    fails("--index", tmp_path / "missing", expect="not a pixelmind index")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for name in ("index.json", "items.jsonl"):
        (corrupt / name).write_bytes((tmp_path / "idx" / name).read_bytes())
    (corrupt / "index.faiss").write_bytes((tmp_path / "idx" / "index.faiss").read_bytes()[:200])
    fails("--index", corrupt, expect="not a readable faiss index")
    (corrupt / "items.jsonl").write_text('{"id": 0, "source": "a.png"}\n')
    (corrupt / "index.faiss").write_bytes((tmp_path / "idx" / "index.faiss").read_bytes())
    fails("--index", corrupt, expect="holds 40 vectors")


def test_check_finds_a_planted_near_duplicate_across_splits(trained, tmp_path):
    root = tmp_path / "data"
    for label in ("3", "7"):
        for p in sorted((trained["gallery"] / label).glob("*.png")):
            for split in ("train", "val"):
                (root / split / label).mkdir(parents=True, exist_ok=True)
            (root / "train" / label / p.name).write_bytes(p.read_bytes())
    # a slightly shifted, brighter copy of one training image in val: new bytes and a new hash
    original = next((root / "train" / "3").glob("*.png"))
    arr = np.asarray(Image.open(original).convert("L"), dtype=np.int16)
    Image.fromarray(np.clip(np.roll(arr, 1, axis=1) + 12, 0, 255).astype("uint8")).save(root / "val" / "3" / "copy.png")
    Image.open(next((trained["gallery"] / "9").glob("*.png"))).save(root / "val" / "7" / "nine.png")
    report = last_json(ok(pixelmind("check", "--data", root, "--weights", trained["classify"], "--near", "0.95",
                                    "--out", tmp_path / "chk", "--json", cwd=tmp_path)))  # fmt: skip
    rows = (tmp_path / "chk" / "near_duplicates.csv").read_text().splitlines()
    assert rows[0] == "a,b,split_a,split_b,cosine"
    assert report["leakage_near"] >= 1
    top_across = next(r for r in rows[1:] if "val" in r.split(",")[2:4])
    assert {Path(top_across.split(",")[0]).name, Path(top_across.split(",")[1]).name} == {original.name, "copy.png"}


def test_approximate_indexes_recall_exact_neighbours():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(50, 32))
    vectors = centres[rng.integers(0, 50, 6000)] + 0.5 * rng.normal(size=(6000, 32))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    queries = vectors[:200] + 0.05 * rng.normal(size=(200, 32)).astype(np.float32)
    exact = VectorIndex.build(vectors, [str(i) for i in range(6000)], {}, "flat").search(queries, 10)[1]
    for kind in ("hnsw", "ivf"):
        found = VectorIndex.build(vectors, [str(i) for i in range(6000)], {}, kind).search(queries, 10)[1]
        recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)])
        assert recall > 0.9, (kind, recall)
    with pytest.raises(DataError, match="queries have 8 values"):
        VectorIndex.build(vectors, [""] * 6000, {}, "flat").search(np.zeros((1, 8), np.float32))


def test_train_and_val_an_embedding_from_the_command_line(tmp_path):
    fast = ["--model", "pm_cnn_t", "--imgsz", "16", "--epochs", "1", "--workers", "0", "--device", "cpu"]
    trained = last_json(ok(pixelmind("train", "--task", "embed", "--data", "digits", "--loss", "triplet", *fast,
                                     "--project", tmp_path, "--json", cwd=tmp_path)))  # fmt: skip
    weights = Path(trained["run_dir"]) / "weights" / "best.safetensors"
    again = last_json(ok(pixelmind("val", "--weights", weights, "--json", cwd=tmp_path)))
    assert again["map@r"] == pytest.approx(trained["map@r"], abs=1e-4) and again["samples"] == 353
    bad = pixelmind("train", "--task", "embed", "--data", "digits", "--loss", "l1", *fast, "--project", tmp_path, cwd=tmp_path)
    assert bad.returncode == 2 and "embed takes arcface, cosface, supcon, triplet" in bad.stderr
