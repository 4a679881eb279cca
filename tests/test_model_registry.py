"""Model metadata by construction: the registry names each model, every instance records its
constructor arguments, and a checkpoint rebuilds exactly the model that wrote it — for every
registered model, so a new model or hyper-parameter is covered the day it is added."""
from __future__ import annotations

import pytest
import torch

from dic.checkpoints import load_model, save_checkpoint
from dic.models import MODELS, complete_hparams, create_model, hparam_specs, model_hparams, register_model
from dic.models.base import CodecBase

#: Non-default, small values of every hyper-parameter of every registered model. A model or a
#: hyper-parameter missing here fails test_every_hyper_parameter_is_exercised.
NON_DEFAULT = {
    "cheng2020-anchor": dict(quality=2, N=24, context="checkerboard"),
    "multiscale-decomp": dict(quality=4, N=24, context="checkerboard"),
    "snr-decomp": dict(quality=1, N=16, num_layers=2, num_heads=2, head_dim=8, token_patch=2,
                       local_blocks=[1, 2], nonlocal_blocks=2, context="checkerboard", branch_width="full"),
}


def test_every_hyper_parameter_is_exercised():
    assert sorted(NON_DEFAULT) == MODELS.names()
    for name, values in NON_DEFAULT.items():
        defaults = model_hparams(name)
        assert set(values) == set(defaults), f"{name}: give every hyper-parameter a non-default value here"
        assert all(values[k] != defaults[k] for k in values), name


@pytest.mark.parametrize("name", sorted(NON_DEFAULT))
def test_checkpoint_rebuilds_the_same_model(tmp_path, name):
    torch.manual_seed(0)
    model = create_model(name, **NON_DEFAULT[name]).eval()
    assert model.name == name and type(model) is MODELS.get(name)
    assert model.hparams == NON_DEFAULT[name]
    save_checkpoint(tmp_path / "m.pth", model)
    loaded = load_model(tmp_path / "m.pth").eval()
    assert loaded.hparams == model.hparams
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)["x_hat"], model(x)["x_hat"], rtol=0, atol=0)


def test_direct_construction_records_too():
    model = MODELS.get("multiscale-decomp")(N=16)  # not through create_model
    assert model.hparams == {"quality": None, "N": 16, "context": "serial"}
    assert create_model("cheng2020-anchor").hparams == {"quality": 6, "N": 192, "context": "serial"}


def test_files_that_predate_an_argument_compare_with_its_default():
    assert complete_hparams("cheng2020-anchor", {"quality": 3, "N": 128}) == \
        create_model("cheng2020-anchor", quality=3).hparams


def test_every_hyper_parameter_has_a_type_and_a_meaning():
    for name in MODELS.names():
        for key, spec in hparam_specs(name).items():
            assert spec.expected and spec.doc, f"{name}.{key}: document it in the class's Args: section"
    assert hparam_specs("snr-decomp")["context"].choices == ("serial", "checkerboard")
    assert hparam_specs("snr-decomp")["local_blocks"].expected == "a list of integers"


def test_a_model_with_loose_arguments_cannot_be_registered():
    class Loose(CodecBase):
        def __init__(self, quality=None, N=None, **kwargs):
            super().__init__(quality, N)

    with pytest.raises(TypeError, match="kwargs"):
        register_model("loose-test-model")(Loose)
    assert "loose-test-model" not in MODELS
