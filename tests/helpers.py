"""Shared test helpers: `assert_close` and the tolerances of plugins/<op>/spec.yaml (docs/conventions.md §3.10-11)."""
from __future__ import annotations

import functools

import numpy as np
import yaml

from rrwkv_trt.core.paths import REPO_ROOT as REPO


def _as_f64(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def assert_close(name: str, ref, out, atol: float, rtol: float) -> None:
    """Fail unless |out - ref| <= atol + rtol * |ref| everywhere (torch.allclose semantics, in float64).

    ref, out: torch tensors or numpy arrays of the same shape. Any NaN (in either) fails, and so does
    an infinity the other side does not match. The message gives the count of bad elements, the max
    abs error with its index and values, and the relative RMS error ||out - ref|| / ||ref||.
    """
    r, o = _as_f64(ref), _as_f64(out)
    assert r.shape == o.shape, f"{name}: shape {o.shape} != reference shape {r.shape}"
    n_nan_o, n_nan_r = int(np.isnan(o).sum()), int(np.isnan(r).sum())
    if n_nan_o or n_nan_r:
        raise AssertionError(f"{name}: NaN in output ({n_nan_o}/{o.size}) or reference ({n_nan_r}/{r.size})")
    with np.errstate(invalid="ignore"):
        diff = np.where(r == o, 0.0, np.abs(o - r))  # r == o covers matching infinities
    diff = np.where(np.isnan(diff), np.inf, diff)
    bad = diff > atol + rtol * np.abs(np.where(np.isfinite(r), r, 0.0))
    if not bad.any():
        return
    i = np.unravel_index(int(np.argmax(diff)), diff.shape)
    finite = np.isfinite(diff)
    rms = np.sqrt(np.mean(diff[finite] ** 2)) if finite.any() else np.inf
    ref_rms = np.sqrt(np.mean(np.where(np.isfinite(r), r, 0.0) ** 2))
    raise AssertionError(
        f"{name}: {int(bad.sum())}/{bad.size} elements outside atol={atol:g} rtol={rtol:g}; "
        f"max abs err {diff[i]:.3e} at {tuple(int(j) for j in i)} (ref {r[i]:.6g}, out {o[i]:.6g}); "
        f"rel RMS err {rms / max(ref_rms, 1e-300):.3e}")


@functools.cache
def op_spec(op: str) -> dict:
    """plugins/<op>/spec.yaml as a dict (op is the plugin folder name, e.g. "wkv4")."""
    with open(REPO / "plugins" / op / "spec.yaml") as f:
        return yaml.safe_load(f)


def tolerance(op: str, key: str, output: str) -> tuple[float, float]:
    """(atol, rtol) of `output` ("y" or "state") for tolerance entry `key` (e.g. "function_body_fp32")."""
    tols = op_spec(op)["tolerances"]
    if key not in tols:
        raise KeyError(f"plugins/{op}/spec.yaml has no tolerance entry {key!r}; entries: {sorted(tols)}")
    t = tols[key][output]
    return float(t["atol"]), float(t["rtol"])


def assert_op_outputs_close(op: str, key: str, ref, out, names=("y", "aa_out", "bb_out", "pp_out")) -> None:
    """assert_close on (y, aa, bb, pp)-style outputs with the spec tolerances of `key`."""
    assert len(ref) == len(out) == len(names), f"{op}/{key}: {len(out)} outputs, {len(ref)} references"
    for name, r, o in zip(names, ref, out):
        atol, rtol = tolerance(op, key, "y" if name == "y" else "state")
        assert_close(f"{op}/{key}/{name}", r, o, atol, rtol)
