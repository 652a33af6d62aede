"""The rules benchmark measures real work: its frames carry every kind of scene event and
every one of its rules matches some of them."""

from __future__ import annotations

from benchmarks import rules as bench
from sentinel.domain.rule_model import ArmingMode
from sentinel.domain.rules import RuleSet
from sentinel.domain.scene import SceneEventKind


def test_frames_and_rules_exercise_every_condition() -> None:
    frames = bench.make_frames(600)
    kinds = {e.kind for f in frames for e in f}
    assert kinds == set(SceneEventKind)
    rules = bench.make_rules(cooldown_s=0.0)
    assert len(rules) == bench.RULES
    rule_set = RuleSet(rules, ArmingMode.NIGHT)
    fired = {m.rule_id for f in frames for m in rule_set.evaluate(f)}
    assert fired == {r.id for r in rules}
    seconds, matches = bench.time_rules(bench.make_rules(), frames[:50])
    assert len(seconds) == 50 and matches > 0
