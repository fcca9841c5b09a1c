"""Panels and small widgets of the main window (no data logic)."""
