"""Sequence diversity metrics against hand-computed values."""

import pytest
import torch

from gflownet.diversity import edit_distance, hamming, mean_pairwise_distance, modes_reached, novelty
from gflownet.environments.sequences import Sequences
from gflownet.errors import ConfigError

ENV = Sequences(alphabet="abeikgnst", max_length=7, min_length=1)


def _t(*words):
    return ENV.encode(list(words))


def test_hamming():
    a = torch.tensor([[0, 1, 1, 0], [1, 1, 1, 1]])
    b = torch.tensor([[0, 0, 0, 0], [0, 1, 1, 0], [1, 0, 0, 1]])
    assert hamming(a, b).tolist() == [[2, 0, 4], [4, 2, 2]]
    with pytest.raises(ConfigError, match="equal lengths"):
        hamming(a, b[:, :3])


def test_edit_distance_by_hand():
    a = torch.cat([_t("kitten", "sitting"), ENV.reset(1), _t("abba")])  # the third is empty
    d = edit_distance(a, a, pad=ENV.pad)
    # kitten -> sitting: k->s, e->i, +g = 3; abba -> kitten: 6 (no common letter, 4 substitutions, 2 insertions)
    assert d.tolist() == [[0, 3, 6, 6], [3, 0, 7, 7], [6, 7, 0, 4], [6, 7, 4, 0]]
    # without pads: plain equal-length strings, where it is at most the Hamming distance
    x = torch.tensor([[0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 1, 1]])
    assert edit_distance(x, x).tolist() == [[0, 2, 1], [2, 0, 3], [1, 3, 0]]  # 1010 -> 0111: 3
    assert (edit_distance(x, x) <= hamming(x, x)).all()


def test_edit_distance_in_chunks_equals_one_table(monkeypatch):
    import gflownet.diversity as diversity

    g = torch.Generator().manual_seed(0)
    x = torch.randint(3, (9, 6), generator=g)
    whole = edit_distance(x, x)
    monkeypatch.setattr(diversity, "_MAX_TABLE", 100)
    assert torch.equal(edit_distance(x, x), whole)


def test_modes_novelty_diversity():
    modes = torch.tensor([[0, 0, 0, 0], [1, 1, 1, 1], [0, 1, 0, 1]])
    samples = torch.tensor([[0, 0, 0, 1], [1, 1, 0, 0]])
    assert modes_reached(samples, modes, radius=1).tolist() == [True, False, True]
    assert modes_reached(samples, modes, radius=2).tolist() == [True, True, True]
    assert novelty(samples, modes).tolist() == [1, 2]
    assert mean_pairwise_distance(modes) == pytest.approx((4 + 2 + 2) / 3)
    assert mean_pairwise_distance(_t("kitten", "sitting"), lambda a, b: edit_distance(a, b, pad=ENV.pad)) == 3.0
    with pytest.raises(ConfigError, match="at least 2"):
        mean_pairwise_distance(modes[:1])
