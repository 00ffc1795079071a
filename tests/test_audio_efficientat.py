"""EfficientAT MobileNets: official key layout, random-weight round trip, Kaldi-mel frontend, masking."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

from hybridlib.models.audio import build_audio_backbone
from hybridlib.models.audio.efficientat import make_divisible
from hybridlib.models.audio.frontends import EfficientATMel, kaldi_mel_banks

SR = 32000


def randomise(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:  # BN affine and biases
                p.copy_(
                    (1.0 if name.endswith(".1.weight") else 0.0) + 0.1 * torch.randn(p.shape, generator=g)
                )
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) * (1.0 / fan_in) ** 0.5)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
    return model.eval()


@pytest.fixture(scope="module", params=["efficientat-mn40", "efficientat-mn10"])
def mobilenet(request):
    return randomise(build_audio_backbone(request.param, pretrained=False))


def test_official_key_layout_of_mn40():
    model = build_audio_backbone("efficientat-mn40", pretrained=False)
    sd = model.state_dict()
    assert model.embed_dim == 3840 and sd["features.16.0.weight"].shape == (3840, 640, 1, 1)
    assert sd["features.0.0.weight"].shape == (64, 1, 3, 3)
    se_blocks = sorted({int(k.split(".")[1]) for k in sd if "conc_se_layers.0.fc1" in k})
    assert se_blocks == [4, 5, 6, 11, 12, 13, 14, 15]
    assert sd["features.4.block.2.conc_se_layers.0.fc1.weight"].shape == (72, 288)  # Linear, reduction 4
    assert sd["features.1.block.0.0.weight"].shape == (
        64,
        1,
        3,
        3,
    )  # no expansion in block 1: depthwise first
    assert sd["classifier.2.weight"].shape == (5120, 3840) and sd["classifier.5.weight"].shape == (527, 5120)
    assert all(m.eps == 1e-3 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert sum(p.numel() for p in model.parameters()) == 68_427_303  # mn40: 68.4M as published
    assert make_divisible(1280 * 4.0) == 5120 and make_divisible(72 * 4.0 // 4) == 72


@pytest.mark.slow
def test_random_weights_round_trip_through_release_format(tmp_path):
    model = randomise(build_audio_backbone("efficientat-mn40", pretrained=False))
    path = tmp_path / "mn40_as_ext_mAP_487.pt"
    torch.save(model.state_dict(), path)  # the release files are bare state dicts
    loaded = build_audio_backbone("efficientat-mn40", checkpoint=path)
    assert not loaded.checkpoint_report.missing and not loaded.checkpoint_report.unexpected
    x = 0.1 * torch.randn(1, SR)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x)[0], model(x)[0], atol=0, rtol=0)
        assert loaded.clip_logits(x).shape == (1, 527)


def test_frames_for_1_and_10_seconds_batched_equal_one_by_one(mobilenet):
    lengths = [SR * 10, SR]
    batch = 0.1 * torch.randn(2, SR * 10)
    batch[1, SR:] = 0
    with torch.inference_mode():
        frames, n = mobilenet(batch, torch.tensor(lengths))
        assert frames.shape == (2, 32, mobilenet.embed_dim) and n.tolist() == [32, 4]  # 32 per 10 s
        for i, length in enumerate(lengths):
            alone, n_alone = mobilenet(batch[i : i + 1, :length])
            assert n_alone.item() == n[i]
            torch.testing.assert_close(frames[i, : n[i]], alone[0], atol=1e-5, rtol=1e-4)
    assert frames[1, 4:].abs().sum() == 0
    assert mobilenet.frame_lengths(torch.tensor([SR, SR * 10, SR * 30])).tolist() == [4, 32, 94]


@pytest.mark.slow
def test_frames_for_30_seconds():
    model = build_audio_backbone("efficientat-mn10", pretrained=False)
    with torch.inference_mode():
        frames, n = model(0.1 * torch.randn(1, SR * 30))
    assert frames.shape == (1, 94, 960) and n.tolist() == [94]


def test_kaldi_mel_banks_match_torchaudio():
    from torchaudio.compliance.kaldi import get_mel_banks

    ref, _ = get_mel_banks(128, 1024, float(SR), 0.0, 15000.0, 100.0, -500.0, 1.0)
    ours = kaldi_mel_banks(128, 1024, SR, 0.0, 15000.0)
    assert ours.shape == (128, 512)
    torch.testing.assert_close(ours, ref.float(), atol=1e-4, rtol=0)  # torchaudio computes in float32


@pytest.mark.slow
def test_frontend_matches_independent_computation(shared_data):
    import librosa
    import scipy.signal
    from torchaudio.compliance.kaldi import get_mel_banks

    wav = next(shared_data("clotho", "audio").glob("*.wav"))
    y, sr = sf.read(wav, dtype="float64")
    y = AF.resample(torch.from_numpy(y[: sr * 3]), sr, SR).numpy()
    pre = y[1:] - 0.97 * y[:-1]
    window = scipy.signal.get_window("hann", 800, fftbins=False)  # symmetric, as torch periodic=False
    power = (
        np.abs(
            librosa.stft(
                pre,
                n_fft=1024,
                hop_length=320,
                win_length=800,
                window=window,
                center=True,
                pad_mode="reflect",
            )
        )
        ** 2
    )
    banks, _ = get_mel_banks(128, 1024, float(SR), 0.0, 15000.0, 100.0, -500.0, 1.0)
    banks = np.pad(banks.double().numpy(), ((0, 0), (0, 1)))
    ref = (np.log(banks @ power + 1e-5) + 4.5) / 5
    front = EfficientATMel().double().eval()
    out, n = front(torch.from_numpy(y)[None])
    assert out.shape == (1, 1, 128, ref.shape[1]) and n.item() == ref.shape[1]
    np.testing.assert_allclose(out[0, 0].numpy(), ref, atol=1e-4, rtol=0)


def test_training_mode_augments_eval_is_deterministic():
    front = EfficientATMel()
    x = 0.1 * torch.randn(2, SR)
    a, _ = front.eval()(x)
    b, _ = front(x)
    assert torch.equal(a, b)
    c, _ = front.train()(x)
    assert c.shape == a.shape and not torch.equal(a, c)
