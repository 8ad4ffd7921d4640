"""The compress task end to end with one trained codec: training, val, compress/decompress, the CLI, fuzzing."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from pixelmind.api import Model
from pixelmind.engine.checkpoint import load_weights, save_weights
from pixelmind.errors import BitstreamError, PixelmindError
from pixelmind.tasks.compress import codec
from pixelmind.tasks.compress.bitstream import pack, unpack
from pixelmind.tasks.compress.models import build_codec
from pixelmind.tasks.compress.task import tables_ready

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

#: scikit-image photos per split; even-numbered ones at 96x80, odd ones at 64x64 (one crop)
PHOTOS = {"train": ("astronaut", "coffee", "chelsea", "rocket"), "val": ("immunohistochemistry", "cat")}
SIZES = ((96, 80), (64, 64))


def _rgb(path: Path) -> np.ndarray:
    """The RGB levels pixelmind reads from an image file (transparency over white, as load_image does)."""
    from pixelmind.data.decode import load_image

    return np.asarray(load_image(path))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse)) if mse else float("inf")


def _tensor(path: Path) -> torch.Tensor:
    return torch.from_numpy(_rgb(path).copy()).permute(2, 0, 1).float() / 255


@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_thread) -> SimpleNamespace:
    import skimage.data

    work = tmp_path_factory.mktemp("compress")
    data = work / "photos"
    for split, names in PHOTOS.items():
        (data / split).mkdir(parents=True)
        for i, name in enumerate(names):
            image = Image.fromarray(getattr(skimage.data, name)()).resize(SIZES[i % 2], Image.BICUBIC)
            image.save(data / split / f"{name}.png")
    # TrainConfig has no model_kwargs (N, M): the smallest registered codec, 1.6M parameters
    m = Model("mean_scale_s", task="compress")
    metrics = m.train(data=str(data), epochs=1, epoch_samples=16, imgsz=64, batch=4, workers=0,
                      project=str(work / "runs"), name="t")  # fmt: skip
    return SimpleNamespace(model=m, metrics=metrics, data=data, work=work, run_dir=m.run_dir,
                           best=m.run_dir / "weights" / "best.safetensors")  # fmt: skip


def _val_paths(trained) -> list[Path]:
    return sorted((trained.data / "val").glob("*.png"))


# -- training ---------------------------------------------------------------------------------------------------------


def test_training_fixes_the_tables_and_measures_real_files(trained):
    assert trained.best.is_file()
    state, meta, _ = load_weights(trained.best)
    assert meta.task == "compress" and meta.extra["tables"] == "fixed" and meta.extra["quality"] == 3
    loaded = Model.load(trained.best)
    assert tables_ready(loaded.net) and not tables_ready(build_codec("mean_scale_s"))
    assert all(int(v.sum()) > 0 for k, v in state.items() if k.endswith("lengths"))

    payload = json.loads((trained.run_dir / "metrics.json").read_text())
    metrics = payload["metrics"]
    for key in ("bpp", "bpp_est", "psnr", "ms_ssim", "encode_ms", "decode_ms", "bpp_gap_pct", "rd_loss"):
        assert key in metrics and np.isfinite(metrics[key]), key
    assert metrics == pytest.approx(trained.metrics)
    assert metrics["bpp"] != metrics["bpp_est"]  # the rate of files, not of the likelihoods
    gap = 100 * (metrics["bpp"] - metrics["bpp_est"]) / metrics["bpp_est"]
    assert metrics["bpp_gap_pct"] == pytest.approx(gap)
    assert metrics["encode_ms"] > 0 and metrics["decode_ms"] > 0 and 0 < metrics["ms_ssim"] <= 1
    assert "real .pmc files" in payload["protocol"] and len(payload["per_image"]) == len(PHOTOS["val"])
    # during training (tables not fixed yet) the per-epoch bpp is the estimate
    (row,) = list(csv.DictReader((trained.run_dir / "results.csv").open()))
    assert float(row["val/bpp"]) == pytest.approx(float(row["val/bpp_est"]))
    report = (trained.run_dir / "report.md").read_text()
    assert "bpp" in report and "psnr" in report


def test_val_bpp_is_the_size_of_the_files_compress_writes(trained, tmp_path):
    m = Model.load(trained.best)
    metrics = m.val()
    assert metrics["samples"] == len(PHOTOS["val"])
    quality = m.meta.extra["quality"]
    manual = []
    for path in _val_paths(trained):
        x = _tensor(path)
        manual.append(len(codec.encode_image(m.net, x, m.meta.model, quality)) * 8 / (x.shape[1] * x.shape[2]))
    rows = list(m.compress(_val_paths(trained), tmp_path))
    files = [Path(r["saved"]).stat().st_size * 8 / (r["width"] * r["height"]) for r in rows]
    assert files == pytest.approx(manual, rel=1e-12)
    assert metrics["bpp"] == pytest.approx(float(np.mean(manual)), rel=1e-12)
    assert metrics["bpp"] == pytest.approx(trained.metrics["bpp"], rel=1e-12)
    assert metrics["psnr"] == pytest.approx(np.mean([r["psnr"] for r in rows]), abs=0.01)


# -- the API ----------------------------------------------------------------------------------------------------------


def test_compress_then_decompress_round_trip(trained, tmp_path):
    m = trained.model
    sources = _val_paths(trained) + sorted((trained.data / "train").glob("*.png"))[:2]
    rows = list(m.compress(sources, tmp_path / "pmc"))
    assert [r["source"] for r in rows] == [str(p) for p in sources]
    assert sorted(p.name for p in (tmp_path / "pmc").iterdir()) == sorted(f"{p.stem}.pmc" for p in sources)
    for row, src in zip(rows, sources):
        size = Path(row["saved"]).stat().st_size
        assert Path(row["saved"]) == tmp_path / "pmc" / f"{src.stem}.pmc"
        assert (row["width"], row["height"]) == Image.open(src).size
        assert row["bytes"] == size and row["bpp"] == round(size * 8 / (row["width"] * row["height"]), 5)
    back = list(m.decompress(tmp_path / "pmc", tmp_path / "png"))
    assert len(back) == len(sources) and not any("error" in r for r in back)
    by_stem = {Path(r["source"]).stem: r for r in back}
    for row, src in zip(rows, sources):
        out = tmp_path / "png" / f"{src.stem}.png"
        assert by_stem[src.stem]["saved"] == str(out)
        decoded = np.asarray(Image.open(out))
        original = _rgb(src)
        assert decoded.shape == original.shape
        assert _psnr(decoded, original) == pytest.approx(row["psnr"], abs=0.01)
    # without verify: the same bytes, no PSNR
    quick = list(m.compress(sources[:1], tmp_path / "quick", verify=False))
    assert "psnr" not in quick[0]
    assert Path(quick[0]["saved"]).read_bytes() == Path(rows[0]["saved"]).read_bytes()


def test_odd_sizes_and_other_modes_compress_and_decode_to_the_original_size(trained, tmp_path):
    m = trained.model
    rng = np.random.default_rng(0)
    base = np.asarray(Image.open(_val_paths(trained)[0]))
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(base[:23, :37]).save(src / "odd.png")
    Image.fromarray(base[:17, :30]).convert("L").save(src / "grey.png")
    alpha = rng.integers(0, 256, (41, 25), dtype=np.uint8)
    Image.fromarray(np.dstack([base[:41, :25], alpha])).save(src / "rgba.png")
    Image.fromarray(base[:19, :33]).convert("CMYK").save(src / "cmyk.jpg")
    Image.fromarray(base[:1, :1]).save(src / "dot.png")
    rows = list(m.compress(src, tmp_path / "pmc"))
    assert len(rows) == 5 and not any("error" in r for r in rows)
    list(m.decompress(tmp_path / "pmc", tmp_path / "png"))
    for row in rows:
        path = Path(row["source"])
        decoded = np.asarray(Image.open(tmp_path / "png" / f"{path.stem}.png"))
        original = _rgb(path)
        assert decoded.shape == original.shape == (row["height"], row["width"], 3), path.name
        if path.stem != "dot":
            assert _psnr(decoded, original) == pytest.approx(row["psnr"], abs=0.01), path.name
    # PIL images in any mode go through the task's preprocess
    images = [Image.open(src / n) for n in ("grey.png", "rgba.png", "cmyk.jpg")]
    pil_rows = list(m.compress(images, tmp_path / "pil"))
    assert [Path(r["saved"]).name for r in pil_rows] == ["image.pmc", "image_1.pmc", "image_2.pmc"]
    for row, image in zip(pil_rows, images):
        x = codec.decode_image(m.net, Path(row["saved"]).read_bytes())
        assert tuple(x.shape) == (3, image.size[1], image.size[0])


def test_a_compressed_file_is_the_same_from_a_path_or_a_pil_image(trained, tmp_path):
    """The same image must give the same file whether the API reads it or the caller does (RGBA included)."""
    m = trained.model
    rng = np.random.default_rng(1)
    base = np.asarray(Image.open(_val_paths(trained)[0]))[:40, :40]
    rgba = Image.fromarray(np.dstack([base, rng.integers(0, 256, (40, 40), dtype=np.uint8)]))
    rgba.save(tmp_path / "rgba.png")
    Image.fromarray(base).convert("L").save(tmp_path / "grey.png")
    for name in ("grey.png", "rgba.png"):
        (by_path,) = m.compress(tmp_path / name, tmp_path / "a")
        (by_image,) = m.compress(Image.open(tmp_path / name), tmp_path / "b")
        assert Path(by_path["saved"]).read_bytes() == Path(by_image["saved"]).read_bytes(), name


def test_decompress_refuses_weights_of_another_task(trained, tmp_path):
    from pixelmind.config import TrainConfig
    from pixelmind.tasks import get_task
    from pixelmind.tasks.base import Meta

    meta = Meta(task="classify", model="pm_cnn_t", class_names=["a", "b"], imgsz=16)
    net = get_task("classify").build_model(TrainConfig(task="classify", data="digits"), meta)  # untrained, never run
    save_weights(tmp_path / "cls.safetensors", net.state_dict(), meta, {"data": "digits"})
    (row,) = trained.model.compress(_val_paths(trained)[:1], tmp_path / "pmc")
    m = Model.load(tmp_path / "cls.safetensors")
    with pytest.raises(PixelmindError, match="a classify model; decompress needs compress weights"):
        list(m.decompress(row["saved"], tmp_path / "png"))
    with pytest.raises(PixelmindError, match="a classify model; compress needs compress weights"):
        list(m.compress(_val_paths(trained)[:1], tmp_path / "pmc2"))
    assert not (tmp_path / "png").exists()


# -- the command line -------------------------------------------------------------------------------------------------


def pixelmind(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PIXELMIND_DEBUG"}
    return subprocess.run([sys.executable, "-m", "pixelmind", *map(str, args)], check=False, cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_cli_compress_and_decompress_name_each_bad_file(trained, tmp_path):
    m = trained.model
    sources = _val_paths(trained)
    proc = pixelmind("compress", *sources, "--weights", trained.best, "-o", tmp_path / "pmc", cwd=tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.strip().splitlines()]
    assert [r["source"] for r in rows] == [str(p) for p in sources]
    for r in rows:
        assert r["bytes"] == Path(r["saved"]).stat().st_size and r["psnr"] > 0

    # three bad files beside the good ones
    pmc = tmp_path / "pmc"
    good = (pmc / f"{sources[0].stem}.pmc").read_bytes()
    (pmc / "cut.pmc").write_bytes(good[: len(good) // 2])
    (pmc / "x.pmc").write_bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes())
    state = {k: v.clone() for k, v in m.net.state_dict().items()}
    state["g_s.0.weight"][0, 0, 0, 0] += 0.01
    save_weights(tmp_path / "other.safetensors", state, m.meta, m.config)
    (made,) = Model.load(tmp_path / "other.safetensors").compress(sources[1], tmp_path / "tmp")
    (pmc / "other.pmc").write_bytes(Path(made["saved"]).read_bytes())

    proc = pixelmind("decompress", pmc, "--weights", trained.best, "-o", tmp_path / "png", cwd=tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    for name, why in (("cut.pmc", "truncated"), ("x.pmc", "not a pixelmind compressed file"), ("other.pmc", "other weights")):
        (line,) = [ln for ln in lines if name in ln]
        assert str(pmc / name) in line and why in line, line
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == sorted(f"{p.stem}.png" for p in sources)
    for src in sources:
        assert Image.open(tmp_path / "png" / f"{src.stem}.png").size == Image.open(src).size

    bad = [pmc / "cut.pmc", pmc / "x.pmc", pmc / "other.pmc"]
    proc = pixelmind("decompress", *bad, "--weights", trained.best, "-o", tmp_path / "none", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert sum(str(p) in proc.stderr for p in bad) == 3


# -- fuzzing the whole decode path with the trained model -------------------------------------------------------------


def _mutations(rng, data: bytes) -> list:
    def flip():
        buf = bytearray(data)
        for _ in range(int(rng.integers(1, 9))):
            i = int(rng.integers(0, 8 * len(buf)))
            buf[i // 8] ^= 1 << (i % 8)
        return bytes(buf)

    def overwrite():
        buf = bytearray(data)
        start = int(rng.integers(0, len(buf)))
        buf[start : start + 4] = rng.integers(0, 256, 4, dtype=np.uint8).tobytes()
        return bytes(buf[: len(data)])

    def truncate():
        return data[: int(rng.integers(0, len(data)))]

    def insert():
        i = int(rng.integers(0, len(data) + 1))
        return data[:i] + rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8).tobytes() + data[i:]

    def random_bytes():
        return rng.integers(0, 256, int(rng.integers(0, 2 * len(data))), dtype=np.uint8).tobytes()

    def after_magic():
        return data[:5] + rng.integers(0, 256, int(rng.integers(0, 2 * len(data))), dtype=np.uint8).tobytes()

    return [flip, overwrite, truncate, insert, random_bytes, after_magic]


@pytest.fixture(scope="module")
def small_file(trained) -> tuple[bytes, torch.Tensor]:
    x = _tensor(_val_paths(trained)[0])[:, :23, :37]
    net = trained.model.net
    data = codec.encode_image(net, x, "mean_scale_s", 3)
    return data, codec.decode_image(net, data)


def test_fuzz_damaged_files_through_the_trained_decoder(trained, small_file):
    """1200 damaged files: each raises a one-line BitstreamError, or is unchanged and decodes as before."""
    net, (data, reference) = trained.model.net, small_file
    rng = np.random.default_rng(0)
    failures: dict[str, int] = {}
    for trial in range(1200):
        mutation = _mutations(rng, data)[trial % 6]
        bad = mutation()
        try:
            x = codec.decode_image(net, bad)
        except BitstreamError as err:
            assert str(err) and "\n" not in str(err)
            failures[mutation.__name__] = failures.get(mutation.__name__, 0) + 1
            continue
        assert bad == data, f"{mutation.__name__} damage went undetected"
        assert torch.equal(x, reference)
    assert set(failures) == {"flip", "overwrite", "truncate", "insert", "random_bytes", "after_magic"}
    assert sum(failures.values()) >= 1150


def test_fuzz_forged_files_with_a_valid_checksum(trained, small_file):
    """Damaged streams, and image sizes that fit the stride but not the streams, behind a recomputed
    checksum: they reach the entropy decoder and the networks, and each raises BitstreamError or
    decodes to an image of the size its header says."""
    net, (data, _) = trained.model.net, small_file
    header, streams = unpack(data)
    stride = net.stride
    rng = np.random.default_rng(1)
    outcomes: dict[str, int] = {}
    for trial in range(450):
        fields, s = dict(vars(header)), list(streams)
        if trial % 3 < 2:  # a bit flip in one of the streams
            which = int(rng.integers(0, len(s)))
            buf = bytearray(s[which])
            i = int(rng.integers(0, 8 * len(buf)))
            buf[i // 8] ^= 1 << (i % 8)
            s[which] = bytes(buf)
            kind = "stream"
        else:  # another height or width, with a padding that fits the stride (the latents may not fit)
            side, pad = (("height", "pad_bottom"), ("width", "pad_right"))[int(rng.integers(0, 2))]
            fields[side] = int(rng.integers(1, 3 * stride))
            fields[pad] = -fields[side] % stride + stride * int(rng.integers(0, 2))
            kind = "size"
        forged = pack(type(header)(**fields), s)
        try:
            x = codec.decode_image(net, forged)
        except BitstreamError as err:
            assert str(err) and "\n" not in str(err)
            outcomes[f"{kind} error"] = outcomes.get(f"{kind} error", 0) + 1
            continue
        outcomes[f"{kind} decoded"] = outcomes.get(f"{kind} decoded", 0) + 1
        assert tuple(x.shape) == (3, fields["height"], fields["width"]) and bool(torch.isfinite(x).all())
    assert outcomes["stream error"] > 250 and outcomes["size error"] > 30 and outcomes["size decoded"] > 10, outcomes
