# The two set-up commands of the README: `make run` (the window on the bundled sample) and `make test`.
.PHONY: setup run test screenshots bench

setup:
	bash scripts/setup.sh

run: setup
	.venv/bin/heartseg

test: setup
	CI=$${CI:-} QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest -q

screenshots: setup
	bash scripts/screenshots.sh

bench: setup
	.venv/bin/heartseg bench
