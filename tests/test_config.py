"""TrainConfig, make_config and load_yaml: every mistake is one ConfigError line naming the field."""

from __future__ import annotations

import pytest

from pixelmind.config import TrainConfig, load_yaml, make_config
from pixelmind.errors import ConfigError


def _error(**kw) -> str:
    with pytest.raises(ConfigError) as info:
        make_config(**kw)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_defaults_and_overrides():
    cfg = make_config({"data": "digits", "epochs": 5, "lr": 0.1}, epochs=7, lr=None, batch=16)
    assert cfg.data == "digits" and cfg.epochs == 7 and cfg.batch == 16
    assert cfg.lr == 0.1  # a None override leaves the base value
    assert cfg.optimizer == "adamw" and cfg.model is None and cfg.imgsz is None


def test_unknown_key_is_named():
    msg = _error(data="digits", epoch=3)
    assert msg.startswith("epoch: unknown key")
    assert "epochs" in msg  # allowed keys are listed


def test_bad_literal_names_field_and_allowed_values():
    msg = _error(data="digits", optimizer="adam")
    assert msg.startswith("optimizer:")
    assert "'adamw'" in msg and "'sgd'" in msg and "'adam'" in msg
    msg = _error(data="digits", precision="fp8")
    assert msg.startswith("precision:") and all(v in msg for v in ("'fp32'", "'bf16'", "'fp16'", "fp8"))


def test_bad_number_and_several_errors():
    msg = _error(data="digits", epochs=0, lr=-1)
    assert "epochs:" in msg and "greater than or equal to 1" in msg
    assert "lr:" in msg and "; " in msg


def test_missing_required_field():
    msg = _error(epochs=3)
    assert msg == "data: required"


def test_device_check_names_the_field_once():
    msg = _error(data="digits", device="tpu")
    assert msg.startswith("device:") and "'tpu'" in msg
    assert "config:" not in msg and msg.count("got") == 1
    assert make_config(data="digits", device="cuda:1").device == "cuda:1"


def test_direct_construction_raises_config_error_too():
    with pytest.raises(ConfigError, match="^val_fraction:"):
        TrainConfig(data="digits", val_fraction=1.5)
    with pytest.raises(ConfigError, match="^foo: unknown key"):
        TrainConfig(data="digits", foo=1)


def test_assignment_is_validated():
    cfg = make_config(data="digits")
    with pytest.raises(ValueError):
        cfg.epochs = 0
    cfg.epochs = 4
    assert cfg.epochs == 4


def test_filled_takes_defaults_only_for_unset_fields():
    cfg = make_config(data="digits", epochs=2)
    full = cfg.filled({"epochs": 50, "imgsz": 32, "model": "pm_cnn_s", "optimizer": "sgd"})
    assert full.epochs == 2  # the user's value wins
    assert full.imgsz == 32 and full.model == "pm_cnn_s"
    assert full.optimizer == "adamw"  # not None, so not a default to fill
    assert cfg.imgsz is None and cfg.model is None  # a copy; the original is unchanged


def test_dump_and_rebuild_roundtrip():
    cfg = make_config(data="digits", epochs=3, augment="trivial", clip_grad=1.0)
    assert make_config(cfg.model_dump()) == cfg


def test_load_yaml(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: digits\nepochs: 4\nmodel: pm_cnn_t\n")
    assert load_yaml(p) == {"data": "digits", "epochs": 4, "model": "pm_cnn_t"}
    assert make_config(load_yaml(p), epochs=9).epochs == 9
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_yaml(empty) == {}


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("data: [digits\nepochs: 3\n", "not valid YAML"),
        ("- data\n- digits\n", "expected a mapping"),
        ("just a string\n", "expected a mapping"),
        ("a: 1\n\tb: 2\n", "not valid YAML"),
    ],
)
def test_load_yaml_bad_files(tmp_path, text, fragment):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=fragment) as info:
        load_yaml(p)
    assert "bad.yaml" in str(info.value) and "\n" not in str(info.value)


def test_load_yaml_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found") as info:
        load_yaml(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(info.value)
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(tmp_path)  # a folder is not a config file


def test_yaml_with_unknown_key_fails_in_make_config(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: digits\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="^learning_rate: unknown key"):
        make_config(load_yaml(p))
