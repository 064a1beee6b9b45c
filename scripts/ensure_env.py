#!/usr/bin/env python3
"""Create (once) and locate the project's Python environments, each built exactly from its lock file.

Two environments, declared in ENVS below:
  main         Python 3.12, LeRobot 0.6.1 with every policy extra, torch 2.10, the toolkit's own
               dependencies and its test tools (locks/main.txt). `.venv` links to it.
  lerobot-0.4  Python 3.11, LeRobot 0.4.4 (locks/lerobot-0.4.txt): the 0.4 dialect's engine, for the
               labs' runs, forks and robot computers still on it; the tests check the 0.4 argv
               against its own parser and train through it.

An environment holds dependencies only, never this checkout: it is keyed by a hash of its lock file
plus the interpreter version, and shared by every clone on the machine, so a second `make test` from
a fresh clone reuses the ~8 GB install. The code comes from the checkout through PYTHONPATH.

Location: $MIMIC_ENV_HOME, else $XDG_CACHE_HOME/mimic-deployment, else ~/.cache/mimic-deployment.
The interpreter: $MIMIC_PYTHON<minor> (e.g. MIMIC_PYTHON312) or `python3.<minor>` on PATH, or a pyenv
or /usr/local install of it; none found is one line saying what to install (exit 2).

  ensure_env.py [NAME]          create NAME (default main) if missing; main: link .venv; print its path
  ensure_env.py --find [NAME]   print the path if complete, else print nothing (exit 1)
  ensure_env.py --lock [NAME]   re-resolve NAME's lock file (all when no NAME) from its inputs
"""
from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOCKS = REPO / "locks"
UV_VERSION = "0.13.9"  # the resolver and installer; pinned so a lock resolves the same everywhere
BOOTSTRAP_VERSION = "2"  # bump when the way an env is built changes
COMPLETE_MARKER = ".mimic-env-complete"
USER_ERROR_EXIT = 2


@dataclass(frozen=True)
class EnvSpec:
    name: str
    python: str  # "3.12"
    lock: Path
    extras: tuple[str, ...] = ()  # pyproject extras (with its dependencies) that make up the inputs
    inputs: Path | None = None  # or a requirements .in file
    link: str | None = None  # the checkout's link to it

    def requirements(self) -> list[str]:
        if self.inputs is not None:
            return [line.strip() for line in self.inputs.read_text().splitlines()
                    if line.strip() and not line.lstrip().startswith("#")]
        import tomllib  # Python 3.11+: imported here so that an older python3 still gets the one-line error

        project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
        reqs = list(project["dependencies"])
        for extra in self.extras:
            reqs += project.get("optional-dependencies", {}).get(extra, [])
        return reqs


ENVS = {
    "main": EnvSpec("main", "3.12", LOCKS / "main.txt", extras=("train", "test", "eval"), link=".venv"),
    "lerobot-0.4": EnvSpec("lerobot-0.4", "3.11", LOCKS / "lerobot-0.4.txt", inputs=LOCKS / "lerobot-0.4.in"),
}


class SetupError(Exception):
    """What the user must do before an environment can be built: one line, exit 2."""


def env_home() -> Path:
    if os.environ.get("MIMIC_ENV_HOME"):
        return Path(os.environ["MIMIC_ENV_HOME"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "mimic-deployment"


def _python_version(exe: str) -> str | None:
    """`major.minor` of an interpreter that really runs (a pyenv shim for a version that is not
    selected exits non-zero: it does not count)."""
    try:
        out = subprocess.run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def find_python(version: str) -> str:
    """An interpreter of `version`: the override variable, PATH, then where pyenv and source builds put it."""
    var = "MIMIC_PYTHON" + version.replace(".", "")
    if os.environ.get(var):
        exe = os.environ[var]
        if _python_version(exe) != version:
            raise SetupError(f"{var}={exe} is not a working Python {version}")
        return exe
    candidates = [shutil.which(f"python{version}") or ""]
    candidates += sorted(glob.glob(str(Path.home() / f".pyenv/versions/{version}.*/bin/python{version}")), reverse=True)
    candidates += [f"/usr/local/bin/python{version}", f"/usr/bin/python{version}"]
    for exe in candidates:
        if exe and _python_version(exe) == version:
            return exe
    raise SetupError(f"Python {version} is needed and none was found (tried python{version} on PATH, pyenv, "
                     f"/usr/local, /usr): install it (`apt install python{version}-venv`, or `pyenv install "
                     f"{version}`), or point {var} at one")


def uv() -> str:
    """uv, pinned, in its own small venv beside the environments (built once)."""
    tools = env_home() / f"uv-{UV_VERSION}"
    exe = tools / "bin" / "uv"
    if exe.exists():
        return str(exe)
    tools.parent.mkdir(parents=True, exist_ok=True)
    with _locked(tools.parent / f"{tools.name}.lock"):
        if not exe.exists():
            shutil.rmtree(tools, ignore_errors=True)
            run([sys.executable, "-m", "venv", str(tools)])
            run([str(tools / "bin" / "python"), "-m", "pip", "install", "-q", f"uv=={UV_VERSION}"])
    return str(exe)


def env_path(spec: EnvSpec) -> Path:
    if not spec.lock.exists():
        raise SetupError(f"{spec.lock.relative_to(REPO)} is missing: run `python3 scripts/ensure_env.py --lock "
                         f"{spec.name}` and commit it")
    key = {"lock": hashlib.sha256(spec.lock.read_bytes()).hexdigest(), "python": spec.python,
           "bootstrap": BOOTSTRAP_VERSION}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return env_home() / "envs" / f"{spec.name}-py{spec.python}-{digest}"


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


class _locked:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        self.handle = open(self.path, "w")
        fcntl.flock(self.handle, fcntl.LOCK_EX)  # two `make` at once: the second waits, then reuses

    def __exit__(self, *exc: object) -> None:
        self.handle.close()


def lock(spec: EnvSpec) -> None:
    """Resolve the inputs into an exact, hashed lock for Linux on every architecture (`--universal`)."""
    LOCKS.mkdir(exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".in", delete=False) as handle:
        handle.write("\n".join(spec.requirements()) + "\n")
    try:
        run([uv(), "pip", "compile", "--quiet", "--universal", "--generate-hashes", "--python-version", spec.python,
             "--no-header", "--annotation-style", "line", "-o", str(spec.lock), handle.name])
    finally:
        os.unlink(handle.name)
    text = spec.lock.read_text().replace(handle.name, f"the {spec.name} inputs")
    header = (f"# The {spec.name} environment, exactly (scripts/ensure_env.py builds it with `uv pip sync`).\n"
              f"# Regenerate: python3 scripts/ensure_env.py --lock {spec.name}\n")
    spec.lock.write_text(header + text)


def build(spec: EnvSpec, env: Path) -> None:
    python = find_python(spec.python)
    if env.exists():  # a build that died half-way: start over
        shutil.rmtree(env)
    run([python, "-m", "venv", str(env)])
    # uv keeps its own download cache (~/.cache/uv): a new lock re-links instead of re-downloading.
    run([uv(), "pip", "sync", "--quiet", "--python", str(env / "bin" / "python"), str(spec.lock)])
    (env / COMPLETE_MARKER).write_text(json.dumps({"lock": str(spec.lock.name)}) + "\n")


def ensure(spec: EnvSpec) -> Path:
    env = env_path(spec)
    env.parent.mkdir(parents=True, exist_ok=True)
    with _locked(env.parent / f"{env.name}.lock"):
        if not (env / COMPLETE_MARKER).exists():
            build(spec, env)
    return env


def precompile(env: Path, also: list[Path]) -> None:
    """Everything as .pyc, once: where PYTHONDONTWRITEBYTECODE=1 is set, Python never caches
    bytecode itself, and each lerobot-train start would compile torch again (~10 s of CPU).
    The environment is compiled once (marker file); this checkout's package every time."""
    site = next((env / "lib").glob("python*/site-packages"))
    marker = env / ".mimic-env-compiled"
    targets = [str(p) for p in also] + ([] if marker.exists() else [str(site)])
    subprocess.run([str(env / "bin" / "python"), "-m", "compileall", "-q", "-j", "0", *targets],
                   check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker.touch()


def link(env: Path, name: str) -> None:
    path = REPO / name
    if path.is_symlink() or not path.exists():
        tmp = REPO / f"{name}.tmp-link"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(env)
        os.replace(tmp, path)


def main(argv: list[str]) -> int:
    flags = [a for a in argv if a.startswith("--")]
    names = [a for a in argv if not a.startswith("--")]
    unknown = [n for n in names if n not in ENVS] + [f for f in flags if f not in ("--find", "--lock")]
    if unknown or len(names) > 1:
        print(f"usage: ensure_env.py [--find|--lock] [{'|'.join(ENVS)}] (got {' '.join(argv)})", file=sys.stderr)
        return USER_ERROR_EXIT
    try:
        if "--lock" in flags:
            for spec in [ENVS[names[0]]] if names else list(ENVS.values()):
                lock(spec)
            return 0
        spec = ENVS[names[0] if names else "main"]
        if "--find" in flags:
            env = env_path(spec)
            if (env / COMPLETE_MARKER).exists():
                print(env)
                return 0
            return 1
        env = ensure(spec)
        precompile(env, [REPO / "mimic_deployment"] if spec.link else [])
        if spec.link:
            link(env, spec.link)
        print(env)
        return 0
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USER_ERROR_EXIT


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
