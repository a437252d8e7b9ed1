"""Running a temporal lifter over whole sequences.

Sequences are edge-padded by the model's receptive field (shifted for causal models) so every
input frame gets an output, and processed in chunks so memory stays flat in sequence length.
Flip augmentation runs the mirrored input too and averages the un-mirrored result.
"""

from __future__ import annotations

import numpy as np
import torch

from vp3d_engine.lifters.temporal import TemporalModelBase

__all__ = ["predict_sequence"]


@torch.no_grad()
def predict_sequence(
    model: TemporalModelBase,
    inputs: np.ndarray,
    *,
    flip: bool = False,
    flip_perm_in: np.ndarray | None = None,
    flip_perm_out: np.ndarray | None = None,
    chunk: int = 4096,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """``inputs (T,J_in,F)`` normalised keypoints to ``(T,J_out,3)`` (eval mode, no grad)."""
    model.eval()
    pad = (model.receptive_field - 1) // 2
    shift = model.total_causal_shift
    x = np.pad(inputs, ((pad + shift, pad - shift), (0, 0), (0, 0)), mode="edge").astype(np.float32)
    batch = [x]
    if flip:
        if flip_perm_in is None or flip_perm_out is None:
            raise ValueError("flip needs flip_perm_in and flip_perm_out")
        mirrored = x[:, flip_perm_in].copy()
        mirrored[..., 0] *= -1
        batch.append(mirrored)
    t = inputs.shape[0]
    rf = model.receptive_field
    outs = []
    for start in range(0, t, chunk):
        stop = min(start + chunk, t)
        window = np.stack([b[start: stop + rf - 1] for b in batch])
        y = model(torch.from_numpy(window).to(device)).cpu().numpy()
        outs.append(y)
    y = np.concatenate(outs, axis=1)
    if flip:
        un = y[1][:, flip_perm_out].copy()
        un[..., 0] *= -1
        return (0.5 * (y[0] + un)).astype(np.float32)
    return y[0].astype(np.float32)
