"""ConfidenceAccumulator: the decayed confidence-weighted mean over frames, its limits (decay 0 / 1), zero
confidence, pass-through groups, reset, errors; fed with Deep3DFaceNet.aggregate's total confidences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.inference.temporal_fusion import ConfidenceAccumulator
from dfmvr_core.morphable.model import CoefficientSizes
from dfmvr_core.networks.baseline_config import BaselineNetworkConfig
from dfmvr_core.networks.deep3dface import Deep3DFaceNet


def test_matches_the_explicit_formula():
    rng = np.random.default_rng(0)
    frames = rng.normal(size=(6, 4))
    confidences = rng.uniform(0.1, 3.0, size=(6, 4))
    decay = 0.7
    acc = ConfidenceAccumulator(decay)
    for t in range(6):
        fused = acc.update({"identity": frames[t].astype(np.float32)}, {"identity": confidences[t]})["identity"]
        w = confidences[: t + 1] * decay ** np.arange(t, -1, -1)[:, None]
        expected = (w * frames[: t + 1]).sum(0) / w.sum(0)
        np.testing.assert_allclose(fused, expected, rtol=1e-6)
        assert fused.dtype == np.float32
    np.testing.assert_allclose(acc.weights["identity"], w.sum(0))
    assert acc.frames == 6


def test_limits_dominance_and_zero_confidence():
    last = ConfidenceAccumulator(0.0)
    last.update({"x": np.array([1.0, 2.0])}, {"x": np.ones(2)})
    np.testing.assert_allclose(last.update({"x": np.array([5.0, 6.0])}, {"x": np.ones(2)})["x"], [5.0, 6.0])

    running = ConfidenceAccumulator(1.0)  # no forgetting: the plain mean of all frames
    for value in (1.0, 2.0, 6.0):
        out = running.update({"x": np.array([value])}, {"x": np.array(1.0)})
    np.testing.assert_allclose(out["x"], [3.0])

    acc = ConfidenceAccumulator(0.9)
    acc.update({"x": np.array([1.0, 1.0])}, {"x": np.array([1e6, 1.0])})
    out = acc.update({"x": np.array([9.0, 9.0])}, {"x": np.array([1.0, 1e6])})
    assert abs(out["x"][0] - 1.0) < 1e-4 and abs(out["x"][1] - 9.0) < 1e-4  # per-coefficient weights
    held = acc.update({"x": np.array([-50.0, -50.0])}, {"x": np.zeros(2)})  # no information: estimate kept
    np.testing.assert_allclose(held["x"], out["x"])


def test_unseen_values_pass_through_and_reset():
    acc = ConfidenceAccumulator(0.5)
    first = acc.update({"identity": np.array([4.0]), "pose": np.array([[0.1] * 6])}, {"identity": np.array([0.0])})
    np.testing.assert_allclose(first["identity"], [4.0])  # nothing accumulated yet: the current value
    second = acc.update({"identity": np.array([2.0]), "pose": np.array([[0.3] * 6])}, {"identity": np.array([1.0])})
    np.testing.assert_allclose(second["identity"], [2.0])
    np.testing.assert_allclose(second["pose"], [[0.3] * 6])  # groups without confidence are not fused
    acc.reset()
    assert acc.frames == 0 and acc.weights == {}
    np.testing.assert_allclose(acc.update({"identity": np.array([7.0])}, {"identity": 1.0})["identity"], [7.0])


def test_errors_name_the_problem():
    for decay in (-0.1, 1.5, float("nan"), True, "0.9"):
        with pytest.raises(ConfigError, match="decay: expected a number in"):
            ConfidenceAccumulator(decay)
    acc = ConfidenceAccumulator()
    with pytest.raises(ShapeError, match=r"groups \['albedo'\] have no coefficients"):
        acc.update({"identity": np.zeros(3)}, {"albedo": np.ones(3)})
    with pytest.raises(ShapeError, match=r"confidences\['identity'\]: expected finite values >= 0"):
        acc.update({"identity": np.zeros(3)}, {"identity": np.array([1.0, -1.0, 1.0])})
    with pytest.raises(ShapeError, match=r"confidences\['identity'\]: expected finite"):
        acc.update({"identity": np.zeros(3)}, {"identity": np.array([1.0, np.nan, 1.0])})
    with pytest.raises(ShapeError, match=r"coefficients\['identity'\]: NaN or inf"):
        acc.update({"identity": np.array([0.0, np.inf, 0.0])}, {"identity": np.ones(3)})
    with pytest.raises(ShapeError, match=r"shape \(2,\) does not broadcast to the coefficients' \(3,\)"):
        acc.update({"identity": np.zeros(3)}, {"identity": np.ones(2)})
    acc.update({"identity": np.zeros(3)}, {"identity": np.ones(3)})
    with pytest.raises(ShapeError, match=r"shape \(4,\), earlier frames had \(3,\); call reset\(\)"):
        acc.update({"identity": np.zeros(4)}, {"identity": np.ones(4)})


def test_fuses_deep3dface_frames_by_their_cnet_confidence():
    """Frames with more valid views carry more confidence: the fused identity leans toward them."""
    sizes = CoefficientSizes(identity=4, expression=2, albedo=3)
    config = BaselineNetworkConfig(
        name="t", kind="deep3dface", backbone_depth=18, backbone_width=0.25, aggregation="cnet", input_size=64
    )
    torch.manual_seed(0)
    net = Deep3DFaceNet(config, sizes).eval()
    torch.nn.init.normal_(net.rnet.heads.identity.weight, 0.0, 1.0)
    images = torch.rand(2, 3, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    valid = torch.tensor([[True, True, True], [True, False, False]])
    with torch.no_grad():
        coefficients, totals = net.aggregate(images, valid)
    np.testing.assert_allclose(totals["identity"].numpy(), [[3.0] * 4, [1.0] * 4], rtol=1e-4)  # untrained: c = 1
    acc = ConfidenceAccumulator(1.0)
    for b in range(2):
        frame = {k: v[b].numpy() for k, v in coefficients.items()}
        fused = acc.update(frame, {"identity": totals["identity"][b].numpy()})
    expected = (3 * coefficients["identity"][0] + coefficients["identity"][1]) / 4
    np.testing.assert_allclose(fused["identity"], expected.numpy(), rtol=1e-5, atol=1e-6)
