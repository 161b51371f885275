"""The threshold acknowledgements suggest (pure)."""

from __future__ import annotations

from pipeline.detect.tuning import separate


def test_the_threshold_keeps_every_real_move_and_drops_the_noise():
    assert separate(deserved=[6.4, 8.1], undeserved=[3.2, 3.6]) == 6.4  # the quietest that keeps both


def test_nothing_marked_noisy_moves_nothing():
    assert separate(deserved=[6.4, 8.1], undeserved=[]) is None


def test_when_labels_overlap_the_fewest_mistakes_win_erring_towards_keeping():
    # 5.0 (noise) sits between real moves: anything from 3.1 to 4.1 keeps them all at the cost of that one
    # alert (above 5.0 would miss 4.1 instead); the quietest of those
    assert separate(deserved=[4.1, 7.0, 9.0], undeserved=[2.0, 3.0, 5.0]) == 4.1


def test_only_noise_moves_the_threshold_above_all_of_it():
    assert separate(deserved=[], undeserved=[3.2, 4.4]) == 4.5


def test_no_threshold_dropping_noise_without_missing_more_real_moves_is_none():
    assert separate(deserved=[2.0, 2.5], undeserved=[9.0]) is None
