"""Registry: unique names, sorted listing, helpful errors."""

from __future__ import annotations

import pytest

from pixelmind.errors import ConfigError
from pixelmind.registry import Registry


def test_register_and_get():
    reg: Registry = Registry("widget")

    @reg.register("alpha")
    def make_a():
        return "a"

    @reg.register()
    def beta():
        return "b"

    assert reg.get("alpha")() == "a" and reg.get("beta")() == "b"
    assert make_a() == "a"  # the decorator returns the function unchanged
    assert "alpha" in reg and "beta" in reg and "make_a" not in reg
    assert len(reg) == 2


def test_duplicate_name_raises_and_keeps_the_first():
    reg: Registry = Registry("widget")
    reg.register("x")(lambda: 1)
    with pytest.raises(ValueError, match="'x' is already registered"):
        reg.register("x")(lambda: 2)
    assert reg.get("x")() == 1

    def y():
        return 3

    reg.register()(y)
    with pytest.raises(ValueError, match="'y'"):
        reg.register()(y)  # the implicit name (__name__) clashes too


def test_unnamed_object_raises():
    reg: Registry = Registry("widget")
    with pytest.raises(ValueError, match="unnamed"):
        reg.register()(object())


def test_unknown_name_lists_sorted_choices():
    reg: Registry = Registry("gadget")
    for n in ("zeta", "alpha", "mid"):
        reg.register(n)(lambda: None)
    with pytest.raises(ConfigError) as info:
        reg.get("nope")
    assert str(info.value) == "unknown gadget 'nope'; choose from: alpha, mid, zeta"
    assert list(reg) == ["alpha", "mid", "zeta"]


def test_model_registry_refuses_a_second_builtin_with_the_same_name():
    from pixelmind.tasks.classify.models import MODELS

    before = MODELS.get("pm_cnn_t")
    with pytest.raises(ValueError):
        MODELS.register("pm_cnn_t")(lambda **_: None)
    assert MODELS.get("pm_cnn_t") is before
