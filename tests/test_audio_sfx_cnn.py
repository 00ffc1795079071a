"""sfx-cnn backbone: bundled checkpoint, frontend vs librosa, shapes, masking, checkpoint round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

from hybridlib.models.audio import build_audio_backbone
from hybridlib.models.audio.checkpoints import CheckpointError, load_official_weights, read_checkpoint
from hybridlib.models.audio.frontends import SFX_NORM_MAX, SfxLogMel
from hybridlib.models.audio.sfx_cnn import SfxCNN

SR = 44100


def read_bank_clip(root, rel: str, sample_rate: int = SR) -> torch.Tensor:
    y, sr = sf.read(root / rel, dtype="float32", always_2d=True)
    y = torch.from_numpy(y.mean(axis=1))
    return AF.resample(y, sr, sample_rate) if sr != sample_rate else y


@pytest.fixture(scope="module")
def sfx():
    return build_audio_backbone("sfx-cnn")


def test_bundled_checkpoint_keys_and_report(sfx):
    state, extra = read_checkpoint(sfx.checkpoint_path)
    assert extra["format"] == "tuple" and "prosfx" in extra["info"]
    assert state["embedding_net.conv_block4.conv2.weight"].shape == (512, 512, 3, 3)
    report = sfx.checkpoint_report
    assert len(report.loaded) == 48 and not report.missing and not report.unexpected
    assert all(k.startswith("fc.") for k in report.ignored) and len(report.ignored) == 54
    # the weights really are the checkpoint's, not the random init
    assert torch.equal(
        sfx.embedding_net.conv_block1.conv1.weight, state["embedding_net.conv_block1.conv1.weight"]
    )
    assert sfx.sample_rate == SR and sfx.embed_dim == 512 and sfx.name == "sfx-cnn"
    assert not sfx.training


@pytest.mark.slow
@pytest.mark.parametrize("seconds, expected", [(1, 5), (10, 53), (30, 161)])
def test_frame_shapes_for_1_10_30_seconds(sfx, seconds, expected):
    n = SR * seconds
    # (1 + n // 1024) spectrogram frames, three 2x max-pools
    assert expected == (1 + n // 1024) // 8
    with torch.inference_mode():
        frames, lengths = sfx(0.1 * torch.randn(1, n))
    assert frames.shape == (1, expected, 512) and lengths.tolist() == [expected]
    assert sfx.frame_lengths(torch.tensor([n])).tolist() == [expected]
    assert torch.isfinite(frames).all() and (frames >= 0).all()  # averaged ReLU outputs


@pytest.mark.slow
def test_variable_length_batch_equals_one_by_one(sfx):
    lengths = [SR * 3 + 517, SR // 2, 9000, 3000]  # the last is below the receptive field
    clips = [0.3 * torch.randn(n) for n in lengths]
    batch = torch.zeros(len(clips), max(lengths))
    for i, c in enumerate(clips):
        batch[i, : len(c)] = c
    with torch.inference_mode():
        frames, n = sfx(batch, torch.tensor(lengths))
        for i, c in enumerate(clips):
            alone, n_alone = sfx(c[None])
            assert n[i] == n_alone[0] >= 1
            torch.testing.assert_close(frames[i, : n[i]], alone[0], atol=1e-5, rtol=1e-5)
        assert frames[3, n[3] :].abs().sum() == 0  # padded steps are zero


def test_frontend_matches_librosa_reference(shared_data):
    import librosa

    wav = next(shared_data("clotho", "audio").glob("*.wav"))
    y, sr = sf.read(wav, dtype="float64")
    assert sr == SR
    y = y[: SR * 4]
    # aiSFX's librosa path, in float64
    yn = y / np.abs(y).max()
    mel = librosa.feature.melspectrogram(
        y=yn, sr=SR, n_fft=2048, hop_length=1024, n_mels=96, fmin=0, fmax=22050, htk=True, norm=1.0,
        power=2.0, center=True, pad_mode="constant",
    )  # fmt: skip
    ref = (np.log10(1 + 10000 * mel) / SFX_NORM_MAX).T
    front = SfxLogMel().double().eval()
    out, n = front(torch.from_numpy(y)[None])
    assert out.shape == (1, ref.shape[0], 96) and n.item() == ref.shape[0]
    np.testing.assert_allclose(out[0].numpy(), ref, atol=1e-4, rtol=0)
    # float32 (what the model runs) stays close too
    out32, _ = SfxLogMel().eval()(torch.from_numpy(y).float()[None])
    np.testing.assert_allclose(out32[0].numpy(), ref, atol=1e-3, rtol=0)
    # peak normalisation: scaling the input changes nothing
    out_scaled, _ = front(torch.from_numpy(0.1 * y)[None])
    torch.testing.assert_close(out_scaled, out)


def test_specaugment_only_in_training_mode():
    front = SfxLogMel(freq_mask=20, time_mask=30)
    x = torch.randn(2, SR * 2)
    eval_a, _ = front.eval()(x)
    eval_b, _ = front(x)
    assert torch.equal(eval_a, eval_b)
    train_out, _ = front.train()(x)
    assert not torch.equal(train_out, eval_a)
    zeroed = (train_out == 0) & (eval_a != 0)
    assert zeroed.any()  # masks set whole stripes to zero
    assert torch.equal(train_out[~zeroed], eval_a[~zeroed])


def test_random_weights_round_trip_through_official_tuple_format(tmp_path):
    import numpy as np_

    model = SfxCNN().eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    for name, buf in model.named_buffers():
        if name.endswith("running_var"):
            buf.uniform_(0.5, 2.0)
        elif name.endswith("running_mean"):
            buf.normal_(0, 0.1)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["fc.0.0.weight"] = torch.randn(256, 512)  # a classifier head, as in the aiSFX file
    info = {"prosfx": (np_.int64(0), 78)}
    path = tmp_path / "checkpoint.pth"
    torch.save((state, info), path)
    loaded = build_audio_backbone("sfx-cnn", checkpoint=path)
    assert loaded.checkpoint_report.ignored == ["fc.0.0.weight"]
    x = torch.randn(2, SR)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x)[0], model(x)[0], atol=0, rtol=0)


def test_load_checkpoint_names_the_mismatching_key(tmp_path):
    model = SfxCNN()
    state = model.state_dict()
    state["embedding_net.conv_block2.conv1.weight"] = torch.zeros(128, 32, 3, 3)
    torch.save({"model": state}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=r"conv_block2\.conv1\.weight.*\(128, 32, 3, 3\)"):
        load_official_weights(tmp_path / "bad.pth", model)
    del state["embedding_net.conv_block2.conv1.weight"]
    state["extra.weight"] = torch.zeros(1)
    torch.save({"model": state}, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match=r"1 model keys missing.*conv_block2\.conv1\.weight"):
        load_official_weights(tmp_path / "missing.pth", model)
    with pytest.warns(UserWarning) as caught:
        report = load_official_weights(tmp_path / "missing.pth", model, strict=False)
    messages = " | ".join(str(w.message) for w in caught)
    assert "left at their initial values" in messages and "not used by the model: extra.weight" in messages
    assert report.missing == ["embedding_net.conv_block2.conv1.weight"] and report.unexpected == [
        "extra.weight"
    ]
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth"):
        load_official_weights(tmp_path / "junk.pth", model)


@pytest.mark.slow
def test_bundled_model_separates_different_sounds(sfx, shared_data):
    """Nearest neighbours of mean-pooled frames share the sound's label far more often than chance."""
    root = shared_data("soundbank-modsounds")
    manifest = pd.read_csv(root / "manifest.csv")
    labels = ["cicada", "step snow", "laser", "explosion distant", "rifle fire", "duck quack", "doorbell"]
    rows = manifest[manifest.label.isin(labels)]
    embeddings = []
    with torch.inference_mode():
        for rel in rows.file:
            frames, n = sfx(read_bank_clip(root, rel)[None])
            embeddings.append(frames[0, : n[0]].mean(dim=0))
    emb = torch.nn.functional.normalize(torch.stack(embeddings), dim=-1)
    sim = emb @ emb.T
    sim.fill_diagonal_(-2.0)
    names = rows.label.tolist()
    hits = [names[i] == names[j] for i, j in enumerate(sim.argmax(dim=1).tolist())]
    accuracy = sum(hits) / len(hits)
    chance = sum((rows.label == lab).sum() * ((rows.label == lab).sum() - 1) for lab in labels) / (
        len(rows) * (len(rows) - 1)
    )
    assert chance < 0.2
    assert accuracy > 0.6, accuracy
    # two acoustically different events: cicada chirps vs distant explosions
    cicada = torch.tensor([n == "cicada" for n in names])
    boom = torch.tensor([n == "explosion distant" for n in names])
    sim.fill_diagonal_(float("nan"))
    within = torch.nanmean(sim[cicada][:, cicada])
    across = sim[cicada][:, boom].mean()
    assert within > across + 0.05


@pytest.mark.slow
def test_frames_match_an_independent_aisfx_style_forward(sfx, shared_data):
    """Re-run aiSFX's EmbeddingNet by hand from the checkpoint tensors (librosa log-mel, functional ops):
    its per-block clip embedding (max over time of the frequency-averaged last block) equals the max over
    our frames."""
    import librosa
    import torch.nn.functional as F

    state, _ = read_checkpoint(sfx.checkpoint_path)
    wav = next(shared_data("clotho", "audio").glob("*.wav"))
    y, _ = sf.read(wav, dtype="float32")
    y = y[: SR * 3]
    yn = y / np.abs(y).max()
    mel = librosa.feature.melspectrogram(
        y=yn, sr=SR, n_fft=2048, hop_length=1024, n_mels=96, fmin=0, fmax=22050, htk=True, norm=1.0, power=2.0,
        center=True, pad_mode="constant",
    )  # fmt: skip
    x = torch.from_numpy(np.log10(1 + 10000 * mel) / SFX_NORM_MAX).float().T[None, None]  # (1, 1, T, 96)
    for i in range(1, 5):
        for j in (1, 2):
            p = f"embedding_net.conv_block{i}."
            x = F.conv2d(x, state[p + f"conv{j}.weight"], padding=1)
            x = F.batch_norm(x, state[p + f"bn{j}.running_mean"], state[p + f"bn{j}.running_var"],
                             state[p + f"bn{j}.weight"], state[p + f"bn{j}.bias"], training=False)  # fmt: skip
            x = F.relu(x)
        x = F.max_pool2d(x, 2) if i < 4 else x
    reference = x.mean(dim=3).amax(dim=2)[0]  # aiSFX: mean over frequency, max over time
    with torch.inference_mode():
        frames, _ = sfx(torch.from_numpy(y)[None])
    torch.testing.assert_close(frames[0].amax(dim=0), reference, atol=1e-4, rtol=1e-4)
    assert frames.shape[1] == x.shape[2]


def test_checkpoint_with_numpy_training_state_loads_without_trusting_pickle(tmp_path):
    import pickle

    model = SfxCNN()
    state = {
        "model": model.state_dict(),
        "iteration": 10,
        "sampler": {"indexes": np.arange(5), "rate": np.float64(0.5)},
    }
    torch.save(state, tmp_path / "train_state.pth")
    _, extra = read_checkpoint(tmp_path / "train_state.pth")
    assert extra["iteration"] == 10
    report = load_official_weights(tmp_path / "train_state.pth", SfxCNN())
    assert not report.missing

    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"model": Evil()}, f, protocol=2)
    with pytest.raises(CheckpointError, match="weights_only"):
        read_checkpoint(tmp_path / "evil.pth")
