"""Qt-object controllers without widgets of their own: the scan controller (opening, navigation, editing intents,
model jobs), the file commands, the viewer (views in step with the controller), the review panels, the edit
safety (lock, journal, recovery), the job status and retraining."""
