"""nEMO, EmoDB (FLAC), GoEmotions and DailyDialog loaders on fixtures in their real layouts, the corpus registry,
and the registry's splits of the real corpora when this machine has them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emostream.training.data.dailydialog import load_dailydialog
from emostream.training.data.emodb import load_emodb
from emostream.training.data.goemotions import load_goemotions
from emostream.training.data.nemo import load_nemo
from emostream.training.data.registry import CORPORA, corpus
from emostream.training.paths import default_data_dir

NEMO_HEADER = "file_id\temotion\traw_text\tnormalized_text\tspeaker_id\tgender\tage\n"


def clip(path: Path, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tone = (0.2 * np.sin(2 * np.pi * 220 * np.arange(8000) / 16000)).astype(np.float32)
    sf.write(path, tone, 16000, format=fmt)


def test_nemo_layout(tmp_path: Path) -> None:
    root = tmp_path / "nemo"
    rows = [("WR0_surprised_64.wav", "surprised", "Ucho wykrywa dźwięki.", "        WR0", "male"),
            ("EB0_happiness_13.wav", "happiness", "Interesuje mnie historia.", "        EB0", "female")]
    (root).mkdir()
    (root / "data.tsv").write_text(NEMO_HEADER + "".join(
        f"{f}\t{e}\t{t}\t{t.lower()}\t{s}\t{g}\t25\n" for f, e, t, s, g in rows), encoding="utf-8")
    for f, *_ in rows:
        clip(root / "samples" / f"{Path(f).stem}.ogg", "OGG")
    utts = load_nemo(tmp_path)
    assert [(u.speaker, u.label, u.language, u.audio.name) for u in utts] == [
        ("nemo-WR0", "surprise", "pl", "WR0_surprised_64.ogg"), ("nemo-EB0", "joy", "pl", "EB0_happiness_13.ogg")]
    assert utts[0].text == "Ucho wykrywa dźwięki." and sf.info(str(utts[0].audio)).samplerate == 16000
    (root / "samples" / "EB0_happiness_13.ogg").unlink()
    with pytest.raises(FileNotFoundError, match=r"EB0_happiness_13\.ogg is missing"):
        load_nemo(tmp_path)
    (root / "data.tsv").write_text(NEMO_HEADER + "X.wav\tboredom\tx\tx\tX\tmale\t1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"data.tsv:2: unknown nEMO emotion 'boredom'"):
        load_nemo(tmp_path)


def test_emodb_flac_layout(tmp_path: Path) -> None:
    for name in ("03a01Wa", "16b10Lb", "08a02Tc"):
        clip(tmp_path / "wav" / f"{name}.flac", "FLAC")
    utts = load_emodb(tmp_path)
    assert [(u.speaker, u.label, u.language) for u in utts] == [("emodb03", "anger", "de"),
                                                                ("emodb08", "sadness", "de")]


def test_goemotions_single_label_rule(tmp_path: Path) -> None:
    root = tmp_path / "goemotions" / "ekman"
    root.mkdir(parents=True)
    (root / "labels.txt").write_text("anger\ndisgust\nfear\njoy\nneutral\nsadness\nsurprise\n")
    (root / "train.tsv").write_text("I am furious\t0\ta1\nGreat, thanks!\t3\ta2\nWow what\t3,6\ta3\n"
                                    "Same group twice\t0,0\ta4\nIt\u2019s fine\t4\ta5\n", encoding="utf-8")
    utts = load_goemotions(tmp_path, "train")
    # the row with two Ekman groups is left out; repeated ids of one group are one label
    assert [(u.text, u.label) for u in utts] == [("I am furious", "anger"), ("Great, thanks!", "joy"),
                                                 ("Same group twice", "anger"), ("It's fine", "neutral")]
    assert len({u.dialogue for u in utts}) == 4
    (root / "dev.tsv").write_text("text\t9\tb1\n")
    with pytest.raises(ValueError, match=r"dev.tsv:1: label ids '9'"):
        load_goemotions(tmp_path, "dev")
    with pytest.raises(ValueError, match="split 'val' does not exist"):
        load_goemotions(tmp_path, "val")


def test_dailydialog_fixed_split_and_mismatch(tmp_path: Path) -> None:
    root = tmp_path / "dailydialog"
    root.mkdir()
    texts = [f"Hello {i} . __eou__ I am so angry ! __eou__" for i in range(20)]
    labels = ["0 1" for _ in range(20)]
    labels[18] = "0"  # a dev dialogue whose label count is wrong: skipped
    (root / "dialogues_text.txt").write_text("\n".join(texts) + "\n")
    (root / "dialogues_emotion.txt").write_text("\n".join(labels) + "\n")
    dev = load_dailydialog(tmp_path, "dev")
    assert [(u.dialogue, u.turn, u.speaker, u.label, u.text) for u in dev] == [
        ("dailydialog-8", 0, "A", "neutral", "Hello 8 ."), ("dailydialog-8", 1, "B", "anger", "I am so angry !")]
    assert {u.dialogue for u in load_dailydialog(tmp_path, "test")} == {"dailydialog-9", "dailydialog-19"}
    assert len(load_dailydialog(tmp_path, "train")) == 2 * 16


def test_registry_names_and_errors() -> None:
    assert {n for n, c in CORPORA.items() if c.modality == "audio"} == {"ravdess", "emodb", "nemo"}
    assert {n for n, c in CORPORA.items() if c.modality == "text"} == {"meld", "goemotions", "dailydialog"}
    assert "surprise" not in CORPORA["emodb"].classes and "disgust" not in CORPORA["nemo"].classes
    with pytest.raises(ValueError, match="unknown corpus 'iemocap'"):
        corpus("iemocap")


@pytest.mark.parametrize("name", ["emodb", "nemo", "ravdess"])
def test_real_audio_corpora_split_by_speaker(name: str) -> None:
    data = default_data_dir()
    if not (data / name).is_dir():
        pytest.skip(f"{name} not found under {data}")
    splits = CORPORA[name].splits(data)
    speakers = {k: {u.speaker for u in v} for k, v in splits.items()}
    assert not speakers["train"] & speakers["dev"] and not speakers["train"] & speakers["test"]
    assert not speakers["dev"] & speakers["test"] and all(splits.values())
    assert {u.label for s in splits.values() for u in s} == set(CORPORA[name].classes)
