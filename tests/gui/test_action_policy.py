"""ActionPolicy: the one place that decides which actions are enabled (pure logic, no window)."""

from __future__ import annotations

import pytest

from heartseg_gui.actions import RETRAINING_BUSY, ActionPolicy, Verdict, WindowState

NAMES = sorted(ActionPolicy.NEEDS_SESSION | ActionPolicy.EDITS | ActionPolicy.MODEL_JOBS
               | {"open_scan", "quit", "undo", "redo", "cancel_job", "versions", "tool_navigate"})
policy = ActionPolicy()


def enabled(state: WindowState) -> set[str]:
    return {name for name, v in policy.decide(state, NAMES).items() if v.enabled}


def test_without_a_scan_only_opening_and_model_choice_work():
    on = enabled(WindowState())
    assert not on & ActionPolicy.NEEDS_SESSION
    assert {"open_scan", "quit", "load_model", "retrain", "versions", "cancel_job", "tool_brush"} <= on
    assert "undo" not in on and "redo" not in on


def test_an_open_editable_scan_enables_everything_but_empty_history():
    on = enabled(WindowState(session_open=True))
    assert set(NAMES) - on == {"undo", "redo"}
    assert {"undo", "redo"} <= enabled(WindowState(session_open=True, can_undo=True, can_redo=True))


def test_read_only_disables_every_edit_and_save_but_not_export_or_navigation():
    state = WindowState(session_open=True, read_only_reason="held by pid 42", can_undo=True, can_redo=True)
    on = enabled(state)
    assert not on & ActionPolicy.EDITS
    assert {"export", "export_report", "next_unreviewed", "next_uncertain", "run_prediction", "tool_navigate"} <= on


@pytest.mark.parametrize("session_open", [False, True])
def test_retraining_disables_the_model_jobs_and_says_why(session_open):
    verdicts = policy.decide(WindowState(session_open=session_open, retraining=True), NAMES)
    for name in ActionPolicy.MODEL_JOBS:
        assert verdicts[name] == Verdict(False, RETRAINING_BUSY)
    assert verdicts["versions"].enabled and verdicts["open_scan"].enabled
    assert verdicts["accept_ai_all"].enabled is session_open


def test_every_action_of_the_window_gets_a_verdict_and_the_policy_names_only_real_actions(qtbot):
    from PySide6.QtWidgets import QMainWindow

    from heartseg_gui.actions import Actions

    window = QMainWindow()
    qtbot.addWidget(window)
    actions = Actions(window)
    named = ActionPolicy.NEEDS_SESSION | ActionPolicy.EDITS | ActionPolicy.MODEL_JOBS
    assert named <= set(actions.by_name)
    verdicts = policy.decide(WindowState(retraining=True), actions.by_name)
    assert set(verdicts) == set(actions.by_name)
    actions.apply(verdicts)
    assert not actions.load_model.isEnabled() and actions.load_model.toolTip() == RETRAINING_BUSY
    actions.apply(policy.decide(WindowState(), actions.by_name))
    assert actions.load_model.isEnabled() and actions.load_model.toolTip() != RETRAINING_BUSY
    assert actions.retrain.statusTip().startswith("Fine-tune")  # its own tip comes back
