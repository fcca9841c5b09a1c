"""``heartseg bench``: the benchmark orchestrator (:mod:`.run`), its inference and training sections and the
window measurements (:mod:`.gui`, run in subprocesses). The only code that knows both ``core`` and the window."""
