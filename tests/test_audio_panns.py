"""PANNs Cnn14 / ResNet38: official key layout, random-weight round trips, frontend vs librosa, masking."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

from hybridlib.models.audio import build_audio_backbone
from hybridlib.models.audio.checkpoints import official_state_dict, read_checkpoint
from hybridlib.models.audio.frontends import PannsLogMel

SR = 32000


def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights and BatchNorm statistics (so a round trip cannot pass by matching the init)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "spectrogram_extractor" in name or "melW" in name:
                continue  # fixed DFT kernels and mel filters, part of the official files as well
            p.copy_(
                torch.randn(p.shape, generator=g) * (0.5 / max(1, p[0].numel()) ** 0.5)
                + (1.0 if name.endswith("bn1.weight") else 0.0)
            )
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
    return model.eval()


@pytest.fixture(scope="module", params=["panns-cnn14", "panns-resnet38"])
def panns(request):
    return randomise(build_audio_backbone(request.param, pretrained=False))


def test_official_key_layout(panns):
    keys = set(official_state_dict(panns))
    assert {"spectrogram_extractor.stft.conv_real.weight", "spectrogram_extractor.stft.conv_imag.weight",
            "logmel_extractor.melW", "bn0.running_var", "fc1.weight", "fc_audioset.bias"} <= keys  # fmt: skip
    assert not any(k.startswith("frontend.") for k in keys)
    sd = official_state_dict(panns)
    assert sd["spectrogram_extractor.stft.conv_real.weight"].shape == (513, 1, 1024)
    assert sd["logmel_extractor.melW"].shape == (513, 64) and sd["fc_audioset.weight"].shape == (527, 2048)
    if panns.name == "panns-cnn14":
        assert sd["conv_block6.conv2.weight"].shape == (2048, 2048, 3, 3)
        assert sum(k.startswith("conv_block") and k.endswith("conv1.weight") for k in keys) == 6
    else:
        blocks = {".".join(k.split(".")[1:3]) for k in keys if k.startswith("resnet.")}
        assert len(blocks) == 3 + 4 + 6 + 3
        assert sd["resnet.layer2.0.downsample.1.weight"].shape == (128, 64, 1, 1)
        assert (
            "resnet.layer4.0.downsample.2.running_mean" in keys
            and "resnet.layer1.0.downsample.1.weight" not in keys
        )
        assert sd["conv_block_after1.conv1.weight"].shape == (2048, 512, 3, 3)


@pytest.mark.slow
def test_random_weights_round_trip_through_official_format(panns, tmp_path):
    path = tmp_path / "official.pth"
    torch.save({"model": official_state_dict(panns), "iteration": 600000}, path)
    state, extra = read_checkpoint(path)
    assert extra["format"] == "model" and extra["iteration"] == 600000
    loaded = build_audio_backbone(panns.name, checkpoint=path)
    report = loaded.checkpoint_report
    assert not report.missing and not report.unexpected and len(report.loaded) == len(state)
    x = 0.1 * torch.randn(1, SR * 2)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x)[0], panns(x)[0], atol=0, rtol=0)
        logits = loaded.clip_logits(*loaded(x))
    assert logits.shape == (1, 527)


@pytest.mark.slow
def test_frames_for_1_and_10_seconds_batched_equal_one_by_one(panns):
    lengths = [SR * 10, SR]
    clips = [0.1 * torch.randn(n) for n in lengths]
    batch = torch.zeros(2, SR * 10)
    batch[1, :SR] = clips[1]
    batch[0] = clips[0]
    with torch.inference_mode():
        frames, n = panns(batch, torch.tensor(lengths))
        assert frames.shape == (2, 31, 2048) and n.tolist() == [31, 3]  # (1 + N // 320) // 32
        for i, clip in enumerate(clips):
            alone, n_alone = panns(clip[None])
            assert n_alone.item() == n[i]
            torch.testing.assert_close(frames[i, : n[i]], alone[0], atol=1e-5, rtol=1e-4)
    assert frames[1, 3:].abs().sum() == 0
    assert panns.frame_lengths(torch.tensor([SR, SR * 10, SR * 30])).tolist() == [3, 31, 93]


@pytest.mark.slow
def test_frames_for_30_seconds(panns):
    with torch.inference_mode():
        frames, n = panns(0.1 * torch.randn(1, SR * 30))
    assert frames.shape == (1, 93, 2048) and n.tolist() == [93]


@pytest.mark.slow
def test_dropout_and_specaugment_only_in_training(panns):
    x = 0.1 * torch.randn(1, SR)
    with torch.no_grad():
        a, _ = panns(x)
        b, _ = panns(x)
        assert torch.equal(a, b)
        panns.train()
        try:
            c, _ = panns(x)
        finally:
            panns.eval()
    assert not torch.allclose(a, c)


def test_frontend_matches_librosa(shared_data):
    import librosa

    wav = next(shared_data("clotho", "audio").glob("*.wav"))
    y, sr = sf.read(wav, dtype="float64")
    y = AF.resample(torch.from_numpy(y[: sr * 3]), sr, SR).numpy()
    stft = librosa.stft(
        y, n_fft=1024, hop_length=320, win_length=1024, window="hann", center=True, pad_mode="reflect"
    )
    mel = librosa.filters.mel(sr=SR, n_fft=1024, n_mels=64, fmin=50, fmax=14000) @ np.abs(stft) ** 2
    ref = 10 * np.log10(np.maximum(mel, 1e-10)).T
    front = PannsLogMel().double().eval()
    out, n = front(torch.from_numpy(y)[None])
    assert out.shape == (1, 1, ref.shape[0], 64) and n.item() == ref.shape[0]
    np.testing.assert_allclose(out[0, 0].numpy(), ref, atol=1e-4, rtol=0)
    np.testing.assert_allclose(
        front.logmel_extractor.melW.numpy(),
        librosa.filters.mel(sr=SR, n_fft=1024, n_mels=64, fmin=50, fmax=14000).T,
        atol=1e-7,
    )
