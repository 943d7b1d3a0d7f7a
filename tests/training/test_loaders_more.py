"""IEMOCAP, CREMA-D, EmoDB and manifest loaders on tiny fixtures written in the real layouts (real WAVs), and
leave-speakers-out k-fold splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emostream.training.cache import load_audio
from emostream.training.data.cremad import load_cremad
from emostream.training.data.emodb import load_emodb
from emostream.training.data.iemocap import load_iemocap
from emostream.training.data.manifest import load_manifest
from emostream.training.data.records import Utterance
from emostream.training.splits import kfold_split, speaker_folds


def wav(path: Path, seconds: float = 0.5, rate: int = 16000, channels: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    tone = (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    sf.write(path, np.stack([tone] * channels, axis=1) if channels > 1 else tone, rate, subtype="PCM_16")
    return path


def test_iemocap_standard_layout(tmp_path: Path) -> None:
    s1 = tmp_path / "Session1"
    (s1 / "dialog" / "EmoEvaluation").mkdir(parents=True)
    (s1 / "dialog" / "transcriptions").mkdir(parents=True)
    dialog = "Ses01F_impro01"
    (s1 / "dialog" / "EmoEvaluation" / f"{dialog}.txt").write_text(
        "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
        f"[8.5 - 9.9]\t{dialog}_M000\texc\t[3.5, 3.5, 3.0]\nC-E1:\tExcited;\t()\n"
        f"[2.0 - 4.0]\t{dialog}_F000\tneu\t[2.5, 2.5, 2.5]\n"
        f"[10.0 - 11.0]\t{dialog}_F001\tfru\t[2.0, 3.5, 3.5]\n"
        f"[12.0 - 13.0]\t{dialog}_F002\tang\t[1.5, 4.0, 4.0]\n")
    (s1 / "dialog" / "transcriptions" / f"{dialog}.txt").write_text(
        f"{dialog}_F000 [002.0000-004.0000]: Excuse me.\n{dialog}_M000 [008.5000-009.9000]: Yeah,  great!\n")
    for utt in ("F000", "M000", "F001", "F002"):
        wav(s1 / "sentences" / "wav" / dialog / f"{dialog}_{utt}.wav")
    utts = load_iemocap(tmp_path, sessions=(1,))
    # frustration has no unified class; order is by start time; excited → joy
    assert [(u.turn, u.label, u.speaker) for u in utts] == [(0, "neutral", "Ses01_F"), (1, "joy", "Ses01_M"),
                                                            (2, "anger", "Ses01_F")]
    assert utts[0].text == "Excuse me." and utts[1].text == "Yeah, great!" and utts[2].text == ""
    assert {u.dialogue for u in utts} == {"iemocap-Ses01F_impro01"}
    assert utts[0].audio == s1 / "sentences" / "wav" / dialog / f"{dialog}_F000.wav"
    with pytest.raises(FileNotFoundError, match="no labelled IEMOCAP"):
        load_iemocap(tmp_path, sessions=(2,))


def test_cremad_names(tmp_path: Path) -> None:
    for name in ("1001_DFA_ANG_XX", "1001_IEO_HAP_HI", "1091_TSI_NEU_XX"):
        wav(tmp_path / "AudioWAV" / f"{name}.wav")
    utts = load_cremad(tmp_path)
    assert [(u.speaker, u.label, u.text) for u in utts] == [
        ("cremad1001", "anger", "Don't forget a jacket."), ("cremad1001", "joy", "It's eleven o'clock."),
        ("cremad1091", "neutral", "The surface is slick.")]
    wav(tmp_path / "AudioWAV" / "1002_DFA_BOR_XX.wav")
    with pytest.raises(ValueError, match="unknown CREMA-D emotion code BOR"):
        load_cremad(tmp_path)


def test_emodb_letter_codes(tmp_path: Path) -> None:
    for name in ("03a01Fa", "03a01Wa", "08b02Tc", "10a04La", "16b10Ab"):
        wav(tmp_path / "wav" / f"{name}.wav")
    utts = load_emodb(tmp_path)
    # boredom (L) has no unified class and is left out
    assert [(u.speaker, u.label) for u in utts] == [("emodb03", "joy"), ("emodb03", "anger"),
                                                    ("emodb08", "sadness"), ("emodb16", "fear")]
    assert all(u.text == "" and u.audio is not None for u in utts)
    wav(tmp_path / "wav" / "nonsense.wav")
    with pytest.raises(ValueError, match="not an EmoDB name"):
        load_emodb(tmp_path)


def test_manifest_csv_and_jsonl(tmp_path: Path) -> None:
    wav(tmp_path / "clips" / "a.wav", rate=44100, channels=2)
    (tmp_path / "m.csv").write_text(
        "audio,text,label,speaker,dialogue,turn\n"
        "clips/a.wav,I can't believe it,happy,ann,d1,1\n"
        ",Hello there.,neutral,bob,d1,0\n"
        "clips/a.wav,,Angry,ann,,\n")
    utts = load_manifest(tmp_path / "m.csv")
    assert [(u.dialogue, u.turn, u.label, u.speaker) for u in utts] == [
        ("m-d1", 0, "neutral", "bob"), ("m-d1", 1, "joy", "ann"), ("m-row4", 0, "anger", "ann")]
    assert utts[0].audio is None and utts[1].audio == tmp_path / "clips" / "a.wav" and utts[2].text == ""
    audio = load_audio(tmp_path / "clips" / "a.wav")  # 44.1 kHz stereo → 16 kHz mono
    assert audio.ndim == 1 and abs(len(audio) - 8000) <= 2
    rows = [{"audio": "clips/a.wav", "text": "no", "label": "sadness", "speaker": "c", "dialogue": "x", "turn": 0}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert load_manifest(tmp_path / "m.jsonl")[0].label == "sadness"
    (tmp_path / "bad.csv").write_text("audio,text,label,speeker\n,hi,joy,x\n")
    with pytest.raises(ValueError, match=r"bad\.csv:2: unknown column 'speeker'"):
        load_manifest(tmp_path / "bad.csv")
    (tmp_path / "commas.csv").write_text("audio,text,label\n,Well, no,joy\n")
    with pytest.raises(ValueError, match=r"commas\.csv:2: more fields than the header"):
        load_manifest(tmp_path / "commas.csv")
    (tmp_path / "bad2.csv").write_text("audio,text,label\n,hi,boredom\n")
    with pytest.raises(ValueError, match=r"bad2\.csv:2: label 'boredom' is not one of"):
        load_manifest(tmp_path / "bad2.csv")
    (tmp_path / "bad3.csv").write_text("audio,text,label\nmissing.wav,,joy\n")
    with pytest.raises(FileNotFoundError, match=r"missing\.wav not found"):
        load_manifest(tmp_path / "bad3.csv")


def _utts(counts: dict[str, int]) -> list[Utterance]:
    return [Utterance(audio=None, text="x", label="joy", speaker=s, dialogue=f"{s}-{i}", turn=0, corpus="t")
            for s, n in counts.items() for i in range(n)]


def test_leave_speakers_out_kfold_never_shares_a_speaker() -> None:
    counts = {f"s{i:02d}": 3 + (i * 7) % 11 for i in range(13)}
    utts = _utts(counts)
    folds = speaker_folds(utts, 5)
    flat = [s for f in folds for s in f]
    assert sorted(flat) == sorted(counts) and len(flat) == len(set(flat))  # a partition of the speakers
    sizes = [sum(counts[s] for s in f) for f in folds]
    assert max(sizes) - min(sizes) <= max(counts.values())  # balanced to within one speaker
    for fold in range(5):
        split = kfold_split(utts, 5, fold)
        speakers = {k: {u.speaker for u in v} for k, v in split.items()}
        assert not speakers["train"] & speakers["dev"] and not speakers["train"] & speakers["test"]
        assert not speakers["dev"] & speakers["test"]
        assert sum(len(v) for v in split.values()) == len(utts)
        assert speakers["test"] == set(folds[fold]) and speakers["dev"] == set(folds[(fold + 1) % 5])
    tests = [u.speaker for fold in range(5) for u in kfold_split(utts, 5, fold)["test"]]
    assert sorted(set(tests)) == sorted(counts) and len(tests) == len(utts)  # every utterance tested exactly once
    assert kfold_split(utts, 2, 0)["dev"] == []
    with pytest.raises(ValueError, match="2 <= k <= number of speakers"):
        speaker_folds(utts, 14)
