"""The denoising network (PyTorch): a causal U-Net on log-power frames with a GRU bottleneck.

Shapes: features ``[batch, frames, bins]`` go in (normalised log-power, see
``models/FORMAT.md``); one output per frame and bin comes out: a bounded gain
(``formulation="mask"``) or the noise log-power in dB (``"noise_subtraction"``).

Layout, with the default channels ``(16, 24, 32, 48, 64)`` and 161 bins::

    features [B, 1, T, 161]
    enc1  conv (2 x 5), stride 2 in frequency   -> [B, 16, T, 81]
    enc2  conv (2 x 3), stride 2                -> [B, 24, T, 41]
    enc3  conv (2 x 3), stride 2                -> [B, 32, T, 21]
    enc4  conv (2 x 3), stride 2                -> [B, 48, T, 11]
    enc5  conv (2 x 3), stride 2                -> [B, 64, T, 6]
    bottleneck  linear 384 -> H, GRU(H), linear H -> 384 (+ residual), H = 160
    dec5  transposed conv on concat(bottleneck, enc5) -> [B, 48, T, 11]
    dec4 .. dec2  likewise, each on concat(previous, skip)
    dec1  transposed conv on concat(dec2, enc1)       -> [B, 1, T, 161]
    head  mask: floor + (1 - floor) * sigmoid;  noise_subtraction: denormalise to dB

Activations are leaky ReLUs, which onnxruntime fuses into the convolutions (PReLU
is not fused; at one frame per call the graph's node count dominates its cost).

Causality: every encoder convolution looks at the current frame and the
``kernel_time - 1`` frames before it, nothing later; the decoder works within
one frame; the GRU runs forward in time. Streaming state is therefore the last
``kernel_time - 1`` input frames of each encoder convolution plus the GRU's
hidden state, and :meth:`SeprocNet.forward` takes and returns all of it
explicitly (``states``), so the exported graph is stateless and one call over
``T`` frames equals ``T`` calls of one frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = [
    "ModelConfig",
    "Refine",
    "SeprocNet",
    "count_flops_per_frame",
    "count_parameters",
    "grow_deep_filter",
    "grow_refine",
]

FORMULATIONS = ("mask", "noise_subtraction")


@dataclass
class ModelConfig:
    """Architecture settings (the ``[model]`` table of a training config)."""

    n_bins: int = 161
    channels: tuple[int, ...] = (16, 24, 32, 48, 64)
    kernel_time: int = 2
    first_kernel_freq: int = 5
    kernel_freq: int = 3
    gru_hidden: int = 160
    refine_channels: int = 0
    activation: str = "leaky_relu"
    formulation: str = "mask"
    gain_floor_db: float = -25.0
    feature_mean_db: list[float] = field(default_factory=list)
    feature_std_db: list[float] = field(default_factory=list)
    # the runtime's gain post-filter (models/FORMAT.md, format 2), applied in training too
    # so the network learns gains for it: 0 dB/s and exponent 1 mean none
    postfilter_release_db_per_s: float = 0.0
    postfilter_exponent: float = 1.0
    # a deep filter (issue 19, run 16): complex coefficients for the lowest
    # ``deep_filter_bins`` bins of the ``deep_filter_order`` frames before each one, added
    # to the masked frame (training only: no runtime or export yet). 0 and 0: none
    deep_filter_order: int = 0
    deep_filter_bins: int = 0

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        if self.formulation not in FORMULATIONS:
            raise ValueError(f"formulation={self.formulation!r} must be one of {FORMULATIONS}")
        if self.activation not in ("leaky_relu", "prelu"):
            raise ValueError(f"activation={self.activation!r} must be 'leaky_relu' or 'prelu'")
        if self.kernel_time < 1:
            raise ValueError(f"kernel_time={self.kernel_time} must be >= 1")
        if self.refine_channels < 0:
            raise ValueError(f"refine_channels={self.refine_channels} must be >= 0")
        if (self.deep_filter_order > 0) != (self.deep_filter_bins > 0) or not (
            0 <= self.deep_filter_bins <= self.n_bins and self.deep_filter_order >= 0
        ):
            raise ValueError(
                f"deep_filter_order={self.deep_filter_order} and deep_filter_bins="
                f"{self.deep_filter_bins} must both be 0 or both > 0, bins <= n_bins"
            )
        if self.deep_filter_order and self.formulation != "mask":
            raise ValueError("a deep filter needs formulation='mask'")
        if self.postfilter_release_db_per_s < 0 or self.postfilter_exponent <= 0:
            raise ValueError(
                f"postfilter_release_db_per_s={self.postfilter_release_db_per_s} must be >= 0 "
                f"and postfilter_exponent={self.postfilter_exponent} > 0"
            )


def _encoder_bins(n_bins: int, n_layers: int) -> list[int]:
    """Bins after each stride-2 encoder layer (padding keeps ``(n + 1) // 2``)."""
    bins = [n_bins]
    for _ in range(n_layers):
        bins.append((bins[-1] + 1) // 2)
    return bins


def _activation(kind: str, channels: int) -> nn.Module:
    if kind == "prelu":
        return nn.PReLU(channels)
    return nn.LeakyReLU(0.1)


class CausalConv(nn.Module):
    """A convolution causal in time and strided in frequency, with explicit state.

    ``forward(x, state)`` with ``x [B, C, T, F]`` and ``state [B, C, kernel_time - 1, F]``
    (the previous input frames) returns the output and the new state.
    """

    def __init__(
        self, c_in: int, c_out: int, kernel_time: int, kernel_freq: int, activation: str
    ) -> None:
        super().__init__()
        self.kernel_time = kernel_time
        self.conv = nn.Conv2d(
            c_in, c_out, (kernel_time, kernel_freq), stride=(1, 2), padding=(0, kernel_freq // 2)
        )
        self.act = _activation(activation, c_out)

    def forward(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Convolve ``x`` preceded by ``state``; return the output and the new state."""
        if self.kernel_time == 1:
            return self.act(self.conv(x)), state
        full = torch.cat([state, x], dim=2)
        new_state = full[:, :, 1 - self.kernel_time :]
        return self.act(self.conv(full)), new_state


class UpConv(nn.Module):
    """A transposed convolution in frequency (stride 2), one frame at a time."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_freq: int,
        out_bins: int,
        in_bins: int,
        activation: bool = True,
    ) -> None:
        super().__init__()
        pad = kernel_freq // 2
        natural = (in_bins - 1) * 2 - 2 * pad + kernel_freq
        self.deconv = nn.ConvTranspose2d(
            c_in,
            c_out,
            (1, kernel_freq),
            stride=(1, 2),
            padding=(0, pad),
            output_padding=(0, out_bins - natural),
        )
        self.act = _activation(activation, c_out) if activation else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upsample ``x [B, C, T, F]`` in frequency."""
        return self.act(self.deconv(x))


class Refine(nn.Module):
    """A full-resolution head: three convolutions in frequency over the current frame.

    The U-Net halves the frequency resolution in its first layer, so its output cannot
    follow detail finer than two bins (100 Hz at 16 kHz): the harmonics of a voice
    (spaced 2-5 bins) and the noise between them. This head sees the frame's noisy
    features at full resolution next to the U-Net's output (pre-activation) and adds a
    correction to it; its last convolution starts at zero, so a model grown with it
    (:func:`grow_refine`) computes exactly what it computed before.
    """

    def __init__(self, channels: int, kernel_freq: int = 5) -> None:
        super().__init__()
        pad = (0, kernel_freq // 2)
        self.conv1 = nn.Conv2d(2, channels, (1, kernel_freq), padding=pad)
        self.conv2 = nn.Conv2d(channels, channels, (1, kernel_freq), padding=pad)
        self.conv3 = nn.Conv2d(channels, 1, (1, kernel_freq), padding=pad)
        self.act = nn.LeakyReLU(0.1)
        nn.init.zeros_(self.conv3.weight)
        nn.init.zeros_(self.conv3.bias)

    def forward(self, features: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Correct ``out [B, 1, T, F]`` from ``features [B, 1, T, F]``."""
        x = self.act(self.conv1(torch.cat([features, out], dim=1)))
        x = self.act(self.conv2(x))
        return out + self.conv3(x)


class SeprocNet(nn.Module):
    """The causal U-Net denoiser; see the module docstring for the layout."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        channels = config.channels
        bins = _encoder_bins(config.n_bins, len(channels))
        self.bins = bins
        self.encoder = nn.ModuleList()
        c_in = 1
        for i, c_out in enumerate(channels):
            kf = config.first_kernel_freq if i == 0 else config.kernel_freq
            self.encoder.append(CausalConv(c_in, c_out, config.kernel_time, kf, config.activation))
            c_in = c_out
        flat = channels[-1] * bins[-1]
        self.squeeze = nn.Linear(flat, config.gru_hidden)
        self.gru = nn.GRU(config.gru_hidden, config.gru_hidden, batch_first=True)
        self.expand = nn.Linear(config.gru_hidden, flat)
        self.decoder = nn.ModuleList()
        for i in reversed(range(len(channels))):
            c_out = 1 if i == 0 else channels[i - 1]
            kf = config.first_kernel_freq if i == 0 else config.kernel_freq
            self.decoder.append(
                UpConv(
                    2 * channels[i], c_out, kf, bins[i], bins[i + 1], config.activation if i else ""
                )
            )
        self.refine = Refine(config.refine_channels) if config.refine_channels else None
        self.deep_filter = None
        if config.deep_filter_order:
            # beside dec1, on its input: two numbers (real, imaginary) per past frame and
            # bin, zero at the start, so a grown model's output is the mask model's
            self.deep_filter = UpConv(
                2 * channels[0],
                2 * config.deep_filter_order,
                config.first_kernel_freq,
                bins[0],
                bins[1],
                "",
            )
            nn.init.zeros_(self.deep_filter.deconv.weight)
            nn.init.zeros_(self.deep_filter.deconv.bias)
        mean = torch.tensor(config.feature_mean_db or [0.0] * config.n_bins, dtype=torch.float32)
        std = torch.tensor(config.feature_std_db or [1.0] * config.n_bins, dtype=torch.float32)
        self.register_buffer("feature_mean_db", mean, persistent=True)
        self.register_buffer("feature_std_db", std, persistent=True)
        self.export_batch_one = False

    @property
    def gain_floor(self) -> float:
        """The mask's lowest gain, as an amplitude factor (from ``config.gain_floor_db``)."""
        return float(10.0 ** (self.config.gain_floor_db / 20.0))

    # -- streaming state ------------------------------------------------------------------
    def state_shapes(self, batch: int = 1) -> dict[str, tuple[int, ...]]:
        """Shapes of the streaming state tensors, keyed by name (ordered)."""
        shapes: dict[str, tuple[int, ...]] = {}
        c_in = 1
        for i, layer in enumerate(self.encoder):
            if layer.kernel_time > 1:
                shapes[f"conv{i + 1}"] = (batch, c_in, layer.kernel_time - 1, self.bins[i])
            c_in = self.config.channels[i]
        shapes["gru"] = (1, batch, self.config.gru_hidden)
        return shapes

    def initial_state(
        self, batch: int = 1, device: torch.device | None = None
    ) -> list[torch.Tensor]:
        """Zero state for ``batch`` new streams, in :meth:`state_shapes` order."""
        return [torch.zeros(s, device=device) for s in self.state_shapes(batch).values()]

    # -- forward ----------------------------------------------------------------------------
    def forward(self, features: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Map normalised features ``[B, T, F]`` to the output ``[B, T, F]``.

        ``states`` are the tensors of :meth:`state_shapes`, in order (zeros at the start
        of a stream; omitted means zeros). Returns the output followed by the new states.
        """
        batch, frames, _ = features.shape
        if not states:
            states = tuple(self.initial_state(batch, features.device))
        conv_states = list(states[:-1])
        hidden = states[-1]
        x = features.unsqueeze(1)
        skips = []
        new_states = []
        k = 0
        for layer in self.encoder:
            if layer.kernel_time > 1:
                x, s = layer(x, conv_states[k])
                new_states.append(s)
                k += 1
            else:
                x, _ = layer(x, x)
            skips.append(x)
        c, f = self.config.channels[-1], self.bins[-1]
        # batch 1 (export): constant reshape targets, so the graph has no shape arithmetic
        b, t = (1, -1) if self.export_batch_one else (batch, frames)
        flat = x.permute(0, 2, 1, 3).reshape(b, t, c * f)
        z = torch.relu(self.squeeze(flat))
        z, hidden_out = self.gru(z, hidden)
        y = self.expand(z) + flat
        x = y.reshape(b, t, c, f).permute(0, 2, 1, 3)
        for layer, skip in zip(self.decoder, reversed(skips), strict=True):
            last_input = torch.cat([x, skip], dim=1)
            x = layer(last_input)
        if self.refine is not None:
            x = self.refine(features.unsqueeze(1), x)
        out = x.squeeze(1)
        if self.config.formulation == "mask":
            out = self.gain_floor + (1.0 - self.gain_floor) * torch.sigmoid(out)
        else:
            out = out * self.feature_std_db + self.feature_mean_db
        if self.deep_filter is not None:
            # [B, 2 order, T, bins] -> [B, T, 2 order bins] after the gains' n_bins columns
            coef = self.deep_filter(last_input)[..., : self.config.deep_filter_bins]
            out = torch.cat([out, coef.permute(0, 2, 1, 3).reshape(b, t, -1)], dim=-1)
        return (out, *new_states, hidden_out)


def count_parameters(model: nn.Module) -> int:
    """Count the trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_flops_per_frame(model: SeprocNet) -> int:
    """Multiply-adds x 2 per frame of the convolutions, linears and GRU (biases ignored)."""
    cfg = model.config
    flops = 0
    for i, layer in enumerate(model.encoder):
        conv = layer.conv
        kt, kf = conv.kernel_size
        flops += 2 * conv.in_channels * conv.out_channels * kt * kf * model.bins[i + 1]
    flat = cfg.channels[-1] * model.bins[-1]
    h = cfg.gru_hidden
    flops += 2 * flat * h * 2  # squeeze + expand
    flops += 2 * 3 * (h * h + h * h)  # GRU input and recurrent matrices
    for j, layer in enumerate(model.decoder):
        deconv = layer.deconv
        i = len(cfg.channels) - 1 - j
        # each input position scatters into kernel_freq outputs
        flops += (
            2 * deconv.in_channels * deconv.out_channels * deconv.kernel_size[1] * model.bins[i + 1]
        )
    if model.refine is not None:
        for conv in (model.refine.conv1, model.refine.conv2, model.refine.conv3):
            flops += 2 * conv.in_channels * conv.out_channels * conv.kernel_size[1] * cfg.n_bins
    if model.deep_filter is not None:
        head = model.deep_filter.deconv
        flops += 2 * head.in_channels * head.out_channels * head.kernel_size[1] * model.bins[1]
        flops += 8 * cfg.deep_filter_order * cfg.deep_filter_bins  # complex multiply-adds
    return flops


def grow_deep_filter(model: SeprocNet, order: int, bins: int) -> SeprocNet:
    """Return ``model`` with a deep-filter head added (the same output: its weights are zero).

    See :class:`ModelConfig` (``deep_filter_order``, ``deep_filter_bins``) and
    ``training.train.apply_deep_filter``.
    """
    if model.deep_filter is not None:
        raise ValueError("the model already has a deep filter")
    config = ModelConfig(
        **{**model.config.__dict__, "deep_filter_order": order, "deep_filter_bins": bins}
    )
    with torch.random.fork_rng(devices=[]):  # the caller's random stream stays as it was
        grown = SeprocNet(config)
    missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(not key.startswith("deep_filter.") for key in missing):
        raise ValueError(f"cannot grow: missing {missing}, unexpected {unexpected}")
    return grown.to(next(model.parameters()).device)


def grow_refine(model: SeprocNet, channels: int) -> SeprocNet:
    """Return ``model`` with a :class:`Refine` head of ``channels`` added (same output).

    The new head's last convolution is zero, so the grown model's output equals
    ``model``'s until training moves it.
    """
    if model.refine is not None:
        raise ValueError("the model already has a refine head")
    if channels < 1:
        raise ValueError(f"channels={channels} must be >= 1")
    config = ModelConfig(**{**model.config.__dict__, "refine_channels": channels})
    grown = SeprocNet(config)
    missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(not key.startswith("refine.") for key in missing):
        raise ValueError(f"cannot grow: missing {missing}, unexpected {unexpected}")
    return grown.to(next(model.parameters()).device)


def grow_gru(model: SeprocNet, hidden: int, seed: int = 0) -> SeprocNet:
    """Return ``model`` with a wider GRU bottleneck of ``hidden`` units (same output).

    The old units keep their weights; the new units get PyTorch's default random
    weights into themselves, and every path from them to the old units and to the
    expand layer is zero, so the grown model's output equals ``model``'s until training
    moves it (function-preserving widening, as in Net2Net). The new units' own
    activations are not zero, so those zero paths have gradients and learn.

    Parameters
    ----------
    model : SeprocNet
        The model to grow (left unchanged).
    hidden : int
        The new GRU width, larger than ``model.config.gru_hidden``.
    seed : int
        Seeds the new units' random weights.

    Returns
    -------
    SeprocNet
    """
    old = model.config.gru_hidden
    if hidden <= old:
        raise ValueError(f"hidden={hidden} must be larger than the model's gru_hidden={old}")
    config = ModelConfig(**{**model.config.__dict__, "gru_hidden": hidden})
    with torch.random.fork_rng(devices=[]):  # the caller's random stream stays as it was
        torch.manual_seed(seed)
        grown = SeprocNet(config).to(next(model.parameters()).device)
    source = model.state_dict()
    target = grown.state_dict()
    with torch.no_grad():
        for key, value in source.items():
            if not key.startswith(("squeeze.", "gru.", "expand.")):
                target[key].copy_(value)
        # squeeze: the old outputs as they were, the new ones random (into new units only)
        target["squeeze.weight"][:old].copy_(source["squeeze.weight"])
        target["squeeze.bias"][:old].copy_(source["squeeze.bias"])
        # GRU: three gates (r, z, n) stacked; old rows see only old inputs and units
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            new, was = target[f"gru.{name}"], source[f"gru.{name}"]
            for gate in range(3):
                rows_new = slice(gate * hidden, gate * hidden + old)
                rows_was = slice(gate * old, (gate + 1) * old)
                if new.ndim == 1:
                    new[rows_new].copy_(was[rows_was])
                else:
                    new[rows_new].zero_()
                    new[rows_new, :old].copy_(was[rows_was])
        # expand: the new units' columns zero
        target["expand.weight"].zero_()
        target["expand.weight"][:, :old].copy_(source["expand.weight"])
        target["expand.bias"].copy_(source["expand.bias"])
    grown.load_state_dict(target)
    return grown
