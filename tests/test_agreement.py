import math

import pytest

from korlhf.agreement import agreement_rate, cohen_kappa, rank_correlations


def test_kappa_by_hand():
    a = ["A", "A", "B", "B", "A", "tie"]
    b = ["A", "B", "B", "B", "A", "A"]
    # p_o = 4/6; a: A3 B2 tie1, b: A3 B3 -> p_e = (3*3 + 2*3 + 1*0) / 36 = 15/36
    p_o, p_e = 4 / 6, 15 / 36
    assert agreement_rate(a, b) == pytest.approx(p_o)
    assert cohen_kappa(a, b) == pytest.approx((p_o - p_e) / (1 - p_e))


def test_kappa_edges():
    assert cohen_kappa(["A", "A"], ["A", "A"]) == 1.0
    assert cohen_kappa(["A", "B"], ["B", "A"]) == pytest.approx(-1.0)
    assert math.isnan(cohen_kappa([None], ["A"]))  # unlabelled items are skipped
    with pytest.raises(ValueError, match="different numbers of items"):
        agreement_rate(["A"], ["A", "B"])


def test_rank_correlations_by_hand():
    # y is x reversed except one swap: ranks x 1..4, y 4,3,1,2 -> d^2 = 9+1+4+4 = 18
    r = rank_correlations([1, 2, 3, 4], [40, 30, 10, 20])
    assert r["spearman"] == pytest.approx(1 - 6 * 18 / (4 * 15))
    # concordant pairs: (3,4) only -> (1 - 5) / 6
    assert r["kendall"] == pytest.approx(-4 / 6)
    assert r["n"] == 4
