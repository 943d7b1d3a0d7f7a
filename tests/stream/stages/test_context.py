"""The stream's context buffer gives a model the same dialogue inputs as training's ``dialogue_inputs``: the same
past utterances, in the same slots, with the same speakers, so a model that reads the past (paper 004's
per-speaker window) reads it at stream time as it learnt to."""

from __future__ import annotations

import asyncio

import numpy as np
import torch

from emostream.models.collate import UtteranceInput, collate
from emostream.models.dialogue_bilstm_mha import DialogueBiLSTMMHA
from emostream.models.interface import ModelDims
from emostream.stream.messages import Acoustic, Embedded, Transcribed, Transcript, Utterance
from emostream.stream.stages.context import ContextBuffer
from emostream.training.batching import dialogue_inputs
from emostream.training.data.records import Utterance as Record

DIMS = ModelDims(num_classes=7, audio_dim=6, text_dim=8, context_size=3)
# (speaker, words): a two-party call, one turn with no words heard, longer than the context.
TURNS = [("caller", "my line is down"), ("agent", "let me check"), ("caller", "it has been a week"),
         ("caller", ""), ("agent", "a technician will come"), ("caller", "thank you so much")]


def stream_inputs(frames: list[torch.Tensor], sentences: dict[str, torch.Tensor]) -> list[UtteranceInput]:
    """What the inference stage hands the model for each turn, from the context stage's output."""
    buffer = ContextBuffer(DIMS.context_size, DIMS.text_dim)
    out = []
    for seq, ((speaker, words), audio) in enumerate(zip(TURNS, frames, strict=True), start=1):
        utt = Utterance(utterance_id=f"call-{seq}", end_s=float(seq), audio=np.zeros(160, np.float32),
                        stream_id="call", seq=seq, channel=0, speaker=speaker, start_s=seq - 0.5,
                        audio_end_wall=0.0, endpoint_wall=0.0, split=False)
        heard = Transcribed(Acoustic(utt, audio, {}), Transcript(words, -0.1, 0.0), {})
        embedded = Embedded(heard, sentences[words] if words else None, None, {})
        (item,) = asyncio.run(buffer.process(embedded))
        out.append(UtteranceInput(audio=audio, sentence=embedded.sentence, tokens=None, speaker=speaker,
                                  context=item.context))
    return out


def test_stream_context_matches_training_dialogue_inputs() -> None:
    gen = torch.Generator().manual_seed(0)
    sentences = {words: torch.randn(DIMS.text_dim, generator=gen) for _, words in TURNS if words}
    sentences[""] = torch.zeros(DIMS.text_dim)  # as training.cache.text_features maps no words
    frames = [torch.randn(20 + 5 * i, DIMS.audio_dim, generator=gen) for i in range(len(TURNS))]
    records = [Record(audio=None, text=words, label="neutral", speaker=speaker, dialogue="call", turn=i,
                      corpus="meld") for i, (speaker, words) in enumerate(TURNS)]
    trained = collate(dialogue_inputs(records, sentences, DIMS, audio=frames), DIMS)
    live = collate(stream_inputs(frames, sentences), DIMS)
    for name in ("audio", "audio_mask", "sentence", "has_text", "context", "context_mask", "context_same_speaker"):
        assert torch.equal(getattr(live, name), getattr(trained, name)), name
    assert live.context_same_speaker[-1].tolist() == [True, True, False]  # its 3 past turns: caller, caller, agent
    torch.manual_seed(0)
    model = DialogueBiLSTMMHA(DIMS, lstm_hidden=8, lstm_layers=1, text_hidden=8, heads=2).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(live), model(trained))
        alone = collate([UtteranceInput(audio=frames[-1], sentence=sentences[TURNS[-1][1]], tokens=None,
                                        speaker="caller")], DIMS)
        assert not torch.allclose(model(live)[-1], model(alone)[0], atol=1e-4)  # the window is read
