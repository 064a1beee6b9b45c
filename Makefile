# The two commands of the README's Quick start: `make demo` and `make test`. Both install what they
# need first. The Python environments (scripts/ensure_env.py, each built exactly from its lock file in
# locks/) are created once per lock under ~/.cache/mimic-deployment/envs/ (MIMIC_ENV_HOME) and reused by
# every clone:
#   main         Python 3.12, LeRobot 0.6.1 with every policy extra, torch 2.10 (.venv links to it)
#   lerobot-0.4  Python 3.11, LeRobot 0.4.4: the 0.4 dialect's engine, for the tests of that dialect
# No Python 3.12 on the machine: `make` stops with the one line saying what to install.
PYTHON ?= python3
PY := .venv/bin/python
TM := ./mimic_deployment/train_manager.sh
export PYTHONPATH := $(CURDIR)
# The demo: a small ACT on the two video demo datasets, trained to the end on a CPU.
DEMO_TAG ?= $(shell date +%Y%m%d-%H%M%S)
DEMO_ARGS ?= --steps 20 --save-freq 10 --batch-size 2 --num-workers 0
DEMO_LEROBOT_ARGS ?= --policy.pretrained_backbone_weights=null --policy.dim_model=64 \
	--policy.dim_feedforward=256 --policy.n_encoder_layers=1 --policy.n_decoder_layers=1 \
	--policy.chunk_size=10 --policy.n_action_steps=10 --log_freq=2

.PHONY: env env-lerobot-0.4 ffmpeg slurm lint demo test lock bench gpu-check

# The main environment, and the .venv link to it.
env:
	@$(PYTHON) scripts/ensure_env.py main

# The LeRobot 0.4.4 environment (no link: tests find it with `ensure_env.py --find lerobot-0.4`).
env-lerobot-0.4:
	@$(PYTHON) scripts/ensure_env.py lerobot-0.4

# FFmpeg's libraries (Debian's ffmpeg) for torchcodec's video decoding; as root, else it says why not.
ffmpeg:
	@bash scripts/install_ffmpeg.sh

# Slurm and munge for the single-node test cluster; as root, else it says why not.
slurm:
	@bash scripts/install_slurm.sh

demo: env ffmpeg
	$(PY) -m mimic_deployment datasets demo
	HF_HUB_OFFLINE=1 $(TM) --policy act --dataset-group demo --tag $(DEMO_TAG) $(DEMO_ARGS) --foreground \
		-- $(DEMO_LEROBOT_ARGS)

# Lint first: a style or type error fails fast, before the slow suite.
lint: env
	$(PY) -m ruff check mimic_deployment tests benchmarks scripts
	$(PY) -m mypy mimic_deployment

test: env env-lerobot-0.4 ffmpeg slurm lint
	$(PY) -m pytest

# Re-resolve both lock files from their inputs (pyproject.toml's extras; locks/lerobot-0.4.in). Commit them.
lock:
	$(PYTHON) scripts/ensure_env.py --lock

bench: env
	$(PY) benchmarks/bench_cli.py
	$(PY) benchmarks/bench_status.py
	$(PY) benchmarks/bench_progress.py
	$(PY) benchmarks/bench_datasets.py
	$(PY) benchmarks/bench_faults.py
	$(PY) benchmarks/bench_engine.py

# On an NVIDIA machine: plan with the detected GPU, train act, diffusion and smolvla for 200 steps through
# the toolkit and by hand, compare steps/s and show the peak GPU memory (scripts/gpu_check.py).
gpu-check: env ffmpeg
	$(PY) scripts/gpu_check.py
