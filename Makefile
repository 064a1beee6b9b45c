# The two commands of the README's Quick start: `make demo` and `make test`. Both install
# what they need first. The Python environment (LeRobot + torch, ~9 GB) is created once per
# dependency spec under ~/.cache/mimic-deployment/envs/ and reused by every clone.
PYTHON ?= python3
PY := .venv/bin/python
TM := ./mimic_deployment/train_manager.sh
export PYTHONPATH := $(CURDIR)
# The demo: ACT, small enough to train to the end on a CPU in about a minute.
DEMO_TAG ?= $(shell date +%Y%m%d-%H%M%S)
DEMO_ARGS ?= --steps 20 --save-freq 10 --batch-size 2 --num-workers 0
DEMO_LEROBOT_ARGS ?= --policy.pretrained_backbone_weights=null --policy.dim_model=64 \
	--policy.dim_feedforward=256 --policy.n_encoder_layers=1 --policy.n_decoder_layers=1 \
	--policy.chunk_size=10 --policy.n_action_steps=10 --log_freq=2

.PHONY: env demo test lint slurm bench clean-outputs

env:
	@$(PYTHON) scripts/ensure_env.py

demo: env
	$(PY) -m mimic_deployment datasets demo
	HF_HUB_OFFLINE=1 $(TM) --policy act --dataset-group demo --tag $(DEMO_TAG) $(DEMO_ARGS) --foreground \
		-- $(DEMO_LEROBOT_ARGS)

slurm:
	@bash scripts/install_slurm.sh

# Lint first: a style or type error fails fast, before the slow suite.
lint: env
	$(PY) -m ruff check mimic_deployment tests benchmarks scripts
	$(PY) -m mypy mimic_deployment

test: env slurm lint
	$(PY) -m pytest

bench: env
	$(PY) benchmarks/bench_cli.py
	$(PY) benchmarks/bench_status.py
	$(PY) benchmarks/bench_progress.py
	$(PY) benchmarks/bench_datasets.py
	$(PY) benchmarks/bench_faults.py
