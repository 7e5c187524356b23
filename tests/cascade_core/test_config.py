import dataclasses

import pytest

from cascade_core.config import PRESETS, StageCConfig, preset


def test_configs_are_frozen_and_hashable():
    config = preset("stage_c_lite")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.c_cond = 1
    assert hash(config) == hash(StageCConfig.from_official({"c_cond": 1536, "c_hidden": [1536, 1536],
                                                           "nhead": [24, 24], "blocks": [[4, 12], [12, 4]]}))


def test_every_stage_has_full_and_tiny_presets():
    for stage, sizes in PRESETS.items():
        assert {"full", "tiny"} <= set(sizes)
        assert preset(stage) is sizes["full"]


def test_from_official_drops_dropout_and_refuses_unknown_arguments():
    assert StageCConfig.from_official({"dropout": [0.1, 0.1]}) == StageCConfig()
    with pytest.raises(ValueError, match="c_wrong"):
        StageCConfig.from_official({"c_wrong": 3})
