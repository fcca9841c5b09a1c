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
rm -rf "$HEARTSEG_SETTINGS_DIR"
echo "screenshots written to docs/"
