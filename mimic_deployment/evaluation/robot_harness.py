"""Run in the engine's own Python (not the toolkit's): parse a robot-eval argv with that LeRobot's parser.

Started by evaluation/robot_check.py as `<engine python> -P robot_harness.py` with the request in the
environment variable MIMIC_ROBOT_CHECK ({"command": "lerobot-rollout" | "lerobot-record", "args":
[...]}). Standard library at module level; LeRobot is imported inside `check` (this file must not
import the toolkit: it runs where only LeRobot is installed).

The path is each command's own, connecting nothing: register_third_party_plugins(), then
parser.wrap() around a function taking the command's config class (lerobot-rollout: RolloutConfig,
whose __post_init__ checks the strategy, requires a robot and loads the policy config from
--policy.path; lerobot-record 0.4: RecordConfig, the same for the policy), then the command's own
dataset-name rule: 0.4's sanity_check_dataset_name; 0.6's rule sits inside build_rollout_context
after the robot connects, so its prefix is read from that function's source and applied here.
Prints one line `MIMIC_ROBOT_CHECK <json>` on stdout: {"ok": true, "parsed": {...}} or
{"ok": false, "error": "..."}.
"""
from __future__ import annotations

import json
import os
import re
import sys

MARK = "MIMIC_ROBOT_CHECK "
_PREFIX_RULE = re.compile(r"""repo_name\.startswith\(\s*["']([^"']+)["']\s*\)""")


def _rollout():
    import inspect

    import lerobot.scripts.lerobot_rollout  # noqa: F401  (registers the robots, cameras, teleops it imports)
    from lerobot.rollout import RolloutConfig, context

    source = inspect.getsource(context.build_rollout_context)
    found = _PREFIX_RULE.search(source)
    prefix = found.group(1) if found else None

    def rule(cfg) -> None:
        if prefix is None or cfg.dataset is None:
            return
        name = cfg.dataset.repo_id.split("/", 1)[-1]
        if not name.startswith(prefix):  # build_rollout_context's own message
            raise ValueError(f"Dataset names for rollout must start with '{prefix}'. "
                             f"Use --dataset.repo_id=<user>/{prefix}<name> for policy deployment datasets.")

    rule_info = {"prefix": prefix, "source": inspect.getsourcefile(context.build_rollout_context)}
    return RolloutConfig, rule, rule_info


def _record():
    from lerobot.scripts import lerobot_record

    try:
        from lerobot.utils.control_utils import sanity_check_dataset_name  # 0.4
    except ImportError:
        from lerobot.common.control_utils import sanity_check_dataset_name  # 0.6

    def rule(cfg) -> None:
        sanity_check_dataset_name(cfg.dataset.repo_id, getattr(cfg, "policy", None))

    return lerobot_record.RecordConfig, rule, {"prefix": "eval_", "source": sanity_check_dataset_name.__module__}


def _cameras(robot) -> list[str]:
    """The image feature keys the robot would record, named as bi_so_follower.py / the robot names them:
    per-arm cameras prefixed `<arm>_`, a top-level `cameras` dict (0.6) kept as it is."""
    keys: list[str] = []
    if hasattr(robot, "left_arm_config"):
        for arm in ("left", "right"):
            keys += [f"{arm}_{k}" for k in (getattr(robot, f"{arm}_arm_config").cameras or {})]
    keys += list(getattr(robot, "cameras", None) or {})
    return sorted(keys)


def check(command: str, args: list[str]) -> dict:
    from dataclasses import asdict

    from lerobot.configs import parser
    from lerobot.utils.import_utils import register_third_party_plugins

    config_class, rule, rule_info = (_rollout if command == "lerobot-rollout" else _record)()
    register_third_party_plugins()  # what each command's main() does first
    sys.argv = [command, *args]

    def _parse(cfg):
        return cfg

    _parse.__annotations__ = {"cfg": config_class}  # parser.wrap reads the config class from the annotation
    cfg = parser.wrap()(_parse)()
    rule(cfg)

    def plain(value):
        return json.loads(json.dumps(value, default=str))

    policy = cfg.policy
    strategy = getattr(cfg, "strategy", None)
    return {
        "command": command,
        "robot": {"type": cfg.robot.type, "id": cfg.robot.id, "config": plain(asdict(cfg.robot))},
        "recorded_cameras": _cameras(cfg.robot),
        "policy": None if policy is None else {
            "type": policy.type, "pretrained_path": str(policy.pretrained_path), "device": policy.device,
            "image_keys": sorted(k for k, v in policy.input_features.items() if v.type.value == "VISUAL")},
        "dataset": plain(asdict(cfg.dataset)) if cfg.dataset is not None else None,
        "strategy": strategy.type if strategy is not None else None,
        "fps": getattr(cfg, "fps", None), "device": getattr(cfg, "device", None),
        "dataset_rule": rule_info,
    }


def main() -> int:
    request = json.loads(os.environ["MIMIC_ROBOT_CHECK"])
    try:
        result = {"ok": True, "parsed": check(request["command"], request["args"])}
    except SystemExit as exc:  # draccus printed its message on stderr
        result = {"ok": False, "error": f"exit {exc.code}", "parser_exit": True}
    except Exception as exc:  # what the command itself would die of, as one line
        text = str(exc).strip()
        first = text.splitlines()[0] if text else ""
        result = {"ok": False, "error": f"{type(exc).__name__}: {first}" if first else type(exc).__name__}
    sys.stdout.write("\n" + MARK + json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
