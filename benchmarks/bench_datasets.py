"""How fast are `check` on a 27-dataset group and a cache-hit `materialize`?

Builds 27 datasets' metadata (json only: Mimic-like info.json with 4 video cameras, stats.json
with quantiles, placeholder data files) in a temp dir, a groups file naming them, and a
complete merged-cache entry for them. Then, each as a fresh process (what a user waits for):

    python -c pass                          the interpreter alone
    check all27                             the CLI: 27 x read meta + compare + render
    materialize (cache hit)                 fingerprint (stat calls) + marker lookup

Targets: check <= 1 s, cache-hit materialize <= 200 ms above `python -c pass`.
Usage: PYTHONPATH=. .venv/bin/python benchmarks/bench_datasets.py [--repeat N]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

N_DATASETS = 27

_CHECK_HARNESS = """
import sys
from mimic_deployment.cli import COMMANDS, _Parser, main
if "check" in COMMANDS:
    sys.exit(main(sys.argv[1:]))
from mimic_deployment.cli import check
from mimic_deployment.util.errors import UserError
p = _Parser(prog="mimic"); sp = p.add_subparsers(dest="command", parser_class=_Parser)
check.add_parser(sp)
try:
    a = p.parse_args(sys.argv[1:]); sys.exit(a.run(a))
except UserError as e:
    print(f"error: {e}", file=sys.stderr); sys.exit(2)
"""

_MATERIALIZE = """
import sys
from mimic_deployment.datasets.sources import resolve_local
from mimic_deployment.datasets.merge import materialize
found, missing = resolve_local(sys.argv[2:])
assert not missing, missing
path = materialize(sys.argv[1], found, log=lambda m: None)
assert path.name.startswith(sys.argv[1] + "-"), path
"""


def _time(cmd: list[str], env: dict, repeat: int) -> tuple[float, str]:
    times, out = [], ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(f"failed: {' '.join(cmd[:3])}...\n{proc.stdout}\n{proc.stderr}")
        out = proc.stdout
    return statistics.median(times), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()

    from mimic_deployment.datasets.demo import make_meta_only

    with tempfile.TemporaryDirectory(prefix="bench_datasets_") as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "PYTHONPATH": str(REPO), "HF_LEROBOT_HOME": str(tmp / "home"),
               "MIMIC_MERGED_HOME": str(tmp / "merged"), "HF_HUB_OFFLINE": "1",
               "DATASET_GROUPS_FILE": str(tmp / "groups.yaml")}
        os.environ.update({k: env[k] for k in ("HF_LEROBOT_HOME", "MIMIC_MERGED_HOME")})
        ids = [f"Mimic-Robotics/mimic_bench_{i:02d}" for i in range(N_DATASETS)]
        for rid in ids:
            make_meta_only(tmp / "home" / rid, episodes=50, frames_per_episode=400, data_files=3)
        (tmp / "groups.yaml").write_text("groups:\n  all27:\n" + "".join(f"    - {rid}\n" for rid in ids))

        # a complete cache entry for exactly these members (what a finished merge leaves)
        from mimic_deployment.datasets import merge, sources

        members = [(rid, tmp / "home" / rid) for rid in ids]
        target = sources.merged_dataset_path("all27", sources.fingerprint(members))
        make_meta_only(target, episodes=50 * N_DATASETS)
        (target / merge.MARKER).write_text(json.dumps({"group": "all27"}))

        py = sys.executable
        base, _ = _time([py, "-c", "pass"], env, args.repeat)
        check, out = _time([py, "-c", _CHECK_HARNESS, "check", "all27", "--policy", "pi05"], env, args.repeat)
        assert "27 datasets" in out and "compatible" in out, out
        mat, _ = _time([py, "-c", _MATERIALIZE, "all27", *ids], env, args.repeat)
        imports, _ = _time([py, "-c", "import mimic_deployment.datasets.merge, mimic_deployment.datasets.sources"],
                           env, args.repeat)

        # in-process, for the record: the work itself without interpreter start
        from mimic_deployment.datasets.meta import check_group, read_meta, render_report

        t0 = time.perf_counter()
        for _ in range(20):
            report = check_group({rid: read_meta(p, rid) for rid, p in members}, "pi05")
            render_report(report, color=False)
        in_check = (time.perf_counter() - t0) / 20
        t0 = time.perf_counter()
        for _ in range(20):
            merge.materialize("all27", dict(members), log=lambda m: None)
        in_mat = (time.perf_counter() - t0) / 20

    print(f"{N_DATASETS} datasets, median of {args.repeat} fresh processes each:")
    print(f"  python -c pass                        {base * 1000:7.0f} ms")
    print(f"  check all27 --policy pi05             {check * 1000:7.0f} ms   (target <= 1000 ms)"
          f"   in-process {in_check * 1000:.1f} ms")
    print(f"  materialize, cache hit                {mat * 1000:7.0f} ms   = +{(mat - base) * 1000:.0f} ms over "
          f"python -c pass (target <= 200 ms); in-process {in_mat * 1000:.1f} ms, "
          f"module imports +{(imports - base) * 1000:.0f} ms")
    ok = check <= 1.0 and mat - base <= 0.2
    print("OK" if ok else "SLOWER THAN TARGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
