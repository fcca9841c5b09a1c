# The two set-up commands of the README: `make run` (the window on the bundled sample) and `make test`.
.PHONY: setup run test screenshots bench

setup:
	bash scripts/setup.sh

run: setup
	.venv/bin/heartseg

# The suite runs in three pytest processes (core I/O and logic; training and versions; the window): two full
# single-process runs of all 599 tests crashed with a segmentation fault late in the run (TensorFlow, OpenVINO and
# Qt threads in one long-lived process), at different tests each time, never when those tests ran on their own.
# Each runs on PYTEST_WORKERS pytest-xdist worker processes (default 2, this machine's cores), test files kept
# whole on one worker (--dist loadfile: a module's fixtures are built once): 1111 s -> 618 s of pytest on the
# 2-core machine (docs/BENCHMARKS.md, "The test suite").
PYTEST_WORKERS ?= 2
PYTEST = CI=$${CI:-} QT_QPA_PLATFORM=offscreen .venv/bin/python -X faulthandler -m pytest -q --durations=15 \
	-n $(PYTEST_WORKERS) --dist loadfile

test: setup
	$(PYTEST) tests/core --ignore=tests/core/training --ignore=tests/core/versions
	$(PYTEST) tests/core/training tests/core/versions
	$(PYTEST) tests/gui

screenshots: setup
	bash scripts/screenshots.sh

bench: setup
	.venv/bin/heartseg bench
