#!/usr/bin/env bash
# The README's screenshots: the real window under Xvfb (xcb platform), after inference has finished.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p docs
export TF_CPP_MIN_LOG_LEVEL=3
# a fresh settings folder: the default window size, not whatever layout this machine remembered
HEARTSEG_SETTINGS_DIR=$(mktemp -d); export HEARTSEG_SETTINGS_DIR
xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/heartseg open --screenshot docs/window.png
xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/heartseg open resources/sample/ts_chest_crop/kaggle_layout/ts_pulm \
  --screenshot docs/window_kaggle_patient.png
# where to look first: the sample at its most uncertain slice, with the confidence heat map (the Kaggle slices
# of ../shared are not shown here: they may not be copied into the repository, pictures included)
xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/heartseg open --confidence --most-uncertain \
  --screenshot docs/window_review.png
rm -rf "$HEARTSEG_SETTINGS_DIR"
echo "screenshots written to docs/"
