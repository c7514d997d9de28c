"""The shared filterbank YAML works at any sample rate: n_fft is derived from the window."""

import pytest
import torch
from conftest import REPO

from blend_modules.data.frames import fft_size, hop_samples, num_frames
from blend_modules.data.hparams import load_hparams_file


@pytest.mark.parametrize("sample_rate, n_fft", [(8000, 256), (16000, 512), (22050, 1024)])
def test_fbank_at_any_sample_rate(sample_rate, n_fft):
    features = load_hparams_file(
        REPO / "hparams" / "features" / "fbank.yaml", {"sample_rate": sample_rate}
    )
    assert features["n_fft"] == n_fft == fft_size(sample_rate, 25)
    wav = torch.randn(2, int(1.234 * sample_rate))
    fbank = features["compute_features"](wav)
    assert fbank.shape == (2, num_frames(wav.shape[1], hop_samples(features)), 40)
    assert torch.isfinite(fbank).all()


def test_fft_size_holds_the_window():
    assert fft_size(8000, 25) == 256  # 200 samples
    assert fft_size(16000, 32) == 512  # exactly 512 samples
    assert fft_size(16000, 32.1) == 1024
