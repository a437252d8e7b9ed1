"""VideoPose3D's temporal convolutional lifter (Pavllo et al., CVPR 2019), written for vp3d.

Input ``(N, T, J_in, F_in)`` normalised 2D keypoints; output ``(N, T - receptive_field + 1,
J_out, 3)``. The network is a stack of blocks: an "expand" convolution of width ``filter_widths[0]``,
then for each further width ``w_i`` a dilated convolution (dilation = product of the earlier
widths) and a 1x1 convolution, each followed by batch norm, ReLU and dropout, with a residual
connection that slices the input to the output's length. The receptive field is
``prod(filter_widths)`` frames.

:class:`TemporalModelOptimized1f` is the strided twin used for training on single output frames:
the same parameters (same names and shapes, so state dicts are interchangeable) with strides in
place of dilations, which skips computing frames nobody needs.

Parameter names match the original release so its checkpoints load with ``strict=True``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["TemporalModel", "TemporalModelBase", "TemporalModelOptimized1f"]


class TemporalModelBase(nn.Module):
    """Shared layout and receptive-field arithmetic."""

    def __init__(
        self,
        num_joints_in: int,
        in_features: int,
        num_joints_out: int,
        filter_widths: list[int],
        causal: bool = False,
        dropout: float = 0.25,
        channels: int = 1024,
    ) -> None:
        super().__init__()
        if not filter_widths or any(w < 1 or w % 2 == 0 for w in filter_widths):
            raise ValueError(f"filter widths must be odd positive integers, got {filter_widths}")
        self.num_joints_in = num_joints_in
        self.in_features = in_features
        self.num_joints_out = num_joints_out
        self.filter_widths = list(filter_widths)
        self.causal = causal
        self.channels = channels
        self.drop = nn.Dropout(dropout)
        self.relu = nn.ReLU(inplace=True)
        # pad[i]: frames consumed on each side by block i; causal_shift[i]: how far a causal
        # block shifts its window into the past.
        self.pad = [filter_widths[0] // 2]
        self.causal_shift = [filter_widths[0] // 2 if causal else 0]
        self.expand_bn = nn.BatchNorm1d(channels, momentum=0.1)
        self.shrink = nn.Conv1d(channels, num_joints_out * 3, 1)
        self.layers_conv = nn.ModuleList()
        self.layers_bn = nn.ModuleList()
        dilation = filter_widths[0]
        for width in filter_widths[1:]:
            self.pad.append((width - 1) * dilation // 2)
            self.causal_shift.append((width // 2) * dilation if causal else 0)
            dilation *= width

    def set_bn_momentum(self, momentum: float) -> None:
        self.expand_bn.momentum = momentum
        for bn in self.layers_bn:
            bn.momentum = momentum  # type: ignore[assignment]

    @property
    def receptive_field(self) -> int:
        """Number of input frames that produce one output frame."""
        return 1 + 2 * sum(self.pad)

    @property
    def total_causal_shift(self) -> int:
        """Frames of future context the model skips (0 unless causal)."""
        return sum(self.causal_shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[-2] != self.num_joints_in or x.shape[-1] != self.in_features:
            raise ValueError(
                f"expected input (N, T, {self.num_joints_in}, {self.in_features}), got {tuple(x.shape)}"
            )
        n, t = x.shape[:2]
        if t < self.receptive_field:
            raise ValueError(f"need at least {self.receptive_field} frames, got {t}")
        x = x.reshape(n, t, -1).permute(0, 2, 1)
        x = self._forward_blocks(x)
        return x.permute(0, 2, 1).reshape(n, -1, self.num_joints_out, 3)

    def _forward_blocks(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class TemporalModel(TemporalModelBase):
    """The dilated model: whole sequences in, one output per frame that has full context."""

    def __init__(
        self,
        num_joints_in: int,
        in_features: int,
        num_joints_out: int,
        filter_widths: list[int],
        causal: bool = False,
        dropout: float = 0.25,
        channels: int = 1024,
        dense: bool = False,
    ) -> None:
        super().__init__(num_joints_in, in_features, num_joints_out, filter_widths, causal, dropout, channels)
        self.dense = dense
        self.expand_conv = nn.Conv1d(num_joints_in * in_features, channels, filter_widths[0], bias=False)
        dilation = filter_widths[0]
        for i, width in enumerate(filter_widths[1:], start=1):
            if dense:
                conv = nn.Conv1d(channels, channels, 2 * self.pad[i] + 1, dilation=1, bias=False)
            else:
                conv = nn.Conv1d(channels, channels, width, dilation=dilation, bias=False)
            self.layers_conv.append(conv)
            self.layers_bn.append(nn.BatchNorm1d(channels, momentum=0.1))
            self.layers_conv.append(nn.Conv1d(channels, channels, 1, dilation=1, bias=False))
            self.layers_bn.append(nn.BatchNorm1d(channels, momentum=0.1))
            dilation *= width

    def _forward_blocks(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.relu(self.expand_bn(self.expand_conv(x))))
        for i in range(len(self.pad) - 1):
            pad, shift = self.pad[i + 1], self.causal_shift[i + 1]
            res = x[:, :, pad + shift: x.shape[2] - pad + shift]
            x = self.drop(self.relu(self.layers_bn[2 * i](self.layers_conv[2 * i](x))))
            x = res + self.drop(self.relu(self.layers_bn[2 * i + 1](self.layers_conv[2 * i + 1](x))))
        with torch.autocast(x.device.type, enabled=False):  # fp32 joints, as in the 1f twin
            return self.shrink(x.float())


class TemporalModelOptimized1f(TemporalModelBase):
    """Strided twin for training: input exactly ``receptive_field`` frames, output one frame."""

    def __init__(
        self,
        num_joints_in: int,
        in_features: int,
        num_joints_out: int,
        filter_widths: list[int],
        causal: bool = False,
        dropout: float = 0.25,
        channels: int = 1024,
    ) -> None:
        super().__init__(num_joints_in, in_features, num_joints_out, filter_widths, causal, dropout, channels)
        self.expand_conv = nn.Conv1d(
            num_joints_in * in_features, channels, filter_widths[0], stride=filter_widths[0], bias=False
        )
        for width in filter_widths[1:]:
            self.layers_conv.append(nn.Conv1d(channels, channels, width, stride=width, bias=False))
            self.layers_bn.append(nn.BatchNorm1d(channels, momentum=0.1))
            self.layers_conv.append(nn.Conv1d(channels, channels, 1, dilation=1, bias=False))
            self.layers_bn.append(nn.BatchNorm1d(channels, momentum=0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A convolution whose stride equals its width is a matrix product over groups of frames;
        # computing it that way, channels last, trains 15-30% faster on CPU than Conv1d.
        if x.dim() != 4 or x.shape[-2] != self.num_joints_in or x.shape[-1] != self.in_features:
            raise ValueError(
                f"expected input (N, T, {self.num_joints_in}, {self.in_features}), got {tuple(x.shape)}"
            )
        n, t = x.shape[:2]
        if t != self.receptive_field:
            raise ValueError(f"the 1f model takes exactly {self.receptive_field} frames, got {t}")
        h = self._block(x.reshape(n, t, -1), self.expand_conv, self.expand_bn, self.filter_widths[0])
        for i in range(len(self.pad) - 1):
            res = h[:, self._res_start(i):: self.filter_widths[i + 1]]
            h = self._block(h, self.layers_conv[2 * i], self.layers_bn[2 * i], self.filter_widths[i + 1])
            h = res + self._block(h, self.layers_conv[2 * i + 1], self.layers_bn[2 * i + 1], 1)
        # The joints come out in fp32 even in bfloat16 training: bf16 would round metres to ~2 mm.
        with torch.autocast(h.device.type, enabled=False):
            out = F.linear(h.float(), self.shrink.weight[:, :, 0], self.shrink.bias)
        return out.reshape(n, -1, self.num_joints_out, 3)

    def _block(self, h: torch.Tensor, conv: nn.Module, bn: nn.Module, width: int) -> torch.Tensor:
        """Strided conv (as matmul) + BN + ReLU + dropout on channels-last ``h (N, T, C)``."""
        n, t, c = h.shape
        weight: torch.Tensor = conv.weight  # type: ignore[assignment]  # (C_out, C_in, width) -> (C_out, width * C_in)
        y = F.linear(h.reshape(n, t // width, width * c), weight.permute(0, 2, 1).reshape(weight.shape[0], -1))
        y = bn(y.reshape(-1, y.shape[-1])).reshape(y.shape)
        return self.drop(self.relu(y))

    def _forward_blocks(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - forward() overrides
        raise NotImplementedError

    def _res_start(self, i: int) -> int:
        # In strided units the block's centre frame sits at width // 2; a causal block takes its
        # last frame instead (the full window lies in the past).
        width = self.filter_widths[i + 1]
        return width - 1 if self.causal else width // 2
