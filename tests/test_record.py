"""The typed run record: forward-only transitions, migrate() of records written by the code
before schema 2 (tests/fixtures/records_v1, made with it), unknown keys kept through a rewrite."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mimic_deployment.runs import registry
from mimic_deployment.runs.record import SCHEMA, TRANSITIONS, Attempt, RunRecord, State, migrate
from mimic_deployment.util.errors import UserError

V1 = Path(__file__).parent / "fixtures" / "records_v1"
ALLOWED = [(a, b) for a in State for b in TRANSITIONS[a]]
REFUSED = [(a, b) for a in State for b in State if b not in TRANSITIONS[a]]


def record_in(state: State) -> RunRecord:
    return RunRecord(name="r", attempts=[Attempt(kind="train", argv=["x"], state=state)], plan={"steps": 1})


def v1(name: str) -> dict:
    return json.loads((V1 / f"{name}.json").read_text())


def test_the_table_only_goes_forward():
    assert TRANSITIONS[State.QUEUED] == {State.RUNNING, State.FINISHED, State.FAILED, State.STOPPED, State.LOST}
    assert TRANSITIONS[State.RUNNING] == {State.FINISHED, State.FAILED, State.STOPPED, State.LOST}
    assert all(not TRANSITIONS[s] and s.ended for s in (State.FINISHED, State.FAILED, State.STOPPED, State.LOST))


@pytest.mark.parametrize("start,target", ALLOWED)
def test_every_allowed_transition(start, target):
    record = record_in(start)
    assert record.advance(target, reason="why") is True
    assert record.state is target and record.reason == "why"
    assert (record.ended_at is not None) == target.ended


@pytest.mark.parametrize("start,target", REFUSED)
def test_every_other_move_is_refused_and_changes_nothing(start, target):
    record = record_in(start)
    before = record.to_json()
    assert registry.advance(record, target, reason="no") is False
    assert record.to_json() == before


def test_a_new_attempt_is_the_only_way_to_start_over():
    record = record_in(State.RUNNING)
    with pytest.raises(UserError, match="is running"):
        record.open_attempt("resume", ["y"])
    record.advance(State.STOPPED, exit_code=-15)
    record.supervisor = {"pid": 1, "create_time": 1.0}
    record.open_attempt("resume", ["y"])
    assert [a.state for a in record.attempts] == [State.STOPPED, State.QUEUED]
    assert record.attempts[0].exit_code == -15 and record.exit_code is None and record.supervisor is None
    assert record.advance(State.RUNNING)


def test_migrate_a_finished_schema_1_record():
    raw = v1("finished")
    record = migrate(raw)
    assert (record.state, record.exit_code, record.restarts, len(record.attempts)) == (State.FINISHED, 0, 0, 1)
    assert record.started_at == raw["started_at"] and record.ended_at == raw["ended_at"]
    assert record.plan == raw["plan"] and record.marker == raw["marker"] and record.progress == raw["progress"]
    assert record.current.argv == raw["attempts"][0]["argv"] and record.current.restarts is None
    assert record.extra == {}
    assert record.to_json()["schema"] == SCHEMA == 2


def test_migrate_a_stopped_then_resumed_schema_1_record():
    raw = v1("resumed")
    record = migrate(raw)
    first, second = record.attempts
    assert (first.kind, first.state, first.exit_code) == ("train", State.STOPPED, -15)
    assert first.reason == raw["attempts"][0]["reason"] and first.ended_at == raw["attempts"][0]["ended_at"]
    assert (second.kind, second.state, second.exit_code) == ("resume", State.FINISHED, 0)
    assert second.argv == raw["attempts"][1]["argv"] and record.plan["steps"] == raw["plan"]["steps"]


def test_migrate_a_queued_schema_1_record():
    raw = v1("queued")
    record = migrate(raw)
    assert record.state is State.QUEUED and record.started_at is None and record.queue == raw["queue"]
    assert record.launched_by == raw["launched_by"] and record.plan == raw["plan"]


@pytest.mark.parametrize("name", ["finished", "resumed", "queued"])
def test_schema_2_round_trip_is_exact(name):
    record = migrate(v1(name))
    again = migrate(json.loads(json.dumps(record.to_json())))
    assert again == record and again.to_json() == record.to_json()


def test_a_newer_schema_is_refused():
    with pytest.raises(UserError, match="schema 3 is newer"):
        migrate({**v1("finished"), "schema": SCHEMA + 1})


def test_a_read_modify_write_keeps_what_it_does_not_know(toolkit_env):
    raw = migrate(v1("finished")).to_json()
    raw["from_the_future"] = {"a": 1}
    raw["attempts"][0]["engine"] = "dialect-x"
    folder = registry.record_dir(raw["name"])
    folder.mkdir(parents=True)
    (folder / registry.RECORD_FILE).write_text(json.dumps(raw))
    registry.update(raw["name"], lambda r: setattr(r, "stop_requested", True))
    stored = json.loads((folder / registry.RECORD_FILE).read_text())
    assert stored["from_the_future"] == {"a": 1} and stored["attempts"][0]["engine"] == "dialect-x"
    assert stored["stop_requested"] is True


def test_no_run_named_suggests_close_names_and_scans_skip_corrupt_records(toolkit_env):
    raw = migrate(v1("finished")).to_json()
    for name in ("act_cpu_demo", "broken"):
        registry.record_dir(name).mkdir(parents=True)
    (registry.record_dir("act_cpu_demo") / registry.RECORD_FILE).write_text(json.dumps({**raw, "name": "act_cpu_demo"}))
    (registry.record_dir("broken") / registry.RECORD_FILE).write_text("{not json")
    with pytest.raises(UserError) as info:
        registry.require("act_cpu_dmo")
    assert str(info.value) == "no run named 'act_cpu_dmo' (did you mean 'act_cpu_demo'?)"
    assert [r.name for r in registry.read_all()] == ["act_cpu_demo"]
