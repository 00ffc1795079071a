"""Plot helpers of notebook 03: each returns a figure, draws on a given axis, never changes global style."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from hybridlib.models.pooling import TransformerPooling, sinusoidal_encoding  # noqa: E402
from hybridlib.viz import encoders as ve  # noqa: E402


def test_plot_helpers_return_figures_and_use_given_axes():
    before = dict(plt.rcParams)
    fig = ve.plot_encoder_stages(torch.randn(4410), 4410, torch.rand(40, 96), torch.rand(5, 512))
    assert len(fig.axes) == 5  # three panels + two colour bars
    assert fig.axes[2].get_title().startswith("frame embeddings 5 x 512")
    frames = [torch.rand(4, 8), torch.rand(3, 8)]
    fig = ve.plot_frame_similarity(frames, ["a", "b"])
    image = fig.axes[0].images[0].get_array()
    assert image.shape == (7, 7) and np.allclose(np.diag(image), 1.0, atol=1e-5)
    _, ax = plt.subplots()
    assert ve.plot_similarity_matrix(np.eye(3), ["x", "y", "z"], ax=ax) is ax.figure
    assert len(ax.texts) == 9
    ve.plot_embedding_strips(torch.randn(2, 384), ["t1", "t2"])
    ve.plot_positional_encoding(sinusoidal_encoding(20, 16))
    pool = TransformerPooling(8, 8, num_layers=2, num_heads=2).eval()
    out = pool(torch.randn(1, 6, 8), extra_tokens=torch.randn(1, 1, 8), return_attention=True)
    fig = ve.plot_global_attention(out.attention, 6, frame_rate=2.0, extra_labels=["metadata"])
    lines = [line for line in fig.axes[0].lines if line.get_label().startswith("layer")]
    assert len(lines) == 2 and np.allclose(lines[0].get_xdata(), np.arange(6) / 2.0)
    np.testing.assert_allclose(lines[0].get_ydata(), out.attention[0][0, 0, 1:7].detach().numpy(), rtol=1e-6)
    from hybridlib.viz.training import plot_training_curves

    assert len(plot_training_curves({"loss": [3.0, 2.0]}).axes[0].lines) == 1
    assert dict(plt.rcParams) == before
    plt.close("all")
