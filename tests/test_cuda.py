"""CUDA paths: fp16/bf16 mixed precision and channels-last training; skipped without a GPU."""

import pytest
import torch

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_train_on_cuda_with_mixed_precision(tmp_path, precision):
    from pixelmind import Model

    m = Model("pm_cnn_t")
    metrics = m.train(data="digits", epochs=1, imgsz=16, device="cuda", precision=precision, channels_last=True,
                      project=str(tmp_path), workers=0)  # fmt: skip
    assert 0.0 <= metrics["top1"] <= 1.0
    assert (m.run_dir / "weights" / "best.safetensors").exists()
