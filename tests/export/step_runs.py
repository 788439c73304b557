"""A model's recurrent step form run over a whole id sequence: what the export tests compare with its sequence
(prefill) form."""
from __future__ import annotations

import torch


def run_steps(model, ids: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
    """model.step token by token over ids [B, T]; returns the stacked logits [B, T, V] and the final state."""
    logits = []
    for t in range(ids.shape[1]):
        out, state = model.step(ids[:, t], state)
        logits.append(out)
    return torch.stack(logits, dim=1), state
