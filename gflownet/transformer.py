"""Transformer trunks over partial sequences (``--set arch=transformer`` or
``arch=causal_transformer``), for environments that featurize a state as one
one-hot row per position, the pad symbol last (``environments.sequences``):
features ``[N, max_length * token_features]``.

A summary token (learned, plus a linear map of ``cond`` when the policy is
conditional) is put before the sequence; learned position embeddings; pre-norm
encoder layers without dropout. Pad positions are masked out of attention.
- bidirectional ("transformer"): the output is the summary token's state;
- causal ("causal_transformer"): each position sees only the ones before it,
  and the output is the state of the last real token (the summary token for
  the empty sequence): the autoregressive reading, for append-only spaces.
Output ``[N, hidden]``. Heads: 4 when ``hidden`` is a multiple of 4, else 1.
"""

from __future__ import annotations

import torch
from torch import nn

from gflownet.errors import ConfigError


class SequenceTransformer(nn.Module):
    """``[N, length * token_features]`` one-hot (+ cond ``[N, C]``) -> ``[N, hidden]``."""

    def __init__(
        self, length: int, token_features: int, hidden: int, layers: int, cond_dim: int = 0, causal: bool = False
    ):
        super().__init__()
        self.length, self.token_features, self.causal = length, token_features, causal
        self.embed = nn.Linear(token_features, hidden, bias=False)  # one-hot @ W: an embedding lookup
        self.position = nn.Parameter(torch.randn(length + 1, hidden) * 0.02)
        self.summary = nn.Parameter(torch.zeros(hidden))
        self.cond = nn.Linear(cond_dim, hidden) if cond_dim else None
        layer = nn.TransformerEncoderLayer(
            hidden,
            4 if hidden % 4 == 0 else 1,
            dim_feedforward=2 * hidden,
            dropout=0.0,
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden)
        if causal:
            self.register_buffer(
                "causal_mask", nn.Transformer.generate_square_subsequent_mask(length + 1) < 0, persistent=False
            )

    def forward(self, features: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        N = len(features)
        one_hot = features.view(N, self.length, self.token_features)
        pad = one_hot[..., -1] > 0.5  # [N, L]
        first = self.summary.expand(N, 1, -1)
        if self.cond is not None:
            first = first + self.cond(cond)[:, None]
        x = torch.cat([first, self.embed(one_hot)], 1) + self.position  # [N, L + 1, hidden]
        key_pad = torch.cat([torch.zeros_like(pad[:, :1]), pad], 1)
        if not self.causal:
            return self.norm(self.encoder(x, src_key_padding_mask=key_pad)[:, 0])
        # causal: pads follow the real tokens, so the mask alone keeps them out of every real position
        h = self.encoder(x, mask=self.causal_mask, is_causal=True)
        return self.norm(h[torch.arange(N, device=h.device), (~pad).sum(-1)])


def _builder(causal: bool):
    def build(env, hidden: int, layers: int, cond_dim: int) -> nn.Module:
        if not (hasattr(env, "max_length") and hasattr(env, "token_features")):
            raise ConfigError(
                f"the {'causal_' if causal else ''}transformer trunk needs a sequence environment "
                f"(one one-hot row per position); {type(env).__name__} is not one"
            )
        return SequenceTransformer(env.max_length, env.token_features, hidden, layers, cond_dim, causal)

    return build


transformer_trunk = _builder(causal=False)
causal_transformer_trunk = _builder(causal=True)
