"""The ocr task: transcripts, the line generator, both recognisers trained end to end, ONNX parity."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
import torch
from ocr_helpers import write_lines
from PIL import Image

from pixelmind.api import Model
from pixelmind.errors import DataError
from pixelmind.metrics.text import text_metrics
from pixelmind.tasks.ocr.data import line_transform, read_transcripts
from pixelmind.tasks.ocr.synth import TextLines, heldout_fonts, training_fonts
from pixelmind.tasks.ocr.text import Charset, attention_greedy, ctc_greedy


def test_charset_drops_unknown_characters_and_metrics_count_them():
    cs = Charset.from_texts(["ab"])
    assert cs.encode("abc") == [1, 2] and cs.decode([2, 0, 1, 9]) == "ba"
    assert text_metrics(["ab", ""], ["abc", "x"]) == {"cer": 0.5, "word_acc": 0.0, "ned": round(1 - (1 / 3 + 1) / 2, 6)}


def test_decoders_merge_ctc_repeats_and_stop_at_the_end_of_text():
    eye = np.eye(4) * 10
    ctc = eye[[1, 1, 0, 1, 2, 2, 0]][None]  # "a a _ a b b _" -> a, a, b
    assert ctc_greedy(ctc)[0][0] == [1, 1, 2]
    attn = eye[[3, 2, 0, 1]][None]  # "c b <end> a" -> c, b
    indices, conf = attention_greedy(attn)[0]
    assert indices == [3, 2] and len(conf) == 2 and min(conf) > 0.99


def test_transcripts_tsv_and_icdar_and_a_malformed_line(tmp_path):
    (tmp_path / "labels.tsv").write_text("a.png\thello world\n# comment\n\nb.png\tx\n")
    assert [(p.name, t) for p, t in read_transcripts(tmp_path / "labels.tsv")] == [("a.png", "hello world"), ("b.png", "x")]
    (tmp_path / "gt.txt").write_text('word_1.png, "Say \\"hi\\""\n')
    assert read_transcripts(tmp_path / "gt.txt")[0][1] == 'Say "hi"'
    (tmp_path / "bad.txt").write_text("a.png\tok\njust some words\n")
    with pytest.raises(DataError, match=r"bad.txt:2: expected 'path<TAB>text'"):
        read_transcripts(tmp_path / "bad.txt")
    (tmp_path / "empty.tsv").write_text("\n")
    with pytest.raises(DataError, match="no transcripts"):
        read_transcripts(tmp_path / "empty.tsv")


def test_generator_is_seeded_and_heldout_fonts_are_others():
    a, b = TextLines(5, seed=3)[4], TextLines(5, seed=3)[4]
    assert a[1] == b[1] and np.array_equal(np.asarray(a[0]), np.asarray(b[0]))
    val = TextLines(5, seed=3, split="val")[4][0]
    assert val.size != a[0].size or not np.array_equal(np.asarray(val), np.asarray(a[0]))  # another split, another sample
    assert not {p.name for p in training_fonts()} & {p.name for p in heldout_fonts()}


def test_line_transform_keeps_the_aspect_and_pads_with_the_background():
    tf = line_transform(32, (0.0,) * 3, (1.0,) * 3)
    narrow = tf(Image.new("RGB", (16, 32), (200, 200, 200)))
    assert narrow.shape == (3, 32, 128) and torch.allclose(narrow[:, :, 100], torch.full((3, 32), 200 / 255))
    assert tf(Image.new("L", (900, 10))).shape == (3, 32, 128)  # squeezed, grey becomes RGB


@pytest.fixture(scope="module")
def lines(tmp_path_factory):
    root = tmp_path_factory.mktemp("lines")
    write_lines(root, 48, "train", broken=True)
    write_lines(root, 12, "val")
    return root


@pytest.mark.parametrize("model_name", ["crnn_s", "tr_s"])
def test_train_predict_and_onnx_parity(lines, tmp_path, model_name, one_thread):
    model = Model(model_name, task="ocr")
    metrics = model.train(data=str(lines), epochs=1, batch=16, workers=0, project=str(tmp_path), name="o")
    assert set(metrics) >= {"cer", "word_acc", "ned"} and metrics["cer"] >= 0
    report = (model.run_dir / "report.md").read_text()
    assert "broken.png" in report and (model.run_dir / "plots" / "cer_by_length.png").is_file()
    assert model.meta.extra["decoder"] == ("ctc" if model_name.startswith("crnn") else "attention")
    rows = model.predict(lines / "val")
    good = [r for r in rows if "error" not in r]
    assert len(good) == 12 and all(len(r["chars"]) == len(r["text"]) for r in good)
    assert all(0 <= r["confidence"] <= 1 for r in good)
    path, error = model.export("onnx", data=str(lines))
    assert error < 1e-3
    onnx_rows = Model.load(path).predict(lines / "val")
    assert [r.get("text") for r in onnx_rows] == [r.get("text") for r in rows]


@pytest.mark.slow
def test_transformer_learns_to_read_its_training_lines(tmp_path, one_thread):
    """Overfitting 16 lines: a recogniser (and a loss) that cannot do this cannot read anything."""
    root = write_lines(tmp_path / "few", 16, "train")
    shutil.copytree(root / "train", root / "val")  # judged on the lines it trains on
    model = Model("tr_s", task="ocr")
    metrics = model.train(data=str(root), epochs=100, batch=8, lr=1e-3, workers=0, project=str(tmp_path), name="o")
    with open(model.run_dir / "results.csv") as f:
        cer = [float(r["val/cer"]) for r in csv.DictReader(f)]
    assert cer[0] > 0.9 and metrics["cer"] < 0.1, cer[-5:]


def test_unknown_data_and_wrong_image_height_are_one_line_errors(tmp_path):
    with pytest.raises(DataError, match="not a text-line data set"):
        Model("crnn_s", task="ocr").train(data=str(tmp_path), epochs=1, workers=0, project=str(tmp_path))
    write_lines(tmp_path / "d", 4, "train")
    write_lines(tmp_path / "d", 2, "val")
    with pytest.raises(Exception, match="divisible by 16"):
        Model("crnn_s", task="ocr").train(data=str(tmp_path / "d"), imgsz=40, epochs=1, workers=0, project=str(tmp_path))
