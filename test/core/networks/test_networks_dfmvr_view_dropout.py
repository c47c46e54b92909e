"""Training-time view dropout (paper V-C, Fig. 8): P'_a = 2/3, P_l = P_f = P_r = 1/9."""

from __future__ import annotations

import pytest
import torch

from dfmvr_core.errors import ShapeError
from dfmvr_core.networks.dfmvr_net import view_dropout, view_dropout_patterns
from dfmvr_core.networks.net_config import ViewDropoutConfig

DRAWS = 9000


def frequencies(kept: torch.Tensor) -> dict[tuple[bool, ...], float]:
    rows, counts = torch.unique(kept, dim=0, return_counts=True)
    return {tuple(bool(x) for x in row): int(c) / kept.shape[0] for row, c in zip(rows, counts, strict=True)}


def test_paper_patterns_and_probabilities() -> None:
    patterns, probabilities = view_dropout_patterns(3, ViewDropoutConfig())
    table = {tuple(bool(x) for x in row): float(p) for row, p in zip(patterns, probabilities, strict=True)}
    pairs = {(True, True, False), (True, False, True), (False, True, True)}
    assert table.pop((True, True, True)) == pytest.approx(2 / 3)
    assert all(table.pop(pair) == 0.0 for pair in pairs)
    assert table == pytest.approx(
        {(True, False, False): 1 / 9, (False, True, False): 1 / 9, (False, False, True): 1 / 9}
    )
    assert float(probabilities.sum()) == pytest.approx(1.0)


def test_paper_view_dropout_statistics() -> None:
    valid = torch.ones(DRAWS, 3, dtype=torch.bool)
    kept = view_dropout(valid, torch.Generator().manual_seed(0))
    freq = frequencies(kept)
    # Binomial standard deviations: ≈ 0.005 (all) and ≈ 0.0033 (single); bounds are > 4 σ.
    assert freq[(True, True, True)] == pytest.approx(2 / 3, abs=0.02)
    for single in [(True, False, False), (False, True, False), (False, False, True)]:
        assert freq[single] == pytest.approx(1 / 9, abs=0.015), single
    assert set(freq) == {(True, True, True), (True, False, False), (False, True, False), (False, False, True)}


def test_pairs_are_optional() -> None:
    config = ViewDropoutConfig(p_all_views=0.4, p_pairs=0.3)
    kept = view_dropout(torch.ones(DRAWS, 3, dtype=torch.bool), torch.Generator().manual_seed(1), config)
    freq = frequencies(kept)
    assert freq[(True, True, True)] == pytest.approx(0.4, abs=0.025)
    for pair in [(True, True, False), (True, False, True), (False, True, True)]:
        assert freq[pair] == pytest.approx(0.1, abs=0.015)
    for single in [(True, False, False), (False, True, False), (False, False, True)]:
        assert freq[single] == pytest.approx(0.1, abs=0.015)


def test_view_dropout_is_reproducible_and_respects_valid() -> None:
    valid = torch.ones(64, 3, dtype=torch.bool)
    a = view_dropout(valid, torch.Generator().manual_seed(5))
    b = view_dropout(valid, torch.Generator().manual_seed(5))
    c = view_dropout(valid, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    # Never keeps a view that was not there; a sample never loses all of its views.
    partial = torch.tensor([[True, False, False], [False, True, True], [True, True, False]]).repeat(300, 1)
    kept = view_dropout(partial, torch.Generator().manual_seed(0))
    assert not bool((kept & ~partial).any())
    assert bool(kept.any(dim=1).all())
    assert torch.equal(kept[0::3], partial[0::3])  # one view only: kept as it is
    assert bool((kept[1::3].sum(dim=1) == 1).any())  # front+right samples do sometimes lose a view


def test_view_counts_other_than_three() -> None:
    patterns, probabilities = view_dropout_patterns(1, ViewDropoutConfig())
    assert patterns.tolist() == [[True]] and probabilities.tolist() == [1.0]
    patterns, probabilities = view_dropout_patterns(2, ViewDropoutConfig(p_all_views=0.5, p_pairs=0.2))
    assert patterns.tolist() == [[True, True], [True, False], [False, True]]
    assert probabilities.tolist() == pytest.approx([0.5 / 0.8, 0.15 / 0.8, 0.15 / 0.8])  # no pairs: renormalised
    assert view_dropout(torch.ones(0, 3, dtype=torch.bool)).shape == (0, 3)


def test_view_dropout_input_errors() -> None:
    with pytest.raises(ShapeError, match="valid: expected a \\(B, V\\) bool tensor"):
        view_dropout(torch.ones(4, 3))
    with pytest.raises(ShapeError, match=r"valid: expected shape \(B, V\)"):
        view_dropout(torch.ones(4, 3, 1, dtype=torch.bool))
