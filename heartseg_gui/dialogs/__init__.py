"""Dialogs and questions: Model ▸ Retrain…, Model ▸ Versions…, Help ▸ Shortcuts, the label picker of File ▸ Attach
Mask…, the non-modal bars (use the new model?, geometry warnings), and :class:`~heartseg_gui.dialogs.prompts.Prompts`
(every question the window asks, replaceable by tests)."""
