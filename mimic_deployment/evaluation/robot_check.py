"""`eval-robot --check`: the robot-eval argv parsed by the LeRobot that will run it, in that LeRobot's own env.

The parse runs as a child process of the engine's interpreter (evaluation/robot_harness.py), so the
config classes, registered robots and rules are exactly those of the version that drives the robot
(lerobot-rollout 0.6.1 or lerobot-record 0.4.4), whatever LeRobot the toolkit's own env holds.
Slow (that Python imports torch and LeRobot); nothing connects to a robot.
"""
from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from mimic_deployment.evaluation.robot_engine import RobotEngine
from mimic_deployment.util.errors import UserError

HARNESS = Path(__file__).with_name("robot_harness.py")
MARK = "MIMIC_ROBOT_CHECK "
TIMEOUT_S = 600


def parse_with_lerobot(engine: RobotEngine, args: list[str], env: Mapping[str, str] | None = None,
                       timeout: float = TIMEOUT_S) -> dict:
    """What `engine`'s command makes of `args` (the argv without the program and its fixed arguments
    are passed as given: include them). UserError with the parser's own words when it refuses."""
    python = engine.engine.python
    if not engine.engine.version or not python:
        raise UserError(f"--check needs the LeRobot that runs {engine.program}, and none is installed beside it",
                        hint="point LEROBOT_TRAIN (or LEROBOT_ROLLOUT / LEROBOT_RECORD) at a LeRobot env")
    child_env = dict(os.environ if env is None else env)
    child_env["MIMIC_ROBOT_CHECK"] = json.dumps({"command": engine.command, "args": list(args)})
    try:
        done = subprocess.run([python, "-P", str(HARNESS)], env=child_env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise UserError(f"{engine.command}'s parser (LeRobot {engine.engine.version}) did not answer in "
                        f"{timeout:.0f} s") from None
    except OSError as exc:
        raise UserError(f"cannot run {python}: {exc.strerror}", hint=engine.install_hint()) from None
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(MARK)]
    if not lines:
        last = [ln for ln in done.stderr.strip().splitlines() if ln.strip()][-1:] or [f"exit {done.returncode}"]
        raise UserError(f"{engine.command}'s parser (LeRobot {engine.engine.version}) failed: {last[0].strip()}")
    result = json.loads(lines[-1][len(MARK):])
    if not result["ok"]:
        why = result["error"]
        if result.get("parser_exit"):  # draccus' own message is the last line on stderr
            said = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
            why = said[-1].strip() if said else why
        raise UserError(f"{engine.command}'s parser (LeRobot {engine.engine.version}) refused the command: {why}")
    return result["parsed"]
