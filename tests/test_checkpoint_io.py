"""Weights files (src/pixelmind/engine/checkpoint.py): self-describing, atomic, and strict about bad input.

Named test_checkpoint_io.py, not test_checkpoint.py: tests/engine/test_checkpoint.py exists too, and
pytest's default import mode needs distinct basenames in folders without __init__.py.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from pixelmind.engine.checkpoint import (
    EMA_PREFIX,
    FORMAT,
    TRAIN_PREFIX,
    flatten_optimizer,
    load_state_into,
    load_train_state,
    load_weights,
    read_metadata,
    save_weights,
    sha256_file,
    unflatten_optimizer,
)
from pixelmind.errors import WeightsError
from pixelmind.tasks.base import Meta
from pixelmind.tasks.classify.models import build_classifier

META = Meta(task="classify", model="pm_cnn_t", class_names=["cat", "dog", "emu"], imgsz=16,
            mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), model_kwargs={"k": 1}, extra={"temperature": 1.5})  # fmt: skip


def _model(num_classes: int = 3, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_classifier("pm_cnn_t", num_classes=num_classes, imgsz=16)


def _weights_error(fn, *args, fragment: str) -> str:
    with pytest.raises(WeightsError) as info:
        fn(*args)
    msg = str(info.value)
    assert fragment in msg and "\n" not in msg, msg
    return msg


def test_save_load_roundtrip(tmp_path):
    model = _model()
    path = tmp_path / "weights" / "best.safetensors"  # the folder is created
    save_weights(path, model.state_dict(), META, config={"data": "digits", "epochs": 2})
    state, meta, raw = load_weights(path)
    assert meta == META and meta.mean == (0.5, 0.5, 0.5) and meta.extra == {"temperature": 1.5}
    assert raw["format"] == FORMAT and json.loads(raw["config"]) == {"data": "digits", "epochs": 2}
    own = model.state_dict()
    assert state.keys() == own.keys()
    assert all(torch.equal(state[k], own[k]) for k in own)
    fresh = _model(seed=1)
    fresh.load_state_dict(state)
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(fresh.eval()(x), model.eval()(x))


def test_shared_and_non_contiguous_tensors_are_saved(tmp_path):
    base = torch.arange(12.0).reshape(3, 4)
    state = {"a": base, "a_t": base.t(), "tied": base}  # shared storage and a transposed view
    save_weights(tmp_path / "w.safetensors", state, META)
    loaded, _, _ = load_weights(tmp_path / "w.safetensors")
    assert torch.equal(loaded["a_t"], base.t()) and torch.equal(loaded["tied"], base)


def test_training_state_is_stored_but_not_in_the_model_state(tmp_path):
    path = tmp_path / "last.safetensors"
    extra = {TRAIN_PREFIX + "opt.0.exp_avg": torch.ones(3), EMA_PREFIX + "w": torch.zeros(2)}
    save_weights(
        path,
        {"w": torch.ones(2)},
        META,
        extra_tensors=extra,
        extra_metadata={"train_state": json.dumps({"epoch": 4})},
    )
    state, _, _ = load_weights(path)
    assert list(state) == ["w"]
    tensors, plain = load_train_state(path)
    assert set(tensors) == set(extra) and plain == {"epoch": 4}
    save_weights(tmp_path / "best.safetensors", {"w": torch.ones(2)}, META)
    _weights_error(load_train_state, tmp_path / "best.safetensors", fragment="no training state")


def test_plain_safetensors_file_is_refused(tmp_path):
    p = tmp_path / "other.safetensors"
    save_file({"w": torch.ones(2)}, str(p), metadata={"format": "pt"})
    _weights_error(load_weights, p, fragment="without pixelmind metadata")


@pytest.mark.parametrize(
    "content", [b"", b"\x00" * 64, b"hello, I am not a weights file\n" * 10, b"\xff" * 8]
)
def test_garbage_file(tmp_path, content):
    p = tmp_path / "junk.safetensors"
    p.write_bytes(content)
    _weights_error(load_weights, p, fragment="junk.safetensors")


@pytest.mark.parametrize("keep", [0.3, 0.9, -1])
def test_truncated_file(tmp_path, keep):
    good = tmp_path / "good.safetensors"
    save_weights(good, _model().state_dict(), META)
    data = good.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: int(len(data) * keep)] if keep > 0 else data[:-1])
    _weights_error(load_weights, cut, fragment="cut.safetensors")


def test_missing_file(tmp_path):
    _weights_error(load_weights, tmp_path / "nope.safetensors", fragment="not found")
    _weights_error(read_metadata, tmp_path / "nope.safetensors", fragment="nope.safetensors")
    _weights_error(load_state_into, _model(), tmp_path / "nope.pth", fragment="not found")


def test_corrupt_meta_json(tmp_path):
    p = tmp_path / "w.safetensors"
    save_file({"w": torch.ones(1)}, str(p), metadata={"format": FORMAT, "meta": "{not json"})
    _weights_error(load_weights, p, fragment="corrupt weights file")


def test_atomic_save_leaves_no_temp_file(tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(path, {"w": torch.ones(2)}, META)
    save_weights(path, {"w": torch.full((2,), 7.0)}, META)  # overwrite in place
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]
    assert load_weights(path)[0]["w"].tolist() == [7.0, 7.0]


def test_failed_save_keeps_the_old_file_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(path, {"w": torch.ones(2)}, META)
    before = path.read_bytes()
    with pytest.raises(Exception):  # noqa: B017 - safetensors refuses non-string metadata values
        save_weights(path, {"w": torch.zeros(2)}, META, extra_metadata={"bad": 3})  # type: ignore[dict-item]
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]


def test_load_state_into_from_a_pth_state_dict(tmp_path):
    src = _model(seed=1)
    p = tmp_path / "w.pth"
    torch.save(src.state_dict(), p)
    dst = _model(seed=2)
    messages = load_state_into(dst, p)
    n = len(dst.state_dict())
    assert messages[0].startswith(f"loaded {n}/{n} tensors") and sha256_file(p)[:16] in messages[0]
    assert len(messages) == 1
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst.state_dict().values()))


def test_load_state_into_from_a_wrapped_ddp_checkpoint(tmp_path):
    src = _model(seed=1)
    p = tmp_path / "ckpt.pt"
    torch.save({"epoch": 3, "model": {f"module.{k}": v for k, v in src.state_dict().items()}}, p)
    dst = _model(seed=2)
    load_state_into(dst, p)
    assert torch.equal(dst.head[-1].weight, src.head[-1].weight)


def test_load_state_into_with_another_head_shape(tmp_path):
    src = _model(num_classes=10, seed=1)
    p = tmp_path / "ten.safetensors"
    save_weights(p, src.state_dict(), META)  # a pixelmind file is fine for fine-tuning too
    dst = _model(num_classes=3, seed=2)
    head_before = dst.head[-1].weight.clone()
    messages = load_state_into(dst, p)
    n = len(dst.state_dict())
    assert messages[0].startswith(f"loaded {n - 2}/{n} tensors")
    assert any("re-initialised 2 tensors" in m and "head.3.weight" in m for m in messages)
    assert torch.equal(dst.head[-1].weight, head_before)  # the new head keeps its own init
    assert torch.equal(dst.features[0][0].weight, src.features[0][0].weight)


def test_load_state_into_reports_missing_tensors(tmp_path):
    src = _model(seed=1)
    p = tmp_path / "part.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items() if k.startswith("features.0.")}, str(p))
    messages = load_state_into(_model(seed=2), p)
    assert any("not in the file keep their initial values" in m for m in messages)


def test_load_state_into_refuses_unrelated_or_bad_files(tmp_path):
    p = tmp_path / "other.safetensors"
    save_file({"encoder.weight": torch.ones(2)}, str(p))
    _weights_error(load_state_into, _model(), p, fragment="no tensor matches")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    _weights_error(load_state_into, _model(), junk, fragment="cannot read weights")
    lst = tmp_path / "list.pth"
    torch.save([torch.ones(1)], lst)
    _weights_error(load_state_into, _model(), lst, fragment="expected a state dict")


def test_optimizer_flatten_unflatten_roundtrip(tmp_path):
    torch.manual_seed(0)
    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.95), weight_decay=0.1)
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 1])

    def step(m, o):
        o.zero_grad()
        torch.nn.functional.cross_entropy(m(x), y).backward()
        o.step()

    for _ in range(3):
        step(model, opt)
    tensors, plain = flatten_optimizer(TRAIN_PREFIX + "opt0.", opt.state_dict())
    assert tensors and all(k.startswith(TRAIN_PREFIX + "opt0.") for k in tensors)
    path = tmp_path / "last.safetensors"
    save_weights(path, model.state_dict(), META, extra_tensors=tensors,
                 extra_metadata={"train_state": json.dumps({"opt": plain})})  # fmt: skip

    # a fresh model and optimizer resumed from the file must continue exactly like the original
    state, _, _ = load_weights(path)
    model2 = _model(seed=5)
    model2.load_state_dict(state)
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1.0)
    loaded_tensors, train_state = load_train_state(path)
    restored = unflatten_optimizer(TRAIN_PREFIX + "opt0.", loaded_tensors, train_state["opt"])
    opt2.load_state_dict(restored)
    assert opt2.param_groups[0]["lr"] == 1e-2 and tuple(opt2.param_groups[0]["betas"]) == (0.8, 0.95)
    ref = opt.state_dict()["state"]
    got = opt2.state_dict()["state"]
    assert ref.keys() == got.keys()
    for pid in ref:
        for key in ref[pid]:
            assert torch.equal(torch.as_tensor(ref[pid][key]), torch.as_tensor(got[pid][key])), (pid, key)
    step(model, opt)
    step(model2, opt2)
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_flatten_keeps_non_tensor_state():
    state = {
        "state": {0: {"step": 3, "momentum_buffer": torch.ones(2)}},
        "param_groups": [{"lr": 0.1, "params": [0]}],
    }
    tensors, plain = flatten_optimizer("p.", state)
    assert list(tensors) == ["p.0.momentum_buffer"]
    plain = json.loads(json.dumps(plain))  # it must survive JSON
    back = unflatten_optimizer("p.", tensors, plain)
    assert back["state"][0]["step"] == 3 and torch.equal(back["state"][0]["momentum_buffer"], torch.ones(2))
    assert back["param_groups"] == [{"lr": 0.1, "params": [0]}]
