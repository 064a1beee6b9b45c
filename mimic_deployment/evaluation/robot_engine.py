"""Which LeRobot runs a policy on the robot: the command (0.6 lerobot-rollout, 0.4 lerobot-record), env, dialect.

Files only (host/engine.py reads the env's metadata; nothing is imported). The command is, in order:
- $LEROBOT_ROLLOUT or $LEROBOT_RECORD: that very command (a lab's own build); its env says which
  LeRobot it is, and that LeRobot must run policies with that command (0.6's lerobot-record refuses
  --policy.path). A stand-in whose env is unknown is spoken to in the dialect that uses that command.
- else the env of $LEROBOT_TRAIN (the LeRobot the runs are trained with), else the toolkit's own env:
  its dialect's robot_eval command (config/engines.yaml) from that env's bin/.

What differs between the two commands beyond the dialect's fixed arguments is declared in COMMANDS
(each checked against that version's own parser by tests/test_robot_argv.py).
"""
from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mimic_deployment.config.engines import Dialect, load_engines
from mimic_deployment.host.engine import Engine, engine_of
from mimic_deployment.util.errors import UserError
from mimic_deployment.util.names import has_control, is_repo_id


@dataclass(frozen=True)
class CommandRules:
    """What one robot-eval command of LeRobot needs (read from its source: see each comment)."""
    dataset_prefix: str             # the name its dataset must start with when a policy drives the robot
    refuses: str                    # where that rule lives, for the error text
    loop_fps_flag: str | None       # the control loop's own fps flag (besides --dataset.fps), if any
    fixed_flags: tuple[str, ...]    # flags the toolkit always adds


COMMANDS: dict[str, CommandRules] = {
    # 0.4.4 lerobot_record.py: sanity_check_dataset_name (control_utils) wants eval_ with a policy.
    "lerobot-record": CommandRules("eval_", "lerobot-record refuses a policy run into any other name", None, ()),
    # 0.6.1 rollout/context.py build_rollout_context: "Dataset names for rollout must start with
    # 'rollout_'"; then cfg.dataset.stamp_repo_id() appends _<date>_<time> unless --dataset.no_stamp
    # (kept off: the toolkit names the dataset and checks its folder); RolloutConfig.fps paces the
    # loop, dataset.fps is what is recorded.
    "lerobot-rollout": CommandRules("rollout_", "lerobot-rollout refuses any other name", "fps",
                                    ("--dataset.no_stamp=true",)),
}
OVERRIDES = {"lerobot-rollout": "LEROBOT_ROLLOUT", "lerobot-record": "LEROBOT_RECORD"}


@dataclass(frozen=True)
class RobotEngine:
    program: str                 # the command to exec (absolute when found)
    fixed: tuple[str, ...]       # the dialect's fixed arguments (--strategy.type=episodic)
    command: str                 # lerobot-rollout | lerobot-record
    engine: Engine
    dialect: Dialect
    origin: str                  # where the command came from, for the dry-run

    @property
    def rules(self) -> CommandRules:
        return COMMANDS[self.command]

    @property
    def series(self) -> str:
        return self.dialect.series

    def describe(self) -> str:
        if self.engine.version:
            return f"LeRobot {self.engine.version} ({self.engine.prefix}), {self.command} from {self.origin}"
        return (f"unknown LeRobot ({self.program}: no LeRobot install beside it), {self.command} from "
                f"{self.origin}, in the {self.series} dialect")

    def install_hint(self) -> str:
        var = OVERRIDES[self.command]
        if self.engine.prefix and self.engine.version:
            return f"reinstall LeRobot {self.engine.version} in {self.engine.prefix}, or set {var}"
        return f"make env (the toolkit's LeRobot), or set {var} to a {self.command}"

    def to_dict(self) -> dict:
        return {"program": self.program, "command": self.command, "fixed_args": list(self.fixed),
                "dialect": self.series, "origin": self.origin, **self.engine.to_dict()}


def _toolkit_trainer() -> str:
    return str(Path(sys.executable).parent / "lerobot-train")


def _checked(var: str, value: str) -> str:
    if has_control(value):
        raise UserError(f"{var}={value!r} holds a control character (newline, tab, ...)",
                        hint=f"set it to the path of a {var.lower().replace('_', '-')} executable")
    return value


def _command_of(dialect: Dialect) -> str:
    name = Path(dialect.robot_eval_command[0]).name
    if name not in COMMANDS:
        raise UserError(f"config/engines.yaml: LeRobot {dialect.series}'s robot_eval command {name!r} is not one "
                        f"the toolkit knows how to drive ({', '.join(COMMANDS)})",
                        hint="declare its rules in mimic_deployment/evaluation/robot_engine.py COMMANDS")
    return name


def _overridden(env: Mapping[str, str]) -> tuple[str, str] | None:
    given = [(var, _checked(var, env[var])) for var in OVERRIDES.values() if env.get(var)]
    if len(given) > 1:
        raise UserError("LEROBOT_ROLLOUT and LEROBOT_RECORD are both set: which command runs the policy?",
                        hint="LEROBOT_ROLLOUT for LeRobot 0.6, LEROBOT_RECORD for 0.4: unset the other")
    return given[0] if given else None


def robot_engine(env: Mapping[str, str]) -> RobotEngine:
    """The command that runs a policy on the robot here, its LeRobot and dialect (files only)."""
    engines = load_engines()
    override = _overridden(env)
    if override:
        var, given = override
        command = next(c for c, v in OVERRIDES.items() if v == var)
        engine = engine_of(given)
        if engine.series:
            dialect = engines.dialect(engine.series)
            wants = _command_of(dialect)
            if wants != command:
                raise UserError(f"{var}={given} belongs to LeRobot {engine.version}, which runs a policy on the "
                                f"robot with {wants}, not {command}",
                                hint=f"set {OVERRIDES[wants]} to its {wants} instead (and unset {var})")
        else:  # a stand-in: the dialect that runs policies with this command (the default first)
            order = [engines.default] + [s for s in engines.dialects if s != engines.default]
            matching = [s for s in order if _command_of(engines.dialects[s]) == command]
            dialect = engines.dialects[matching[0]] if matching else engines.dialect(None)
        return RobotEngine(program=given, fixed=dialect.robot_eval_command[1:], command=command, engine=engine,
                           dialect=dialect, origin=var)
    trainer = env.get("LEROBOT_TRAIN")
    origin = "LEROBOT_TRAIN's env" if trainer else "the toolkit's env"
    engine = engine_of(_checked("LEROBOT_TRAIN", trainer) if trainer else _toolkit_trainer())
    dialect = engines.dialect(engine.series)
    command = _command_of(dialect)
    program = engine.bin(command)
    if program is None:
        folder = Path(engine.prefix) / "bin" if engine.prefix else Path(engine.lerobot_train).parent
        program = str(folder / command)
    return RobotEngine(program=program, fixed=dialect.robot_eval_command[1:], command=command, engine=engine,
                       dialect=dialect, origin=origin)


def check_eval_dataset(repo_id: str | None, rules: CommandRules | None = None, version: str | None = None) -> str:
    """`namespace/<prefix><name>`: the name the robot-eval command accepts when a policy drives the robot."""
    rules = rules or COMMANDS["lerobot-rollout"]
    prefix = rules.dataset_prefix
    repo_id = (repo_id or "").strip()
    if not repo_id:
        raise UserError("EVAL_DATASET is not set",
                        hint=f"set it to namespace/{prefix}<name>, e.g. Mimic-Robotics/{prefix}act_test")
    if not is_repo_id(repo_id):
        raise UserError(f"EVAL_DATASET={repo_id!r} is not a dataset id 'namespace/{prefix}<name>'",
                        hint=f"e.g. Mimic-Robotics/{prefix}act_test")
    namespace, name = repo_id.split("/")
    if not name.startswith(prefix) or name == prefix:
        lerobot = f"LeRobot {version}" if version else "this LeRobot"
        rest = name
        for known in sorted({r.dataset_prefix for r in COMMANDS.values()}, key=len, reverse=True):
            rest = rest.removeprefix(known)
        raise UserError(f"EVAL_DATASET={repo_id!r}: on {lerobot} the dataset name must start with {prefix!r} "
                        f"({rules.refuses})", hint=f"e.g. {namespace}/{prefix}{rest or 'test'}")
    return repo_id
