"""host/engine.py: which LeRobot a lerobot-train belongs to, from its environment's files only."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from mimic_deployment.host.engine import engine_of, normalize

LEROBOT_META = """Metadata-Version: 2.4
Name: lerobot
Version: {version}
Provides-Extra: pi
Provides-Extra: groot
Provides-Extra: transformers-dep
Requires-Dist: torch<2.12,>=2.7
Requires-Dist: transformers<5.6,>=5.4; extra == "transformers-dep"
Requires-Dist: lerobot[transformers-dep]; extra == "pi"
Requires-Dist: scipy>=1.10; extra == "pi"
Requires-Dist: lerobot[transformers-dep]; extra == "groot"
Requires-Dist: Dm_Tree>=0.1.8; extra == "groot"
Requires-Dist: decord>=0.6; (platform_machine == "x86_64" or platform_machine == "aarch64") and extra == "groot"
Requires-Dist: pywin32; sys_platform == "win32" and extra == "groot"
"""


def fake_env(root: Path, version: str | None, installed: tuple[str, ...] = (), python: str = "3.12") -> Path:
    """A venv as files: bin/python (a link to this interpreter), pyvenv.cfg, a lerobot-train console
    script with its shebang, and dist-info folders for `installed` (and lerobot when `version`)."""
    (root / "bin").mkdir(parents=True)
    os.symlink(sys.executable, root / "bin" / "python")
    (root / "pyvenv.cfg").write_text(f"home = {Path(sys.executable).parent}\n")
    site = root / "lib" / f"python{python}" / "site-packages"
    site.mkdir(parents=True)
    script = root / "bin" / "lerobot-train"
    script.write_text(f"#!{root / 'bin' / 'python'}\nimport sys\nsys.exit(0)\n")
    script.chmod(0o755)
    if version:
        meta = site / f"lerobot-{version}.dist-info"
        meta.mkdir()
        (meta / "METADATA").write_text(LEROBOT_META.format(version=version))
    for dist in installed:
        name, _, ver = dist.partition("==")
        (site / f"{name}-{ver or '1.0'}.dist-info").mkdir()
    (root / "bin" / "accelerate").write_text("#!/bin/sh\n")
    return script


def test_version_prefix_and_series_come_from_the_envs_metadata(tmp_path):
    script = fake_env(tmp_path / "env", "0.6.1")
    engine = engine_of(str(script))
    assert (engine.version, engine.series, engine.prefix) == ("0.6.1", "0.6", str(tmp_path / "env"))
    assert engine.bin("accelerate") == str(tmp_path / "env" / "bin" / "accelerate")
    assert engine.bin("lerobot-rollout") is None
    assert "LeRobot 0.6.1 in" in engine.describe()


def test_an_extra_is_followed_through_the_extras_it_names(tmp_path):
    engine = engine_of(str(fake_env(tmp_path / "env", "0.6.1", installed=("scipy==1.14",))))
    assert engine.provides_extra("pi") and engine.provides_extra("Transformers_Dep")
    assert not engine.provides_extra("xvla")
    assert engine.extra_requirements("pi") == ["scipy", "transformers"]  # via lerobot[transformers-dep]
    assert engine.missing_for_extra("pi") == ["transformers"]
    # markers: decord on x86_64/aarch64 only, pywin32 never on Linux; names normalized (Dm_Tree)
    groot = engine.extra_requirements("groot")
    assert "pywin32" not in groot and "dm-tree" in groot and "transformers" in groot
    assert ("decord" in groot) == (os.uname().machine in ("x86_64", "aarch64"))


def test_a_command_without_a_lerobot_beside_it_is_an_unknown_engine(tmp_path):
    engine = engine_of(str(REPO / "tests" / "fake_trainer.py"))  # `#!/usr/bin/env python3`: no env of its own
    assert engine.version is None and engine.series is None and engine.prefix is None
    assert "unknown" in engine.describe()
    missing = engine_of(str(tmp_path / "nowhere" / "lerobot-train"))
    assert missing.version is None and missing.site_packages is None
    bare = fake_env(tmp_path / "bare", None)  # an env without lerobot installed
    assert engine_of(str(bare)).version is None and engine_of(str(bare)).prefix == str(tmp_path / "bare")


def test_normalize_is_pep_503():
    assert normalize("Flash_Attn") == normalize("flash-attn") == normalize("flash.attn") == "flash-attn"


def _built(name: str) -> Path | None:
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "ensure_env.py"), "--find", name],
                         capture_output=True, text=True)
    return Path(out.stdout.strip()) if out.returncode == 0 else None


@pytest.mark.parametrize("env_name, series, has_pi", [("main", "0.6", True), ("lerobot-0.4", "0.4", False)])
def test_the_real_environments(env_name, series, has_pi):
    env = _built(env_name)
    if env is None:
        pytest.skip(f"the {env_name} environment is not built (make test builds it)")
    engine = engine_of(str(env / "bin" / "lerobot-train"))
    assert engine.series == series and engine.bin("accelerate")
    assert engine.provides_extra("pi") is has_pi
    if has_pi:  # the main env installs every extra the lab trains with
        for extra in ("pi", "xvla", "groot", "smolvla", "diffusion", "training"):
            assert engine.missing_for_extra(extra) == [], extra
    else:  # 0.4.4's groot needs flash-attn, which does not build: the env lacks it
        assert "flash-attn" in engine.missing_for_extra("groot")
