"""What the window knows, without widgets: the open scan (:mod:`~heartseg_gui.state.session`) and the user's
settings (:mod:`~heartseg_gui.state.settings`)."""
