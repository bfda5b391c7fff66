"""The collapse alarm against hand-computed steps."""

from __future__ import annotations

import logging

import pytest

from deepeyes.analysis.collapse import CollapseAlarm


def test_fires_after_patience_consecutive_steps_below_the_threshold():
    alarm = CollapseAlarm(fraction=0.5, patience=3)
    # baseline 2.0 → threshold 1.0; steps 3, 4, 5 are below (step 2 at 1.5 is not)
    fired = {step: alarm.update(step, rate) for step, rate in enumerate([2.0, 1.5, 0.9, 0.8, 0.7, 0.6], start=1)}
    assert [step for step, message in fired.items() if message] == [5]
    assert alarm.fired_at == [5] and alarm.collapsed and alarm.threshold == 1.0
    assert "step 5" in fired[5] and "50%" in fired[5]


def test_a_recovery_resets_the_count_and_rearms():
    alarm = CollapseAlarm(fraction=0.5, patience=2)
    for step, rate in enumerate([1.0, 0.4, 0.6, 0.4, 0.3, 0.9, 0.2, 0.1], start=1):
        alarm.update(step, rate)
    # below at 2 (count 1), 0.6 resets, 4-5 fire, 0.9 resets, 7-8 fire again
    assert alarm.fired_at == [5, 8]


def test_exactly_at_the_threshold_is_not_below():
    alarm = CollapseAlarm(fraction=0.5, patience=1)
    assert alarm.update(1, 1.0) is None
    assert alarm.update(2, 0.5) is None
    assert alarm.update(3, 0.49) is not None


def test_zero_baseline_never_fires():
    alarm = CollapseAlarm(fraction=0.5, patience=1)
    assert all(alarm.update(step, 0.0) is None for step in range(1, 6))


@pytest.mark.parametrize(("fraction", "patience"), [(0.0, 3), (1.0, 3), (0.5, 0)])
def test_rejects_meaningless_settings(fraction, patience):
    with pytest.raises(ValueError):
        CollapseAlarm(fraction=fraction, patience=patience)


def test_update_and_log_warns_once(caplog):
    alarm = CollapseAlarm(fraction=0.5, patience=1)
    with caplog.at_level(logging.WARNING, logger="deepeyes.analysis.collapse"):
        for step, rate in enumerate([1.0, 0.1, 0.1], start=1):
            alarm.update_and_log(step, rate)
    assert [r.getMessage().startswith("tool-use collapse at step 2") for r in caplog.records] == [True]
