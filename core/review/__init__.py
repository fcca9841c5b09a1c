"""Where to look first: per-slice uncertainty from the model's probabilities, QC flags from simple anatomy rules,
the review queue built from both, and the correction record (Qt-free; the window only shows them).

* :mod:`core.review.uncertainty` — one score per slice (0..1, higher = less sure) and a compact uint8 map.
* :mod:`core.review.qc` — named flags per slice and per scan, each with a one-line explanation.
* :mod:`core.review.record` — per slice and patient: AI vs saved mask (Dice, area change), review state, time
  spent; the CSV / Markdown report of ``heartseg report`` and File ▸ Export Report….
"""
