"""Metrics on hand-computed cases."""

import numpy as np
import pytest

from hjr.evaluate import pck_curve, scores


def test_scores_on_a_hand_computed_case():
    labels = np.zeros((2, 21, 2))
    labels[:, 1] = [10.0, 0.0]  # hand box size 10 px
    predictions = labels.copy()
    predictions[0, 0] = [3.0, 4.0]  # one joint 5 px off; box 10 -> outside 0.2 * 10
    predictions[1, 2] = [1.0, 0.0]  # one joint 1 px off: within 2 px
    result = scores(predictions, labels)
    assert result["kaggle_mse"] == pytest.approx((25 + 1) / 42)
    assert result["mse_per_coordinate"] == pytest.approx(13 / 42)
    assert result["epe"] == pytest.approx(6 / 42)
    assert result["pck@0.2"] == pytest.approx(41 / 42)
    assert result["per_joint_epe"]["wrist"] == pytest.approx(2.5)
    assert result["per_joint_epe"]["thumb_3"] == pytest.approx(0.5)


def test_auc_of_perfect_and_hopeless_predictions():
    labels = np.random.default_rng(0).uniform(20, 100, (5, 21, 2))
    assert scores(labels, labels)["auc_0_30px"] == pytest.approx(1.0)
    assert scores(labels + 100, labels)["auc_0_30px"] == pytest.approx(0.0)
    thresholds, curve = pck_curve(np.full((1, 21), 15.0))
    assert curve[thresholds < 15].max() == 0 and curve[thresholds >= 15].min() == 1
