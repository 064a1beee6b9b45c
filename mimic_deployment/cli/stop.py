"""`stop NAME | --all`: SIGTERM to the run's processes, SIGKILL after a timeout, no orphan left."""
from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("stop", help="stop runs completely (queued ones are cancelled)")
    p.add_argument("names", nargs="*")
    p.add_argument("--all", action="store_true", help="every queued or running run")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before SIGKILL (default 30)")
    p.set_defaults(run=run)


def stop_run(name: str, timeout: float) -> str:
    from mimic_deployment.host import procs
    from mimic_deployment.runs import registry, tracking
    from mimic_deployment.runs.registry import State

    record = registry.update(name, lambda r: r.update(stop_requested=True) if not State(r["state"]).ended else None)
    launcher = tracking.launcher_of(record)
    was = record["state"]
    survivors = launcher.stop(record, timeout)
    if record.get("queue") and was == State.QUEUED.value and not record.get("supervisor"):
        survivors = []  # waiting in a queue: cancelling the record is enough, the queue skips it

    def settle(r: dict) -> None:  # the owner may have died before writing its end
        if not State(r["state"]).ended and registry.advance(r, State.STOPPED, reason="stopped by request"):
            tracking.store_progress(r)

    record = registry.update(name, settle)
    leftovers = [p.pid for p in procs.marked_processes(record["marker"])] if launcher.name == "local" else []
    if survivors or leftovers:
        return f"{name}: {record['state']}, but PIDs {sorted(set(survivors + leftovers))} survived SIGKILL"
    return f"{name}: {record['state']}" + ("" if was != record["state"] else " (already)")


def run(args: argparse.Namespace) -> int:
    from mimic_deployment.runs import registry, tracking
    from mimic_deployment.util.errors import UserError
    from mimic_deployment.runs.registry import State

    if args.all == bool(args.names):
        raise UserError("give run names or --all (not both)")
    if args.all:
        names = [r["name"] for r in registry.read_all() if not State(tracking.refresh(r)["state"]).ended]
        if not names:
            print("nothing to stop")
            return 0
    else:
        for name in args.names:
            if registry.read(name) is None:
                raise UserError(f"no run named {name!r}", hint="see `status --all`")
        names = args.names
    queued_first = sorted(names, key=lambda n: (registry.read(n) or {}).get("state") != State.QUEUED.value)
    failed = False
    for name in queued_first:  # cancel the waiting ones first, so a queue cannot start them
        line = stop_run(name, args.timeout)
        failed |= "survived" in line
        print(line)
    _stop_queues(names)
    return 1 if failed else 0


def _stop_queues(names: list[str]) -> None:
    """A queue whose runs are all ended has nothing left to do: end it too."""
    from mimic_deployment.host import procs
    from mimic_deployment.runs import registry
    from mimic_deployment.runs.registry import State

    for name in names:
        queue = (registry.read(name) or {}).get("queue")
        if not queue or not procs.is_alive(queue):
            continue
        members = [r for r in registry.read_all() if (r.get("queue") or {}).get("pid") == queue["pid"]]
        if all(State(r["state"]).ended for r in members):
            procs.terminate(queue, None, timeout=5)
