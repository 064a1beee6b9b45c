"""Which checkpoint a MODEL_PATH or RUN means, what the checkpoint says about itself, the loss
curves of a run's log (training loss; LeRobot 0.6's held-out eval_loss), and where evaluation reports live.

Standard library only (the `eval-robot --dry-run` and `compare` paths never import torch).

A model is one of, in this order:
  - a local folder: a `pretrained_model` folder (holds config.json), a `checkpoints/NNN` or
    `checkpoints/last` folder (-> its pretrained_model), or a training output dir (-> its
    checkpoints/last/pretrained_model);
  - the name of a run of this toolkit (-> <output_dir>/checkpoints/last/pretrained_model);
  - a Hugging Face Hub id `namespace/name` (used as it is: LeRobot downloads it).
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from mimic_deployment.host import paths
from mimic_deployment.logs.lerobot_format import EVAL_LOSS_HINT, EVAL_LOSS_RE, StepCounter
from mimic_deployment.runs import registry
from mimic_deployment.runs.record import RunRecord
from mimic_deployment.util.errors import UserError
from mimic_deployment.util.names import REPO_ID as _HUB_ID  # the one HF repo-id pattern

_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+=-]*\Z")
REPORT_FILE = "report.json"
MODEL_FORMS = "a run name, a checkpoint folder (pretrained_model, checkpoints/NNN or a training output dir) or a Hub id"


@dataclass(frozen=True)
class Model:
    spec: str                  # what the user gave
    path: str                  # for --policy.path / from_pretrained: an absolute folder, or a Hub id
    local: bool
    run: str | None = None     # the toolkit run it belongs to, when known
    step: int | None = None    # training step of the checkpoint, when known
    config: dict = field(default_factory=dict, compare=False)        # its config.json (local only)
    train_config: dict = field(default_factory=dict, compare=False)  # its train_config.json (local only)

    @property
    def policy_type(self) -> str | None:
        return self.config.get("type")

    @property
    def label(self) -> str:
        """A short name for tables and output folders."""
        if self.run:
            return self.run
        if not self.local:
            return self.path.replace("/", "__")
        parts = Path(self.path).parts
        # <out>/checkpoints/<NNN>/pretrained_model -> <out name>
        if len(parts) >= 4 and parts[-1] == "pretrained_model" and parts[-3] == "checkpoints":
            return parts[-4]
        return Path(self.path).name

    def image_keys(self) -> list[str]:
        """The observation.images.* keys the checkpoint reads (local checkpoints only)."""
        feats = self.config.get("input_features") or {}
        return [k for k, v in feats.items() if isinstance(v, dict) and v.get("type") == "VISUAL"]

    def feature_dim(self, key: str, section: str = "input_features") -> int | None:
        shape = ((self.config.get(section) or {}).get(key) or {}).get("shape")
        return int(shape[0]) if isinstance(shape, list) and len(shape) == 1 else None

    def written_by(self) -> str | None:
        """The LeRobot series that wrote the checkpoint, from its files: 0.6 adds `pretrained_revision`
        to every policy config and renamed train_config's `eval_freq` to `env_eval_freq` (LeRobot 0.4.4
        refuses such a config: `The fields pretrained_revision are not valid for ACTConfig`)."""
        if "pretrained_revision" in self.config or "env_eval_freq" in self.train_config:
            return "0.6"
        if "eval_freq" in self.train_config:
            return "0.4"
        return None

    def rename_map(self) -> dict[str, str]:
        """The --rename_map the checkpoint was trained with (dataset key -> policy key)."""
        value = self.train_config.get("rename_map") or {}
        return dict(value) if isinstance(value, dict) else {}


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: unreadable ({exc})") from None
    return data if isinstance(data, dict) else {}


def pretrained_folder(folder: Path) -> Path:
    """The folder holding config.json for any of the accepted local forms, else UserError."""
    folder = folder.expanduser()
    candidates = [folder, folder / "pretrained_model", folder / "last" / "pretrained_model",
                  folder / "checkpoints" / "last" / "pretrained_model"]
    for candidate in candidates:
        if (candidate / "config.json").is_file():
            return candidate.absolute()
    if (folder / "checkpoints").is_dir() or folder.name == "checkpoints":
        raise UserError(f"{folder}: no complete checkpoint yet (no checkpoints/last/pretrained_model/config.json)",
                        hint="wait for the first checkpoint, or pass a checkpoints/NNN folder")
    raise UserError(f"{folder}: not a checkpoint (no config.json here, nor in pretrained_model/ or "
                    f"checkpoints/last/pretrained_model/)", hint=f"MODEL_PATH is {MODEL_FORMS}")


def _run_of_path(pretrained: Path) -> str | None:
    """The run whose output dir holds this checkpoint (outputs/train/<name>/...), if recorded."""
    try:
        rel = pretrained.resolve().relative_to((paths.outputs_root() / "train").resolve())
    except ValueError:
        return None
    name = rel.parts[0] if rel.parts else None
    return name if name and registry.read(name) else None


def _local_model(spec: str, pretrained: Path, run: str | None = None) -> Model:
    return Model(spec=spec, path=str(pretrained), local=True, run=run or _run_of_path(pretrained),
                 step=paths.checkpoint_step(pretrained.resolve().parent), config=_read_json(pretrained / "config.json"),
                 train_config=_read_json(pretrained / "train_config.json"))


def run_checkpoint(name: str, record: RunRecord) -> Path:
    out = Path(record.plan["output_dir"])
    pretrained = out / "checkpoints" / "last" / "pretrained_model"
    if not (pretrained / "config.json").is_file():
        raise UserError(f"run {name!r} ({record.state.value}) has no checkpoint yet: nothing at {pretrained}",
                        hint=f"it saves one every {record.plan.get('save_freq', '?')} steps and at the end; "
                             "or pass a checkpoint folder")
    return pretrained.absolute()


def resolve_model(spec: str | None, what: str = "MODEL_PATH") -> Model:
    """A Model for a run name, a local checkpoint folder or a Hub id; UserError otherwise."""
    spec = (spec or "").strip()
    if not spec:
        raise UserError(f"{what} is not set", hint=f"set it to {MODEL_FORMS}")
    local = Path(spec).expanduser()
    if local.exists():
        return _local_model(spec, pretrained_folder(local))
    if _RUN_NAME.match(spec):
        record = registry.read(spec)
        if record is not None:
            return _local_model(spec, run_checkpoint(spec, record), run=spec)
        close = registry.close_names(spec)
        hint = "did you mean " + " or ".join(map(repr, close)) + "?" if close else f"{what} is {MODEL_FORMS}"
        raise UserError(f"{what}={spec!r}: no run, folder or Hub id of that name", hint=hint)
    if _HUB_ID.match(spec) and not spec.startswith(("./", "../", "~")):
        return Model(spec=spec, path=spec, local=False)
    raise UserError(f"{what}={spec!r}: not found (no such folder, run or Hub id)", hint=f"{what} is {MODEL_FORMS}")


# --- loss curves ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Curves:
    """A run's logged losses, each [(step, value)] sorted by step."""
    loss: list[tuple[int, float]] = field(default_factory=list)
    eval_loss: list[tuple[int, float]] = field(default_factory=list)  # 0.6 with a held-out split

    def eval_loss_at(self, step: int | None) -> tuple[int, float] | None:
        """The eval_loss logged at `step`, else the last one before it (None: none logged by then)."""
        before = [(s, v) for s, v in self.eval_loss if step is None or s <= step]
        return before[-1] if before else None


def read_curves(log_file: str | os.PathLike | None) -> Curves:
    """The training loss (`step:N ... loss:X`) and eval loss (`step N: eval_loss=X`) of every attempt.

    Rounded step numbers (`2K`) are rebuilt as logs/lerobot_format.StepCounter does, else kept
    rounded. A resumed attempt overwrites the steps it redoes. Reads the whole log, line by line
    (evaluation is not on the `status` fast path).
    """
    if not log_file:
        return Curves()
    points: dict[int, float] = {}
    evals: dict[int, float] = {}
    counter = StepCounter()
    try:
        with open(log_file, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if EVAL_LOSS_HINT in line:
                    for m in EVAL_LOSS_RE.finditer(line):
                        evals[int(m.group(1))] = float(m.group(2))
                for step, fields in counter.feed(line):
                    try:
                        points[step] = float(fields["loss"])
                    except (KeyError, ValueError):
                        continue
    except OSError:  # missing or unreadable: the curves so far (none for a missing log)
        pass
    return Curves(loss=sorted(points.items()), eval_loss=sorted(evals.items()))


def loss_curve(log_file: str | os.PathLike | None) -> list[tuple[int, float]]:
    """[(step, loss)] from LeRobot's step lines, every attempt of the log (see read_curves)."""
    return read_curves(log_file).loss


# --- reports ----------------------------------------------------------------------------------

def eval_root() -> Path:
    return paths.outputs_root() / "eval"


def new_report_dir(label: str) -> Path:
    """outputs/eval/<label>/<YYYYmmdd-HHMMSS>[-N]/ (created)."""
    base = eval_root() / label
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base.mkdir(parents=True, exist_ok=True)
    for i in range(1, 1000):
        folder = base / (stamp if i == 1 else f"{stamp}-{i}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise UserError(f"{base}: cannot create a new report folder")


def latest_report(label: str) -> tuple[Path, dict] | None:
    """The newest outputs/eval/<label>/*/report.json, or None."""
    base = eval_root() / label
    try:
        folders = sorted((p for p in base.iterdir() if (p / REPORT_FILE).is_file()), key=lambda p: p.name)
    except OSError:
        return None
    for folder in reversed(folders):
        data = _read_json(folder / REPORT_FILE)
        if data:
            return folder / REPORT_FILE, data
    return None
