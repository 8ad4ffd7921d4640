"""The embed task: identity splits, pairs files, every loss trains, thresholds are stored, bad data is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from pixelmind.api import Model
from pixelmind.config import TrainConfig
from pixelmind.errors import ConfigError, DataError
from pixelmind.tasks.embed.data import load_embedding_data, read_pairs_file, split_identities

FAST = {"imgsz": 16, "epochs": 1, "batch": 64, "workers": 0, "device": "cpu"}


def write_identity_folder(root: Path, identities: int = 6, per_id: int = 8) -> Path:
    """Digits as identities in LFW's layout ``root/<name>/<name>_<n:04d>.png``, plus one corrupt file."""
    from pixelmind.data.builtin import digits

    images, labels, _ = digits()
    for ident in range(identities):
        name = f"person{ident}"
        (root / name).mkdir(parents=True, exist_ok=True)
        rows = (labels == ident).nonzero()[:per_id, 0]
        for n, i in enumerate(rows.tolist(), start=1):
            Image.fromarray(images[i, 0].numpy()).resize((32, 32)).save(root / name / f"{name}_{n:04d}.png")
    (root / "person0" / "person0_0099.png").write_bytes(b"not a png")
    return root


def test_held_out_identities_are_never_trained_on():
    bundle = load_embedding_data(TrainConfig(task="embed", data="digits", imgsz=16, augment="none", val_fraction=0.3))
    k = bundle.meta_extra["train_identities"]
    assert k == 7 and len(bundle.class_names) == 10
    assert set(map(int, bundle.train.targets)) == set(range(k))
    assert set(map(int, bundle.val.targets)) == set(range(k, 10))
    assert split_identities(list("abcdef"), 0.3, 1) == split_identities(list("fedcba"), 0.3, 1)  # order-free, seeded
    with pytest.raises(DataError, match="at least 4 identities"):
        split_identities(["a", "b", "c"], 0.2, 0)


def test_pairs_file_layouts_and_errors(tmp_path):
    f = tmp_path / "pairs.txt"
    f.write_text("10 300\nAnn 1 2\nAnn 1 Bob 3\nx/a.png y/b.png 0\n")
    pairs = read_pairs_file(f, tmp_path)
    assert [(a.name, b.name, same) for a, b, same in pairs] == [
        ("Ann_0001.jpg", "Ann_0002.jpg", True), ("Ann_0001.jpg", "Bob_0003.jpg", False), ("a.png", "b.png", False)]
    f.write_text("Ann 1 2\nAnn one Bob\n")
    with pytest.raises(DataError, match=r"pairs.txt:2: expected"):
        read_pairs_file(f)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["arcface", "cosface", "supcon", "triplet"])
def test_every_loss_trains_and_stores_a_threshold(tmp_path, one_thread, loss):
    model = Model("pm_cnn_t", task="embed")
    metrics = model.train(data="digits", loss=loss, project=str(tmp_path), name=loss, model_kwargs={"dim": 32}, **FAST)
    assert {"auc", "eer", "tar@far=0.001", "tar@far=0.01", "recall@1", "recall@5", "map@r"} <= set(metrics)
    assert metrics["auc"] > 0.6  # one epoch already separates held-out digits better than chance (0.5)
    meta = model.meta
    assert meta.extra["loss"] == loss and 0 < meta.extra["threshold"] <= 1
    assert (model.run_dir / "plots" / "roc.png").is_file() and (model.run_dir / "plots" / "embedding_tsne.png").is_file()
    again = Model.load(model.weights_path).val()  # the same held-out identities, re-derived from the seed
    assert again["auc"] == pytest.approx(metrics["auc"], abs=1e-4)


@pytest.mark.slow
def test_folder_of_identities_with_a_pairs_file(tmp_path, one_thread):
    root = write_identity_folder(tmp_path / "faces")
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("person4 1 2\nperson4 3 4\nperson5 1 2\nperson4 1 person5 1\nperson4 2 person5 3\nperson0 99 person1 1\n")
    model = Model("pm_cnn_t", task="embed")
    metrics = model.train(data=str(root), pairs=str(pairs), project=str(tmp_path), name="p", **{**FAST, "imgsz": 32})
    assert "auc" in metrics
    assert model.meta.extra["train_identities"] == 4  # 6 identities, 2 held out
    import json

    details = json.loads((model.run_dir / "metrics.json").read_text())
    assert details["pairs"] == {"same": 3, "different": 2, "from": "pairs file"}  # person0_0099 is unreadable
    assert details["identity_names"] == ["person1", "person4", "person5"]
    bundle = load_embedding_data(TrainConfig(task="embed", data=str(root), pairs=str(pairs), imgsz=32))
    assert len(bundle.val) == 9 and bundle.pairs["same"] == [True, True, True, False, False, False]


def test_metric_learning_refuses_mixup_and_other_losses(tmp_path):
    with pytest.raises(ConfigError, match="mixup"):
        Model("pm_cnn_t", task="embed").train(data="digits", mixup=0.2, project=str(tmp_path), **FAST)
    with pytest.raises(ConfigError, match="embed takes"):
        Model("pm_cnn_t", task="embed").train(data="digits", loss="dice", project=str(tmp_path), **FAST)


@pytest.mark.slow
def test_onnx_export_keeps_the_embeddings(tmp_path, one_thread):
    root = write_identity_folder(tmp_path / "faces", identities=4, per_id=5)
    model = Model("pm_cnn_t", task="embed")
    model.train(data=str(root), project=str(tmp_path), name="x", **{**FAST, "imgsz": 32})
    path, error = model.export("onnx", data=str(root))
    assert error < 1e-4
    onnx = Model.load(path)
    torch_vectors, paths, errors = model.embed(root)
    onnx_vectors, onnx_paths, _ = onnx.embed(root)
    assert paths == onnx_paths and len(errors) == 1  # the corrupt file, skipped by both
    assert abs(torch_vectors - onnx_vectors).max() < 1e-4
    assert onnx.verify(paths[0], paths[0])["same"] is True  # the stored threshold travels in the export
    assert onnx.predict(paths[0])[0]["dim"] == model.meta.model_kwargs.get("dim", 128)
