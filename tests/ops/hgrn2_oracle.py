"""An independent float64 numpy HGRN2 recurrence, written from docs/families/hgrn2.md §3.1/§3.3/§3.4 and sharing
no code with export/ops/gated_outer_scan.py: the forget gate in linear space (lam = lb + (1 - lb) sigmoid(f), as
the official HGRN2 code forms it), the paper's update h_t = diag(lam_t) h_{t-1} + (1 - lam_t) (x) i_t per head, and
y_t = scale * o_t . h_t. Tests compare the op's reference against it (spec entry oracle_fp64)."""
from __future__ import annotations

import numpy as np


def _as_f64(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x) without overflow for either sign of x."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def forget_gate(f, lb) -> tuple[np.ndarray, np.ndarray]:
    """(lam, 1 - lam) for forget logits f [..., H, K] and lower bound lb [H, K], float64.

    lam = lb + (1 - lb) sigmoid(f); 1 - lam = (1 - lb) sigmoid(-f), written so that it keeps its relative
    accuracy where lam is close to 1."""
    f, lb = _as_f64(f), _as_f64(lb)
    return lb + (1.0 - lb) * sigmoid(f), (1.0 - lb) * sigmoid(-f)


def log_forget_gate(f, lb) -> np.ndarray:
    """g = log(lam), the log forget gate fla's kernels take as gk."""
    lam, _ = forget_gate(f, lb)
    return np.log(lam)


def hgrn2_recurrence(q, f, lb, v, S0, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The per-token recurrence over T tokens, float64.

    Args: q, f [B, T, H, K]; lb [H, K]; v [B, T, H, V]; S0 [B, H, K, V]; torch tensors or numpy arrays.
    Returns: y [B, T, H, V] and h_T [B, H, K, V].
    """
    q, v, h = _as_f64(q), _as_f64(v), _as_f64(S0).copy()
    lam, one_m_lam = forget_gate(f, lb)
    B, T, H, K = q.shape
    y = np.zeros((B, T, H, v.shape[-1]))
    for t in range(T):
        for b in range(B):
            for i in range(H):
                h[b, i] = lam[b, t, i][:, None] * h[b, i] + np.outer(one_m_lam[b, t, i], v[b, t, i])
                y[b, t, i] = scale * (q[b, t, i] @ h[b, i])
    return y, h
