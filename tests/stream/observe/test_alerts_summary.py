"""Alert rules and call summaries on exact event sequences: where an alert must fire, where it must not, and what a
summary adds up to. (The server test checks the same on a real call, through the real models.)"""

from __future__ import annotations

import asyncio

import pytest

from emostream.stream.config import AlertRule, Config, override
from emostream.stream.errors import UserError
from emostream.stream.events import AlertEvent, EmotionEvent, validator
from emostream.stream.observe.alerts import AlertEngine, check_rules
from emostream.stream.observe.summary import CallSummary

LABELS = ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear")


def utterance(seq: int, speaker: str, anger: float, end_s: float, valence: float = 0.0) -> EmotionEvent:
    scores = dict.fromkeys(LABELS, 0.0) | {"anger": anger, "neutral": 1.0 - anger}
    return EmotionEvent(stream_id="c", utterance_id=f"c-{seq:05d}", seq=seq, channel=0 if speaker == "customer" else 1,
                        speaker=speaker, start_s=end_s - 2.0, end_s=end_s, latency_ms={"end_to_end": 1.0},
                        transcript="words", label="anger" if anger >= 0.5 else "neutral",
                        confidence=max(anger, 1 - anger), scores=scores, modality_scores={"audio": None, "text": None},
                        valence=valence, arousal=0.2, model_id="m", split=False, asr={})


def run(rules: list[AlertRule], events: list[EmotionEvent]) -> tuple[list[AlertEvent], CallSummary]:
    summary = CallSummary("c")
    raised: list[AlertEvent] = []

    async def emit(alert: AlertEvent) -> None:
        raised.append(alert)
        await summary.publish(alert)

    engine = AlertEngine("c", rules, emit)

    async def go() -> None:
        for e in events:
            await summary.publish(e)
            await engine.publish(e)

    asyncio.run(go())
    return raised, summary


def test_customer_anger_fires_on_two_of_three_and_respects_cooldown_and_speaker():
    rule = AlertRule()  # the default: customer anger >= 0.5 on 2 of the last 3, cooldown 60 s
    calls = [utterance(1, "customer", 0.7, 5), utterance(2, "agent", 0.9, 8),  # the agent's anger never counts
             utterance(3, "customer", 0.1, 12), utterance(4, "customer", 0.8, 16),  # 2 of 3: fires here
             utterance(5, "customer", 0.9, 20),  # matches again, but within the cooldown
             utterance(6, "customer", 0.2, 90), utterance(7, "customer", 0.1, 95), utterance(8, "customer", 0.55, 99),
             utterance(9, "customer", 0.7, 100)]  # after the cooldown: 8 and 9 fire again
    raised, _ = run([rule], calls)
    assert [(a.utterance_ids, a.at_s) for a in raised] == [(["c-00001", "c-00004"], 16), (["c-00008", "c-00009"], 100)]
    assert raised[0].values == [0.7, 0.8] and raised[0].speaker == "customer" and raised[0].severity == "warning"
    check = validator("alert")
    for a in raised:
        check.validate(a.to_dict() | {"emitted_at": 1.0})


def test_calm_call_raises_nothing_and_valence_rules_look_down():
    calm = [utterance(i, "customer", 0.49, 5.0 * i) for i in range(1, 7)]  # just under the threshold
    assert run([AlertRule()], calm)[0] == []
    low = AlertRule(name="low_valence", speaker="", measure="valence", op="<=", threshold=-0.5, count=1, window=1,
                    severity="critical", cooldown_s=0)
    events = [utterance(1, "agent", 0.0, 3, valence=-0.6), utterance(2, "customer", 0.0, 6, valence=0.3)]
    raised, _ = run([low], events)
    assert [(a.speaker, a.utterance_ids) for a in raised] == [("agent", ["c-00001"])]


def test_trend_rule_fires_when_valence_falls_over_its_span():
    souring = AlertRule(name="souring", speaker="customer", measure="valence", op="<=", threshold=-0.02, count=3,
                        span_s=30, cooldown_s=60)
    falling = [utterance(i, "customer", 0.0, 10.0 * i, valence=0.5 - 0.3 * i) for i in range(1, 5)]  # -0.03/s
    raised, _ = run([souring], falling)
    assert [a.utterance_ids for a in raised] == [["c-00001", "c-00002", "c-00003"]]  # at the third, once (cooldown)
    assert "trend -0.0300/s over 30 s" in raised[0].message
    steady = [utterance(i, "customer", 0.0, 10.0 * i, valence=-0.5 + 0.001 * i) for i in range(1, 6)]
    assert run([souring], steady)[0] == []  # low but not falling
    slow = [utterance(i, "customer", 0.0, 20.0 * i, valence=0.5 - 0.3 * i) for i in range(1, 6)]
    assert run([souring], slow)[0] == []  # the same drop spread wider: never 3 utterances within 30 s
    with pytest.raises(UserError, match=r"alerts.rules\[t\].count: a trend needs at least 2"):
        override(Config(), alerts={"rules": [{"name": "t", "span_s": 30, "count": 1}]})


def test_summary_adds_up_per_speaker():
    events = [utterance(1, "customer", 0.7, 5, valence=-0.4), utterance(2, "agent", 0.1, 8, valence=0.2),
              utterance(3, "customer", 0.9, 12, valence=-0.8), utterance(4, "customer", 0.2, 16)]
    raised, summary = run([AlertRule()], events)
    s = summary.event(final=True, audio_s=17.0)
    validator("summary").validate(s.to_dict() | {"emitted_at": 1.0})
    customer = s.speakers["customer"]
    assert s.utterances == 4 and customer["utterances"] == 3 and customer["talk_s"] == 6.0
    assert customer["label_shares"] == {"anger": 0.6667, "neutral": 0.3333}
    assert customer["mean_valence"] == -0.4
    assert customer["peak_anger"] == {"utterance_id": "c-00003", "start_s": 10, "end_s": 12, "score": 0.9}
    assert customer["alerts"] == [raised[0].alert_id] and s.speakers["agent"]["alerts"] == []
    assert [a["utterance_ids"] for a in s.alerts] == [["c-00001", "c-00003"]]


@pytest.mark.parametrize("rules, fragment", [
    ([{"name": "x", "op": ">"}], "alerts.rules[x].op"),
    ([{"name": "x", "count": 4, "window": 3}], "alerts.rules[x].count"),
    ([{"name": "x"}, {"name": "x"}], "unique"),
    ([{"name": "x", "severity": "loud"}], "alerts.rules[x].severity"),
])
def test_rule_errors_name_the_rule(rules, fragment):
    with pytest.raises(UserError) as err:
        override(Config(), alerts={"rules": rules})
    assert fragment in str(err.value)


def test_a_measure_the_model_lacks_is_refused():
    with pytest.raises(UserError, match=r"alerts.rules\[x\].measure: 'rage'"):
        check_rules([AlertRule(name="x", measure="rage")], LABELS)
    check_rules([AlertRule(name="y", measure="arousal")], LABELS)
