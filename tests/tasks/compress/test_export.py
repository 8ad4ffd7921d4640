"""Exporting a codec: its encoder and decoder transforms as ONNX / TorchScript, checked against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pixelmind.api import Model
from pixelmind.engine.checkpoint import save_weights
from pixelmind.tasks.base import Meta
from pixelmind.tasks.compress.models import build_codec

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def weights(tmp_path):
    """Tiny codec weights whose training data is a folder of two real photos of different sizes."""
    from skimage import data

    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(data.astronaut()).resize((80, 72)).save(folder / "a.png")
    Image.fromarray(data.coffee()).resize((64, 50)).save(folder / "b.png")
    torch.manual_seed(0)
    model = build_codec("mean_scale_s", N=8, M=12).eval()
    model.update_tables()
    meta = Meta(task="compress", model="mean_scale_s", imgsz=64, model_kwargs={"N": 8, "M": 12},
                extra={"quality": 3, "lmbda": 0.0067, "train_data": str(folder), "seed": 0, "val_fraction": 0.5})  # fmt: skip
    path = tmp_path / "codec.safetensors"
    save_weights(path, model.state_dict(), meta, {"task": "compress", "data": str(folder)})
    return path


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_writes_encoder_and_decoder_that_match_pytorch(weights, fmt):
    model = Model.load(weights)
    model.export(fmt)
    parts = {p.name.split(".")[1]: (p, diff) for p, diff in model.exported}
    assert set(parts) == {"encoder", "decoder"}
    assert all(p.is_file() and diff < 1e-3 for p, diff in parts.values())
    if fmt == "onnx":  # the exported encoder takes other image sizes too (dynamic height and width)
        from pixelmind.export.onnx import OnnxModule

        encoder = OnnxModule(parts["encoder"][0])
        x = torch.rand(1, 3, 128, 192)
        np.testing.assert_allclose(encoder(x).numpy(), model.net.g_a(x).detach().numpy(), atol=1e-4)


def test_rd_command_writes_curves_and_bd_rates(tmp_path):
    """`pixelmind rd` on two quality levels (tiny untrained codecs) and two real photos."""
    import json
    import subprocess
    import sys

    from skimage import data

    images = tmp_path / "test"
    images.mkdir()
    Image.fromarray(data.chelsea()).resize((96, 64)).save(images / "cat.png")
    Image.fromarray(data.rocket()).resize((80, 64)).save(images / "rocket.png")
    paths = []
    for quality, seed in ((1, 0), (3, 1)):
        torch.manual_seed(seed)
        model = build_codec("mean_scale_s", N=8, M=12).eval()
        model.update_tables()
        meta = Meta(task="compress", model="mean_scale_s", imgsz=64, model_kwargs={"N": 8, "M": 12},
                    extra={"quality": quality, "lmbda": 0.0067, "train_data": "elsewhere"})  # fmt: skip
        paths.append(tmp_path / f"q{quality}.safetensors")
        save_weights(paths[-1], model.state_dict(), meta, {"task": "compress", "data": "elsewhere"})
    out = tmp_path / "rd"
    proc = subprocess.run([sys.executable, "-m", "pixelmind", "rd", *map(str, paths), "--data", str(images), "-o", str(out),
                           "--codecs", "jpeg,webp"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "rd.json").read_text())
    assert report["images"] == 2
    assert len(report["pixelmind"]) == 2 and all(p["images"] == 2 for p in report["pixelmind"])
    assert len(report["jpeg"]) > 5 and set(report["bd_rate_psnr"]) == {"jpeg", "webp"}
    assert all((out / name).is_file() for name in ("rd.md", "rd_psnr.png", "rd_ms_ssim.png"))
    assert "BD-rate" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "pixelmind", "rd", str(paths[0]), "--data", str(images), "--codecs", "png"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 2 and "unknown png" in bad.stderr and "Traceback" not in bad.stderr
