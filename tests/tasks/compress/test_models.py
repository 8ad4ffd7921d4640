"""Codec models: forward/backward of each registered model, exact side computation, real bitstream round trips."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from pixelmind.tasks.compress.entropy_models import FactorizedDensity, GaussianConditional
from pixelmind.tasks.compress.layers import GDN, exact_forward
from pixelmind.tasks.compress.models import MODELS, build_codec
from pixelmind.tasks.compress.task import bits_per_pixel

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"N": 8, "M": 12}


def tiny(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_codec(name, **TINY)


@pytest.mark.parametrize("name", list(MODELS))
def test_each_model_trains_forward_and_backward(name):
    model = tiny(name).train()
    x = torch.rand(2, 3, 64, 64)
    out = model(x)
    assert out["x_hat"].shape == x.shape
    bpp = bits_per_pixel(out["likelihoods"], 2 * 64 * 64)
    loss = 0.01 * 255**2 * torch.nn.functional.mse_loss(out["x_hat"], x) + bpp
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert bpp.item() > 0


@pytest.mark.parametrize("name", list(MODELS))
def test_each_model_round_trips_a_real_bitstream(name):
    model = tiny(name).eval()
    model.update_tables()
    x = torch.rand(1, 3, 64, 128)
    with torch.no_grad():
        streams, latent_hw = model.compress(x)
        decoded = model.decompress(streams, latent_hw)
        reference = model(x)["x_hat"]
    assert all(isinstance(s, bytes) and s for s in streams)
    assert latent_hw == (4, 8)
    # the decoder's latents equal the forward pass's up to the exact fixed-point means (< 2^-8)
    assert (decoded - reference).abs().max() < 0.05


def test_real_rate_matches_estimate_on_a_trained_density():
    torch.manual_seed(0)
    density = FactorizedDensity(4)
    opt = torch.optim.Adam(density.parameters(), 0.05)
    data = torch.randn(64, 4, 8, 8) * torch.tensor([0.5, 2.0, 5.0, 20.0]).view(1, 4, 1, 1)
    for _ in range(300):
        loss = -torch.log2(density(data + torch.empty_like(data).uniform_(-0.5, 0.5))).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    density.update_tables()
    from pixelmind.tasks.compress import entropy
    from pixelmind.tasks.compress.entropy_models import tables_of

    symbols = data.round()
    with torch.no_grad():
        estimate = float(-torch.log2(density(symbols)).sum())
    stream = entropy.encode(symbols.numpy().astype(np.int32), density.table_index(symbols.shape), *tables_of(density))
    assert abs(len(stream) * 8 - estimate) / estimate < 0.02
    back = entropy.decode(stream, density.table_index(symbols.shape), *tables_of(density))
    assert np.array_equal(back, symbols.numpy().astype(np.int32))


def test_gaussian_tables_pick_the_smallest_table_scale_not_below():
    gc = GaussianConditional()
    gc.update_tables()
    table = gc.scale_table.double()
    scales = torch.stack([table[0] / 2, table[0], table[5] + 1e-6, table[-1] * 10]).double()
    assert gc.table_index(scales).tolist() == [0, 0, 6, len(table) - 1]
    assert (gc.lengths > 2).all() and (gc.lengths[1:] >= gc.lengths[:-1]).all()


def test_tables_are_required_before_coding():
    model = tiny("mean_scale_s").eval()
    from pixelmind.errors import WeightsError

    with pytest.raises(WeightsError, match="no entropy-coding tables"):
        model.compress(torch.rand(1, 3, 64, 64))


def test_gdn_inverse_undoes_gdn_for_identity_gamma_free_case():
    x = torch.randn(1, 4, 5, 5)
    gdn, igdn = GDN(4), GDN(4, inverse=True)
    with torch.no_grad():
        gdn.gamma.zero_()
        igdn.gamma.zero_()
    assert torch.allclose(igdn(gdn(x)), x, atol=1e-4)


def test_exact_forward_is_independent_of_batching_and_threads():
    torch.manual_seed(1)
    stack = build_codec("mean_scale_s", N=16, M=24).h_s
    z = torch.randint(-6, 7, (1, 16, 6, 7)).float()
    alone = exact_forward(stack, z)
    batched = exact_forward(stack, torch.cat([torch.randint(-6, 7, (3, 16, 6, 7)).float(), z]))[-1:]
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        two_threads = exact_forward(stack, z)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(alone, batched) and torch.equal(alone, two_threads)
    assert float((alone - stack(z).detach().double()).abs().max()) < 0.05  # and close to the float network


DECODE_SCRIPT = """
import json, sys, torch
torch.set_num_threads(int(sys.argv[1]))
from safetensors.torch import load_file
from pixelmind.tasks.compress.models import build_codec
model = build_codec("mean_scale_s", N=8, M=12).eval()
model.load_state_dict(load_file(sys.argv[2]))
streams = [bytes.fromhex(s) for s in json.loads(open(sys.argv[3]).read())]
y_hat = model.decode_latents(streams, (4, 8))
print(json.dumps(y_hat.flatten().tolist()))
"""


def test_decoding_is_bit_exact_in_another_process_with_other_thread_counts(tmp_path):
    from safetensors.torch import save_file

    model = tiny("mean_scale_s").eval()
    model.update_tables()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "w.safetensors")
    with torch.no_grad():
        streams, hw = model.compress(torch.rand(1, 3, 64, 128))
    (tmp_path / "s.json").write_text(json.dumps([s.hex() for s in streams]))
    here = model.decode_latents(streams, hw).flatten().tolist()
    for threads in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", DECODE_SCRIPT, threads, str(tmp_path / "w.safetensors"), str(tmp_path / "s.json")],
                             capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
        assert json.loads(out.stdout) == here  # every float64 latent identical, not merely close


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_files_encoded_on_cpu_decode_on_cuda_and_back():
    import copy

    from pixelmind.tasks.compress.codec import decode_image, encode_image

    cpu = tiny("mean_scale_s").eval()
    cpu.update_tables()
    gpu = copy.deepcopy(cpu).cuda()
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True  # the fastest, least exact GPU maths
    image = torch.rand(3, 70, 130)
    for enc, dec in ((cpu, gpu), (gpu, cpu)):
        device = next(enc.parameters()).device
        data = encode_image(enc, image.to(device), "mean_scale_s", 3)
        streams, hw = enc.compress(torch.nn.functional.pad(image, (0, 62, 0, 58), mode="replicate")[None].to(device))
        assert torch.equal(dec.decode_latents(streams, hw), enc.decode_latents(streams, hw))  # bit-exact latents
        assert (decode_image(dec, data).cpu() - decode_image(enc, data).cpu()).abs().max() < 2e-3  # float synthesis


@pytest.mark.parametrize("distortion", ["mse", "ms_ssim"])
def test_training_step_logs_rate_and_distortion(distortion):
    from pixelmind.config import TrainConfig
    from pixelmind.tasks.compress.task import TASK, lambda_for

    cfg = TrainConfig(task="compress", data="photos", distortion=distortion, lmbda=lambda_for(3, distortion))
    TASK.setup_training(cfg, None)
    model = tiny("mean_scale_s").train()
    out = TASK.training_step(model, torch.rand(2, 3, 64, 64), step=0)
    out["loss"].backward()
    assert out["loss"].item() > out["bpp"].item() > 0 and torch.isfinite(out["psnr"])
    assert model.g_a[0].weight.grad is not None


def test_training_crops_must_fit_the_model_stride():
    from pixelmind.config import TrainConfig
    from pixelmind.errors import ConfigError
    from pixelmind.tasks.base import Meta
    from pixelmind.tasks.compress.task import TASK

    meta = Meta(task="compress", model="mean_scale_s", model_kwargs=TINY)
    with pytest.raises(ConfigError, match="imgsz: 96 must be a multiple of 64"):
        TASK.build_model(TrainConfig(task="compress", data="photos", imgsz=96), meta)
    assert TASK.build_model(TrainConfig(task="compress", data="photos", imgsz=128), meta).stride == 64


def test_model_kwargs_size_the_codec_and_travel_with_the_weights(tmp_path):
    from pixelmind.api import Model
    from pixelmind.errors import ConfigError
    from pixelmind.tasks.compress.task import tables_ready

    model = Model("mean_scale_s", task="compress")
    model.train(data="photos", epochs=1, epoch_samples=8, imgsz=64, batch=4, workers=0, project=str(tmp_path),
                name="k", model_kwargs={"N": 8, "M": 12})  # fmt: skip
    loaded = Model.load(model.weights_path)
    assert loaded.meta.model_kwargs == {"N": 8, "M": 12} and loaded.net.g_a[0].out_channels == 8
    assert tables_ready(loaded.net)
    with pytest.raises(ConfigError, match="model_kwargs: mean_scale_s does not take"):
        build_codec("mean_scale_s", channels_out=4)
