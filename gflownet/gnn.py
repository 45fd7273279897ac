"""Graph trunk (torch-geometric GINE message passing) for graph environments.

A graph environment gives every state ``max_nodes`` node slots (token 0: empty) and
its edges, and says how its flat action space is laid out over the graph:
``forward_layout`` / ``backward_layout`` are tuples of segments

    ("node", k)   k logits per node slot   -> [B, max_nodes * k]   (slot-major)
    ("pair", k)   k logits per slot pair   -> [B, max_nodes**2 * k] (i-major, then j)
    ("graph", k)  k logits per graph       -> [B, k]

concatenated in that order. ``featurize`` returns one ``torch_geometric.data.Batch``
for the whole batch of states, built arithmetically (``graph_batch``): no Python
loop over states. Conditioning (temperature, outcome) enters as a graph-level input
added to every node and to the pooled graph vector.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch_geometric.data import Batch
from torch_geometric.nn import GINEConv

from gflownet.errors import ConfigError


def graph_batch(node_tokens: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, edge_tokens: torch.Tensor) -> Batch:
    """A Batch of B graphs with N node slots each.

    Args:
        node_tokens: long ``[B, N]`` (0: empty slot).
        src, dst: long ``[E]`` global node ids (graph b's slot i is b * N + i), one
            entry per directed edge.
        edge_tokens: long ``[E]``.
    """
    B, N = node_tokens.shape
    device = node_tokens.device
    return Batch(
        x=node_tokens.reshape(-1),
        edge_index=torch.stack([src, dst]),
        edge_attr=edge_tokens,
        batch=torch.arange(B, device=device).repeat_interleave(N),
        ptr=torch.arange(B + 1, device=device) * N,
        max_nodes=N,
    )


def tree_batch(node_tokens: torch.Tensor, parent: torch.Tensor, edge_tokens: torch.Tensor, up: int = 0) -> Batch:
    """A Batch of trees: slot i hangs on slot ``parent[b, i]`` (-1: none) by an edge of
    token ``edge_tokens[b, i]``; each edge goes both ways, the child-to-parent copy with
    token + ``up`` (``up > 0`` lets messages tell a parent from its child). All ``[B, N]`` long."""
    B, N = node_tokens.shape
    b, child = (parent >= 0).nonzero(as_tuple=True)
    base = b * N
    src, dst = base + parent[b, child], base + child
    tokens = edge_tokens[b, child]
    return graph_batch(node_tokens, torch.cat([src, dst]), torch.cat([dst, src]), torch.cat([tokens, tokens + up]))


@dataclass
class GraphHidden:
    """Trunk output: node vectors ``[B, N, H]`` and graph vectors ``[B, H]``."""

    nodes: torch.Tensor
    graph: torch.Tensor


class GNNTrunk(nn.Module):
    """Token embeddings, ``layers`` residual GINE convolutions, masked mean pooling."""

    def __init__(self, env, hidden: int, layers: int, cond_dim: int):
        super().__init__()
        self.env = env
        self.node_embedding = nn.Embedding(env.node_vocab, hidden)
        self.edge_embedding = nn.Embedding(env.edge_vocab, hidden)
        self.convs = nn.ModuleList(
            GINEConv(nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden)), edge_dim=hidden)
            for _ in range(layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(layers))
        self.cond = nn.Linear(cond_dim, hidden) if cond_dim else None
        self.readout = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())

    def forward(self, batch: Batch, cond: torch.Tensor | None = None) -> GraphHidden:
        B, N = batch.num_graphs, batch.max_nodes
        present = (batch.x > 0).float().view(B, N, 1)
        h = self.node_embedding(batch.x)
        if self.cond is not None:
            h = h + self.cond(cond).repeat_interleave(N, 0)
        edge = self.edge_embedding(batch.edge_attr)
        for conv, norm in zip(self.convs, self.norms):
            h = h + conv(norm(h), batch.edge_index, edge).relu()
        nodes = h.view(B, N, -1)
        graph = (nodes * present).sum(1) / present.sum(1).clamp_min(1)
        if self.cond is not None:
            graph = graph + self.cond(cond)
        return GraphHidden(nodes, self.readout(graph))

    def make_head(self, learned_backward: bool, flow: bool) -> nn.Module:
        layout = tuple(self.env.forward_layout) + (tuple(self.env.backward_layout) if learned_backward else ())
        return GraphHead(layout + ((("graph", 1),) if flow else ()), self.node_embedding.embedding_dim)


class GraphHead(nn.Module):
    """Logits of a layout of node / pair / graph segments, concatenated: ``[B, n_out]``."""

    def __init__(self, layout, hidden: int):
        super().__init__()
        for kind, _ in layout:
            if kind not in ("node", "pair", "graph"):
                raise ConfigError(f"unknown action layout segment {kind!r} (use node, pair or graph)")
        self.kinds = [kind for kind, _ in layout]
        self.linears = nn.ModuleList(nn.Linear(hidden, k) for _, k in layout)

    def forward(self, hidden: GraphHidden) -> torch.Tensor:
        B = hidden.graph.shape[0]
        parts = []
        pair = None
        for kind, linear in zip(self.kinds, self.linears):
            if kind == "node":
                parts.append(linear(hidden.nodes).reshape(B, -1))
            elif kind == "pair":
                if pair is None:
                    pair = hidden.nodes[:, :, None] + hidden.nodes[:, None, :]  # symmetric in (i, j)
                parts.append(linear(pair).reshape(B, -1))
            else:
                parts.append(linear(hidden.graph))
        return torch.cat(parts, -1)


def build_gnn_trunk(env, hidden: int, layers: int, cond_dim: int) -> nn.Module:
    for name in ("node_vocab", "edge_vocab", "forward_layout", "backward_layout"):
        if not hasattr(env, name):
            raise ConfigError(f"the gnn trunk needs a graph environment; {type(env).__name__} has no {name}")
    return GNNTrunk(env, hidden, layers, cond_dim)
