#!/usr/bin/env python3
"""A stand-in for lerobot-train with the same flags, log lines (LeRobot 0.6's: the step line with
`smp/s:` and ACT's sub-losses; `step N: eval_loss=X` with --dataset.eval_split and --eval_steps) and
checkpoint layout, that trains in milliseconds. Behaviour knobs (env): FAKE_STEP_SECONDS (default 0.05),
FAKE_CRASH_AT=N (exit 1 at step N, first attempt only unless FAKE_CRASH_ALWAYS=1),
FAKE_HANG=1 (ignore SIGTERM, must be SIGKILLed), FAKE_CHILD=1 (spawn a child that lives on
in its own process group, like a stray worker), FAKE_FAIL_START=1 (traceback at start),
FAKE_FAIL_DRACCUS=1 (draccus' multi-line DecodingError at start), FAKE_PUSH_FAIL=1 (with
--policy.push_to_hub=true: the Hub push after `End of training` fails, as offline)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def log(msg: str) -> None:
    print(f"INFO {time.strftime('%Y-%m-%d %H:%M:%S')} ot_train.py:1 {msg}", file=sys.stderr, flush=True)


def save_checkpoint(out: Path, step: int, cfg: dict) -> None:
    ckpt = out / "checkpoints" / f"{step:06d}"
    (ckpt / "pretrained_model").mkdir(parents=True, exist_ok=True)
    (ckpt / "training_state").mkdir(parents=True, exist_ok=True)
    (ckpt / "pretrained_model" / "train_config.json").write_text(json.dumps(cfg))
    (ckpt / "training_state" / "training_step.json").write_text(json.dumps({"step": step}))
    tmp = out / "checkpoints" / "last.tmp"
    if tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(f"{step:06d}")
    os.replace(tmp, out / "checkpoints" / "last")
    log(f"Checkpoint policy after step {step}")


def main() -> int:
    args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
    start = 0
    if args.get("resume") == "true":
        cfg = json.loads(Path(args["config_path"]).read_text())
        cfg.update({k: v for k, v in args.items() if k == "steps"})
        step_file = Path(args["config_path"]).parents[1] / "training_state" / "training_step.json"
        start = json.loads(step_file.read_text())["step"]
    else:
        cfg = args
        if Path(cfg["output_dir"]).exists():
            raise FileExistsError(f"Output directory {cfg['output_dir']} already exists and resume is False.")
    out, steps, save_freq = Path(cfg["output_dir"]), int(cfg["steps"]), int(cfg["save_freq"])
    out.mkdir(parents=True, exist_ok=True)
    if os.environ.get("FAKE_HANG"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.environ.get("FAKE_CHILD"):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
        (out / "child.pid").write_text(str(child.pid))
    if os.environ.get("FAKE_FAIL_START"):
        print("Traceback (most recent call last):\n  File \"x\", line 1\nRuntimeError: boom", file=sys.stderr)
        return 1
    if os.environ.get("FAKE_FAIL_DRACCUS"):
        print("Traceback (most recent call last):\n"
              "  File \"draccus/parsers/decoding.py\", line 384, in _try_functions\n"
              "    raise DecodingError(path, message) from exception_to_raise_from\n"
              "draccus.utils.DecodingError: `policy`: Could not decode the value into any of the given types:\n"
              "    PreTrainedConfig: `chunk_size`: Couldn't parse '[1, 2]' into a int\n", file=sys.stderr, flush=True)
        return 1
    log(f"cfg.steps={steps} ({steps})")
    log("Start offline training on a fixed dataset")
    crash_at = int(os.environ.get("FAKE_CRASH_AT", "0"))
    crash_now = crash_at and (start == 0 or os.environ.get("FAKE_CRASH_ALWAYS"))
    eval_steps = int(cfg.get("eval_steps") or 0) if cfg.get("dataset.eval_split") else 0
    sub_losses = f" l1_loss:{1 / (start + 1):.3f} kld_loss:0.100" if cfg.get("policy.type") == "act" else ""
    for step in range(start + 1, steps + 1):
        time.sleep(float(os.environ.get("FAKE_STEP_SECONDS", "0.05")))
        log(f"step:{step} smpl:{step * 2} ep:0 epch:0.01 loss:{10 / step:.3f} "
            f"grdn:1.0 lr:1.0e-05 updt_s:0.01 data_s:0.00 smp/s:40{sub_losses}")
        if eval_steps and step % eval_steps == 0:
            log(f"step {step}: eval_loss={5 / step:.4f}")
        if crash_now and step == crash_at:
            print("Traceback (most recent call last):\nRuntimeError: simulated crash", file=sys.stderr, flush=True)
            return 1
        if step % save_freq == 0 or step == steps:
            save_checkpoint(out, step, {**cfg, "steps": steps})
    log("End of training")
    if os.environ.get("FAKE_PUSH_FAIL") and str(cfg.get("policy.push_to_hub")).lower() == "true":
        print("Traceback (most recent call last):\n"
              "  File \"lerobot/policies/pretrained.py\", line 213, in push_model_to_hub\n"
              "    repo_id = api.create_repo(\n"
              "huggingface_hub.errors.OfflineModeIsEnabled: Cannot reach https://huggingface.co/api/repos/create: "
              "offline mode is enabled.", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
