"""Structured pruning: each task's tiny model to half its FLOPs, the pruned widths in the weights file,
fine-tuning through the engine (run directory, predict, ONNX, resume), and the one-line refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from pixelmind.api import Model
from pixelmind.config import TrainConfig
from pixelmind.engine import checkpoint as ckpt
from pixelmind.engine.rundir import read_results_csv
from pixelmind.errors import ConfigError, PixelmindError
from pixelmind.optimize.prune import example_input, finetune_pruned, prune_model, prune_network
from pixelmind.optimize.structure import build_network, snapshot, structure_changes
from pixelmind.tasks import get_task
from pixelmind.tasks.base import Meta
from pixelmind.tasks.detect.models import TINY as DETECT_TINY
from pixelmind.tasks.segment.models import TINY as SEGMENT_TINY

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: a second thread only spins (conftest)

# (task, model, model_kwargs, imgsz, extra): one tiny CNN per task, and a timm ViT (qkv kept, embedding pruned)
TINY = [
    ("classify", "pm_cnn_t", {}, 16, {}),
    ("classify", "test_vit", {}, 32, {}),
    ("detect", "pmdet_n", DETECT_TINY["pmdet_n"], 32, {}),
    ("segment", "unet_s", SEGMENT_TINY["unet_s"], 32, {}),
    ("enhance", "edsr_s", {"n_feats": 8, "n_blocks": 2}, 16, {"scale": 2, "channels": 3}),
]


def _build(task_name: str, model: str, kwargs: dict, imgsz: int, extra: dict) -> tuple[nn.Module, Meta]:
    torch.manual_seed(0)
    meta = Meta(task_name, model, ["a", "b", "c"], imgsz, model_kwargs=dict(kwargs), extra=dict(extra))
    return get_task(task_name).build_model(TrainConfig(task=task_name, data="?"), meta).eval(), meta


def _flops(net: nn.Module, x: torch.Tensor) -> int:
    """torch's own FLOP counter: an independent check of what torch-pruning counted."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(x)
    return counter.get_total_flops()


def _outputs(net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        out = net.eval()(x)
    return list(out) if isinstance(out, (tuple, list)) else [out]


@pytest.mark.parametrize("case", TINY, ids=[f"{c[0]}-{c[1]}" for c in TINY])
def test_prune_to_half_the_flops_and_reload_from_safetensors(case, tmp_path):
    task_name = case[0]
    net, meta = _build(*case)
    x = torch.rand(2, *example_input(net, meta).shape[1:])
    shapes, flops_before, before = [o.shape for o in _outputs(net, x)], _flops(net, x), snapshot(net)

    s = prune_network(net, x[:1], 0.5, get_task(task_name).prune_ignored_layers(net), name=meta.model)

    assert 0.35 < s["flops_ratio"] <= 0.5 and s["params_after"] < s["params_before"]
    assert [o.shape for o in _outputs(net, x)] == shapes  # heads and image outputs kept their channels
    assert _flops(net, x) / flops_before < 0.55  # torch's counter agrees (it leaves out norms and activations)
    meta.extra["pruned"] = structure_changes(before, net)
    path = tmp_path / "pruned.safetensors"
    ckpt.save_weights(path, net.state_dict(), meta, {"task": task_name, "data": "?"})
    loaded = Model.load(path)
    assert sum(p.numel() for p in loaded.net.parameters()) == s["params_after"]
    for a, b in zip(_outputs(net, x), _outputs(loaded.net, x)):
        assert torch.equal(a, b)


def test_structure_records_only_what_changed():
    net, meta = _build(*TINY[0])
    before = snapshot(net)
    prune_network(net, example_input(net, meta), 0.5, get_task("classify").prune_ignored_layers(net))
    structure = structure_changes(before, net)
    head = structure["modules"]["head.3"]  # the classifier keeps its 3 outputs, loses input features
    assert set(head["attrs"]) == {"in_features"} and head["params"]["weight"][0] == 3
    assert "features.0.1" in structure["modules"]  # BatchNorm num_features and running stats
    fresh = build_network(get_task("classify"), TrainConfig(data="?"), Meta(**{**meta.__dict__, "extra": {"pruned": structure}}))
    assert {k: v.shape for k, v in fresh.state_dict().items()} == {k: v.shape for k, v in net.state_dict().items()}


# ------------------------------------------------------------------------------------- fine-tuning


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> Model:
    project = tmp_path_factory.mktemp("runs")
    m = Model("pm_cnn_t", task="classify")
    m.train(data="digits", epochs=1, imgsz=16, batch=64, limit=512, project=str(project), workers=0, device="cpu")
    return Model.load(m.weights_path)


@pytest.fixture(scope="module")
def pruned_run(original):
    params = sum(p.numel() for p in original.net.parameters())
    metrics, run_dir, summary = finetune_pruned(original, None, 0.5, epochs=1)
    assert sum(p.numel() for p in original.net.parameters()) == params  # the original model is left alone
    return metrics, run_dir, summary


def test_finetune_leaves_a_normal_run_that_loads_predicts_and_exports(pruned_run, original, tmp_path):
    metrics, run_dir, summary = pruned_run
    assert run_dir.name == "exp-pruned50" and run_dir.parent == original.weights_path.parents[2]
    for name in ("report.md", "results.csv", "metrics.json", "config.yaml", "weights/best.safetensors", "weights/last.safetensors"):
        assert (run_dir / name).is_file(), name
    assert "pruned model: 50% of the FLOPs removed" in (run_dir / "report.md").read_text()
    assert 0 <= metrics["top1"] <= 1 and summary["flops_ratio"] <= 0.5 and summary["source"] == str(original.weights_path)

    m = Model.load(run_dir / "weights" / "best.safetensors")
    assert sum(p.numel() for p in m.net.parameters()) == summary["params_after"]
    assert m.meta.extra["pruned"]["summary"]["flops_after"] == summary["flops_after"]
    (row,) = m.predict(Image.fromarray(np.full((8, 8, 3), 200, np.uint8)))
    assert row["label"] in m.meta.class_names
    path, diff = m.export("onnx", tmp_path / "pruned.onnx")  # raises when parity fails
    assert path.is_file() and diff < 1e-3


def test_pruning_pruned_weights_again_keeps_both_rounds(pruned_run, tmp_path):
    _, run_dir, first = pruned_run
    m = Model.load(run_dir / "weights" / "best.safetensors")
    net, meta, second = prune_model(m, 0.3)
    assert second["flops_before"] == first["flops_after"] and second["flops_ratio"] <= 0.7
    ckpt.save_weights(tmp_path / "twice.safetensors", net.state_dict(), meta, m.config)
    x = torch.rand(4, *example_input(net, meta).shape[1:])
    assert torch.equal(_outputs(net, x)[0], _outputs(Model.load(tmp_path / "twice.safetensors").net, x)[0])


def test_resume_of_a_pruned_run(pruned_run):
    _, run_dir, summary = pruned_run
    m = Model("pm_cnn_t", task="classify")
    m.train(resume=run_dir / "weights" / "last.safetensors", epochs=2)
    assert m.run_dir == run_dir and len(read_results_csv(run_dir / "results.csv")) == 2
    assert sum(p.numel() for p in m.net.parameters()) == summary["params_after"]
    assert "pruned model" in (run_dir / "report.md").read_text()  # the rewritten report still says so


# ------------------------------------------------------------------------------------- refusals


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("amount", [0, 1.5, 0.96, -0.1])
def test_amount_outside_the_range_is_refused(amount, original):
    net, meta = _build(*TINY[0])
    with pytest.raises(ConfigError) as err:
        prune_network(net, example_input(net, meta), amount, [])
    assert "prune: the share of FLOPs to remove must lie in (0, 0.95]" in _one_line(err)
    with pytest.raises(ConfigError):
        finetune_pruned(original, None, amount)


@pytest.mark.parametrize("task_name", ["generate", "compress"])
def test_tasks_without_the_hook_refuse(task_name):
    with pytest.raises(ConfigError) as err:
        get_task(task_name).prune_ignored_layers(nn.Conv2d(3, 3, 1))
    assert _one_line(err).startswith(f"{task_name}: pruning is not supported: ")


def test_models_a_task_cannot_prune_are_refused_with_a_reason():
    from pixelmind.tasks.enhance.models import build_enhancer

    with pytest.raises(ConfigError) as err:
        get_task("enhance").prune_ignored_layers(build_enhancer("swinir_t", 2, 3, embed_dim=8, depths=(1,), heads=2, window=4))
    assert _one_line(err).startswith("enhance: pruning is not supported: SwinIR's attention")
    net, _ = _build("segment", "maskrcnn", SEGMENT_TINY["maskrcnn"], 64, {})
    with pytest.raises(ConfigError) as err:
        get_task("segment").prune_ignored_layers(net)
    assert "Mask R-CNN" in _one_line(err)


class _TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + y


class _FixedOffset(nn.Module):
    """A buffer sized for 8 channels: pruning the conv breaks the sum, which torch-pruning cannot see."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.out = nn.Conv2d(3, 8, 3), nn.Conv2d(8, 2, 1)
        self.register_buffer("offset", torch.zeros(1, 8, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.conv(x) + self.offset)


def test_models_torch_pruning_cannot_handle_are_refused_by_name():
    x = torch.zeros(1, 3, 8, 8)
    with pytest.raises(PixelmindError) as err:
        prune_network(_TwoInputs(), x, 0.5, [], name="two_inputs")
    assert _one_line(err).startswith("two_inputs: torch-pruning cannot trace this model (TypeError")
    net = _FixedOffset()
    with pytest.raises(PixelmindError) as err:
        prune_network(net, x, 0.5, [net.out])
    assert _one_line(err).startswith("_FixedOffset: torch-pruning could not narrow this model consistently")
    net = _FixedOffset()
    with pytest.raises(PixelmindError) as err:  # every layer must keep its channels: nothing to remove
        prune_network(net, x, 0.5, [net.conv, net.out], name="kept")
    assert "--prune 0.5 is out of reach" in _one_line(err)
