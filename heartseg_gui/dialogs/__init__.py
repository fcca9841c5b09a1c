"""Dialogs and questions: Model ▸ Retrain…, Model ▸ Versions…, Help ▸ Shortcuts, and :class:`~heartseg_gui.dialogs.prompts.Prompts`
(every question the window asks, replaceable by tests)."""
