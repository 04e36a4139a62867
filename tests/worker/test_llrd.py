"""Layer-wise learning-rate decay by hand: layer indices, factors and the split of parameter groups."""

from __future__ import annotations

import pytest
import torch

from worker.ultralytics_ext.llrd import layer_index, layer_lr_factors, split_by_layer


def test_layer_index_of_ultralytics_parameter_names() -> None:
    assert layer_index("model.12.cv1.conv.weight") == 12
    assert layer_index("model.0.bn.bias") == 0
    assert layer_index("teacher.model.3.weight") is None and layer_index("logit_scale") is None


def test_factors_decay_from_the_head_backwards() -> None:
    assert layer_lr_factors(4, 0.5) == [0.125, 0.25, 0.5, 1.0]
    assert layer_lr_factors(1, 0.5) == [1.0]


def test_split_keeps_group_settings_and_scales_lr_per_layer() -> None:
    a, b, c, loose = (torch.zeros(1) for _ in range(4))
    groups = [
        {"params": [a, b, loose], "lr": 0.1, "weight_decay": 5e-4, "param_group": "weight"},
        {"params": [c], "lr": 0.1, "weight_decay": 0.0, "param_group": "bias"},
    ]
    layer_of = {id(a): 0, id(b): 2, id(c): 2}
    split = split_by_layer(groups, layer_of, layer_lr_factors(3, 0.5))
    summary = [(g["param_group"], g["layer"], g["lr"], g["weight_decay"], len(g["params"])) for g in split]
    assert summary == [
        ("weight", None, 0.1, 5e-4, 1),
        ("weight", 0, pytest.approx(0.025), 5e-4, 1),
        ("weight", 2, 0.1, 5e-4, 1),
        ("bias", 2, 0.1, 0.0, 1),
    ]
    assert split[0]["params"][0] is loose and split[1]["params"][0] is a
