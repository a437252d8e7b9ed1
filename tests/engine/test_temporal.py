"""The temporal model: receptive field arithmetic and the 1f twin's equivalence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vp3d_engine.lifters.inference import predict_sequence
from vp3d_engine.lifters.registry import build_temporal_model, lifter_names, lifter_spec
from vp3d_engine.lifters.temporal import TemporalModel, TemporalModelOptimized1f


def _randomise_bn(model: TemporalModel) -> None:
    gen = torch.Generator().manual_seed(7)
    for bn in [model.expand_bn, *model.layers_bn]:
        bn.running_mean.copy_(torch.randn(bn.num_features, generator=gen))
        bn.running_var.copy_(torch.rand(bn.num_features, generator=gen) + 0.5)
        bn.weight.data.copy_(torch.randn(bn.num_features, generator=gen))
        bn.bias.data.copy_(torch.randn(bn.num_features, generator=gen))


@pytest.mark.parametrize(("widths", "expected"), [([3], 3), ([3, 3], 9), ([3, 3, 3, 3, 3], 243), ([5, 3], 15),
                                                  ([1], 1)])
def test_receptive_field_is_product_of_widths(widths: list[int], expected: int) -> None:
    model = TemporalModel(17, 2, 17, widths, channels=8)
    assert model.receptive_field == expected


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("widths", [[3, 3, 3], [5, 3], [3, 5, 3]])
def test_optimized_1f_twin_matches_dilated_model(causal: bool, widths: list[int]) -> None:
    torch.manual_seed(0)
    full = TemporalModel(17, 2, 17, widths, causal=causal, channels=32, dropout=0.25)
    _randomise_bn(full)
    full.eval()
    fast = TemporalModelOptimized1f(17, 2, 17, widths, causal=causal, channels=32, dropout=0.25)
    fast.load_state_dict(full.state_dict(), strict=True)
    fast.eval()
    rf = full.receptive_field
    x = torch.randn(3, rf + 20, 17, 2)
    with torch.no_grad():
        y_full = full(x)
        y_fast = torch.cat([fast(x[:, i: i + rf]) for i in range(x.shape[1] - rf + 1)], dim=1)
    assert y_full.shape == (3, 21, 17, 3)
    torch.testing.assert_close(y_fast, y_full, rtol=1e-4, atol=1e-4)


def test_bfloat16_training_passes_give_fp32_joints_close_to_fp32() -> None:
    """`vp3d train --precision bf16` runs the matrix products in bfloat16; the joints still come out
    in fp32 (bf16 would round a metre to about 2 mm) and within bf16's rounding of the fp32 answer."""
    torch.manual_seed(0)
    full = TemporalModel(17, 2, 17, [3, 3, 3], channels=64)
    _randomise_bn(full)
    full.eval()
    fast = TemporalModelOptimized1f(17, 2, 17, [3, 3, 3], channels=64)
    fast.load_state_dict(full.state_dict(), strict=True)
    fast.eval()
    x = torch.randn(4, 27, 17, 2)
    with torch.no_grad():
        exact = full(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            halves = [full(x), fast(x)]
    for y in halves:
        assert y.dtype == torch.float32 and y.shape == exact.shape
        err = (y - exact).abs().max() / exact.abs().max()
        assert 0 < err < 0.05  # rounded (so bf16 really ran), but only by bf16's 3 significant digits


@pytest.mark.parametrize("causal", [False, True])
def test_causal_predictions_never_look_at_future_frames(causal: bool) -> None:
    torch.manual_seed(0)
    model = TemporalModel(17, 2, 17, [3, 3], causal=causal, channels=16).eval()
    x = np.random.default_rng(0).normal(size=(40, 17, 2)).astype(np.float32)
    changed = x.copy()
    changed[25:] += 1.0
    a, b = predict_sequence(model, x), predict_sequence(model, changed)
    assert a.shape == (40, 17, 3)
    past_unchanged = np.allclose(a[:25], b[:25], atol=1e-6)
    assert past_unchanged == causal


def test_bad_input_shapes_are_rejected_with_clear_messages() -> None:
    model = TemporalModel(17, 2, 17, [3, 3], channels=8)
    with pytest.raises(ValueError, match="at least 9 frames"):
        model(torch.randn(1, 5, 17, 2))
    with pytest.raises(ValueError, match=r"\(N, T, 17, 2\)"):
        model(torch.randn(1, 20, 16, 2))
    with pytest.raises(ValueError, match="odd"):
        TemporalModel(17, 2, 17, [3, 4])


def test_registry_builds_named_models() -> None:
    assert {"videopose3d", "test"} <= set(lifter_names())
    tiny = build_temporal_model(lifter_spec("test").architecture, 17, 17)
    assert tiny.receptive_field == 9
    paper = lifter_spec("videopose3d").architecture
    assert paper["filter_widths"] == [3, 3, 3, 3, 3] and paper["channels"] == 1024
