#!/usr/bin/env python3
"""Create (once) and locate the project's Python environment.

The environment holds the dependencies only, never this checkout: it is keyed by a hash
of the dependency spec in pyproject.toml plus the interpreter version, and shared by every
clone on the machine, so a second `make test` from a fresh clone reuses the ~9 GB LeRobot
install instead of downloading it again. The code itself comes from the checkout through
PYTHONPATH (set by the Makefile and the shell entry points).

Location: $MIMIC_ENV_HOME, else $XDG_CACHE_HOME/mimic-deployment, else ~/.cache/mimic-deployment.

  ensure_env.py            create if missing, link <repo>/.venv to it, print its path
  ensure_env.py --find     print the path if it is complete, else print nothing (exit 1)
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parent.parent
EXTRAS = ("train", "test", "eval")
BOOTSTRAP_VERSION = "1"  # bump when the way the env is built changes
COMPLETE_MARKER = ".mimic-env-complete"


def env_home() -> Path:
    if os.environ.get("MIMIC_ENV_HOME"):
        return Path(os.environ["MIMIC_ENV_HOME"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "mimic-deployment"


def requirements() -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in EXTRAS:
        reqs += project.get("optional-dependencies", {}).get(extra, [])
    return reqs


def env_path() -> Path:
    spec = {
        "requirements": sorted(requirements()),
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "bootstrap": BOOTSTRAP_VERSION,
    }
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return env_home() / "envs" / f"py{spec['python']}-{digest}"


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def build(env: Path) -> None:
    if env.exists():  # a build that died half-way: start over
        shutil.rmtree(env)
    run([sys.executable, "-m", "venv", str(env)])
    py = str(env / "bin" / "python")
    run([py, "-m", "pip", "install", "-q", "-U", "pip", "uv"])
    # uv keeps its own download cache (~/.cache/uv): a new spec re-links instead of re-downloading.
    run([str(env / "bin" / "uv"), "pip", "install", "--python", py, *requirements()])
    (env / COMPLETE_MARKER).write_text(json.dumps({"requirements": requirements()}) + "\n")


def ensure(env: Path) -> None:
    env.parent.mkdir(parents=True, exist_ok=True)
    with open(env.parent / f"{env.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two `make` at once: the second waits, then reuses
        if not (env / COMPLETE_MARKER).exists():
            build(env)


def precompile(env: Path) -> None:
    """Everything as .pyc, once: where PYTHONDONTWRITEBYTECODE=1 is set, Python never caches
    bytecode itself, and each lerobot-train start would compile torch again (~10 s of CPU).
    The environment is compiled once (marker file); this checkout's package every time."""
    site = next((env / "lib").glob("python*/site-packages"))
    marker = env / ".mimic-env-compiled"
    targets = [str(REPO / "mimic_deployment")] + ([] if marker.exists() else [str(site)])
    subprocess.run([str(env / "bin" / "python"), "-m", "compileall", "-q", "-j", "0", *targets],
                   check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker.touch()


def link_venv(env: Path) -> None:
    link = REPO / ".venv"
    if link.is_symlink() or not link.exists():
        tmp = REPO / ".venv.tmp-link"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(env)
        os.replace(tmp, link)


def main(argv: list[str]) -> int:
    env = env_path()
    if "--find" in argv:
        if (env / COMPLETE_MARKER).exists():
            print(env)
            return 0
        return 1
    ensure(env)
    precompile(env)
    link_venv(env)
    print(env)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
