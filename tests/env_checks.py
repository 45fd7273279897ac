"""Checks every environment must pass, shared by the environments' test files."""

import torch


def check_steps_invert(env, states, reachable=None):
    """For every legal move: ``step`` then ``backward_step`` returns the state, the
    matching backward/forward actions are legal, and the exit leaves states unchanged.
    ``reachable`` ``[N]`` bool marks states whose parents must be able to move (default all).
    Returns the (parent, action, child) triples checked, for environment-specific checks."""
    reachable = torch.ones(len(states), dtype=torch.bool) if reachable is None else reachable
    fmask, bmask = env.forward_mask(states), env.backward_mask(states)
    triples = []
    for a in range(env.n_actions - 1):
        ok = fmask[:, a]
        s, acts = states[ok], torch.full((int(ok.sum()),), a)
        child = env.step(s, acts)
        back = env.backward_action(s, acts)
        assert env.backward_mask(child)[torch.arange(len(child)), back].all()
        assert torch.equal(env.backward_step(child, back), s)
        triples.append((s, a, child))
    for b in range(env.n_backward_actions):
        ok = bmask[:, b]
        s, acts = states[ok], torch.full((int(ok.sum()),), b)
        parent = env.backward_step(s, acts)
        fwd = env.forward_action(s, acts)
        movable = reachable[ok]
        assert env.forward_mask(parent[movable])[torch.arange(int(movable.sum())), fwd[movable]].all()
        assert torch.equal(env.step(parent, fwd), s)
    assert torch.equal(env.step(states, torch.full((len(states),), env.exit_action)), states)
    return triples
