"""HGRN2 (docs/families/hgrn2.md §3): fla Hugging Face folders (config.json with model_type "hgrn2", model.safetensors
or pytorch_model.bin, key names as flash-linear-attention 0.6.0 writes them) in, Hgrn2Model out."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from rrwkv_trt.core.errors import ConfigError, UserError
from rrwkv_trt.core.families.hgrn2 import EPS_UNIT, QUERY_SCALE_FLA, QUERY_SCALE_ONE, Hgrn2Config
from rrwkv_trt.core.names import CONFIG_FILE

from ..models.hgrn2 import Hgrn2Model, layer_lower_bounds
from . import register_family
from .family import CheckpointAdapter, Family, count_layers

DETECT_KEY = "model.layers.0.attn.f_proj.weight"
LAYER_PREFIX = "model.layers."
EMBEDDINGS, LOWER_BOUNDS, HEAD = "model.embeddings.weight", "model.lower_bounds", "lm_head.weight"
MLP_ROUND = 256  # fla GatedMLP: intermediate_size = 256 * ceil(int(D * hidden_ratio * 2/3) / 256) when not given
QUERY_SCALE_NAMES = {"fla": QUERY_SCALE_FLA, "one": QUERY_SCALE_ONE}  # config.json "query_scale" (rrwkv's own key)
SWISH = ("swish", "silu")
# fla 0.6.0 HGRN2Config's defaults, for fields a config.json leaves out.
FLA_DEFAULTS = dict(hidden_size=2048, num_hidden_layers=24, num_heads=None, expand_ratio=128, vocab_size=32000,
                    intermediate_size=None, hidden_ratio=4, norm_eps=1e-6, use_lower_bound=True,
                    use_short_conv=False, attn=None, hidden_act="swish", tie_word_embeddings=False,
                    attnres_block_size=None, elementwise_affine=True)


class FlaJson:
    """Typed reads of an fla config.json (`meta`), each error naming the file and the key."""

    def __init__(self, meta: dict, file: Path):
        self.meta, self.path = meta, file.parent / CONFIG_FILE

    def get(self, key: str):
        return self.meta.get(key, FLA_DEFAULTS.get(key))

    def error(self, key: str, message: str) -> UserError:
        return UserError(f"{self.path}: {key!r} {message}")

    def integer(self, key: str, optional: bool = False) -> int | None:
        value = self.get(key)
        if optional and value is None:
            return None
        if type(value) is not int or value < 1:
            raise self.error(key, f"must be a positive integer{' or null' if optional else ''}, got {value!r}")
        return value

    def flag(self, key: str) -> bool:
        value = self.get(key)
        if type(value) is not bool:
            raise self.error(key, f"must be true or false, got {value!r}")
        return value

    def number(self, key: str) -> float:
        value = self.get(key)
        if type(value) not in (int, float) or not 0 < value < float("inf"):
            raise self.error(key, f"must be a positive number, got {value!r}")
        return float(value)

    def require(self, key: str, supported: tuple, what: str) -> None:
        """UserError unless the value of `key` is one of `supported`; `what` says what rrwkv-trt supports."""
        value = self.get(key)
        if not any(value is s or (type(value) is type(s) and value == s) for s in supported):
            raise self.error(key, f"is {value!r}; rrwkv-trt supports {what}")


class FlaHgrn2Checkpoint(CheckpointAdapter):
    """fla's HGRN2ForCausalLM state dict (§3.2) with its config.json; the sizes come from config.json, as fla builds
    the model from it, and are cross-checked against the tensors."""

    transforms = ("model.lower_bounds [L, D] -> layers.{i}.attn.lower_bound [H, K] = (cumsum(softmax(P, 0), 0) - "
                  "softmax(P, 0)[0])[i] in float32 (zeros without use_lower_bound)",
                  "lm_head.weight = model.embeddings.weight when tie_word_embeddings", "cast to float32")

    def detect(self, raw: dict[str, Tensor], file: Path) -> bool:
        return DETECT_KEY in raw

    def config(self, raw: dict[str, Tensor], meta: dict, file: Path) -> Hgrn2Config:
        if not meta:
            raise UserError(f"{file}: an fla HGRN2 checkpoint needs its {CONFIG_FILE} beside it (expand_ratio and "
                            "the other options are not in the tensors)")
        js = FlaJson(meta, file)
        refuse_unsupported(js)
        heads, k_dim = head_sizes(js)
        hidden = js.integer("hidden_size")
        sizes = dict(vocab_size=js.integer("vocab_size"), n_layer=js.integer("num_hidden_layers"),
                     hidden_size=hidden, num_heads=heads, head_k_dim=k_dim, head_v_dim=hidden // heads,
                     intermediate_size=intermediate_size(js, hidden), query_scale=query_scale(js),
                     use_lower_bound=int(js.flag("use_lower_bound")), norm_eps_pico=norm_eps_pico(js),
                     tie_word_embeddings=int(js.flag("tie_word_embeddings")))
        check_against_tensors(raw, sizes, js, file)
        try:
            return Hgrn2Config(**sizes)
        except ConfigError as err:
            raise UserError(f"{js.path}: {err}") from None

    def expected_shapes(self, cfg: Hgrn2Config) -> dict[str, tuple[int, ...]]:
        D, F, HK = cfg.hidden_size, cfg.intermediate_size, cfg.num_heads * cfg.head_k_dim
        HV = cfg.num_heads * cfg.head_v_dim  # = D (Hgrn2Config)
        shapes = {EMBEDDINGS: (cfg.vocab_size, D), "model.norm.weight": (D,)}
        if cfg.use_lower_bound:
            shapes[LOWER_BOUNDS] = (cfg.n_layer, D)
        if not cfg.tie_word_embeddings:
            shapes[HEAD] = (cfg.vocab_size, D)
        for i in range(cfg.n_layer):
            p = f"{LAYER_PREFIX}{i}."
            shapes |= {p + "attn_norm.weight": (D,), p + "attn.q_proj.weight": (HK, D),
                       p + "attn.f_proj.weight": (HK, D), p + "attn.i_proj.weight": (HV, D),
                       p + "attn.g_norm.weight": (HV,), p + "attn.o_proj.weight": (D, HV),
                       p + "mlp_norm.weight": (D,), p + "mlp.gate_proj.weight": (F, D),
                       p + "mlp.up_proj.weight": (F, D), p + "mlp.down_proj.weight": (D, F)}
        return shapes

    def convert(self, raw: dict[str, Tensor], cfg: Hgrn2Config) -> dict[str, Tensor]:
        """fla keys -> Hgrn2Model's: "model." dropped, RMSNorm `weight` -> `gain`, per-layer lower bounds, the head."""
        out = {}
        for key, t in raw.items():
            if key == LOWER_BOUNDS:
                continue
            name = key.removeprefix("model.")
            if name.endswith("norm.weight"):  # attn_norm, mlp_norm, g_norm and the final norm
                name = name.removesuffix("weight") + "gain"
            out[name] = t.float().contiguous()
        shape = (cfg.n_layer, cfg.num_heads * cfg.head_k_dim)  # = [L, D] with lower bounds (Hgrn2Config)
        lb = layer_lower_bounds(raw[LOWER_BOUNDS]) if cfg.use_lower_bound else torch.zeros(shape)
        for i in range(cfg.n_layer):
            out[f"layers.{i}.attn.lower_bound"] = lb[i].reshape(cfg.num_heads, cfg.head_k_dim).contiguous()
        if cfg.tie_word_embeddings:
            out["lm_head.weight"] = out["embeddings.weight"].clone()
        return out


def refuse_unsupported(js: FlaJson) -> None:
    """The fla options whose layers rrwkv-trt does not implement, each refused by name."""
    js.require("model_type", ("hgrn2", None), "fla HGRN2 checkpoints (model_type \"hgrn2\")")
    js.require("use_short_conv", (False,), "use_short_conv false only (no short-convolution state)")
    js.require("attn", (None,), "attn null only (no hybrid softmax-attention layers)")
    js.require("hidden_act", SWISH, "hidden_act \"swish\" (or \"silu\") only: the SwiGLU MLP")
    js.require("attnres_block_size", (None,), "attnres_block_size null only (no attention residuals)")
    js.require("elementwise_affine", (True,), "elementwise_affine true only (g_norm with a weight)")


def head_sizes(js: FlaJson) -> tuple[int, int]:
    """(H, K) as fla's HGRN2Attention derives them: with expand_ratio set, K = expand_ratio and H = D // K (the layer
    recomputes num_heads from it); otherwise K = D // num_heads."""
    hidden, expand = js.integer("hidden_size"), js.integer("expand_ratio", optional=True)
    if expand is not None:
        key, heads, k_dim = "expand_ratio", hidden // expand, expand
    else:
        heads = js.integer("num_heads", optional=True)
        if heads is None:
            raise js.error("expand_ratio", "and 'num_heads' are both null; fla needs one of them")
        key, k_dim = "num_heads", hidden // heads
    if heads < 1 or k_dim < 1 or hidden % heads:
        raise js.error(key, f"gives {heads} heads of head_k_dim {k_dim} for hidden_size {hidden}; fla needs "
                       "hidden_size to be a positive multiple of the head count")
    return heads, k_dim


def intermediate_size(js: FlaJson, hidden: int) -> int:
    """config.json's intermediate_size, else fla GatedMLP's rule from hidden_ratio (None counts as 4)."""
    size = js.integer("intermediate_size", optional=True)
    if size is not None:
        return size
    ratio = js.get("hidden_ratio")
    return fla_mlp_width(hidden, 4 if ratio is None else js.number("hidden_ratio"))


def fla_mlp_width(hidden: int, hidden_ratio: float) -> int:
    """fla GatedMLP's intermediate_size when config.json gives none: 256 * ceil(int(hidden * ratio * 2/3) / 256)."""
    width = int(hidden * hidden_ratio * 2 / 3)
    return MLP_ROUND * ((width + MLP_ROUND - 1) // MLP_ROUND)


def norm_eps_pico(js: FlaJson) -> int:
    """norm_eps as an integer count of 1e-12 (config fields are ints); refused unless that is exact."""
    eps = js.number("norm_eps")
    pico = round(eps * EPS_UNIT)
    if not 1 <= pico or pico / EPS_UNIT != eps:
        raise js.error("norm_eps", f"is {eps!r}; rrwkv-trt supports an eps that is a multiple of 1e-12 "
                       "(e.g. 1e-6, 1e-5)")
    return pico


def query_scale(js: FlaJson) -> int:
    """rrwkv's own config.json key "query_scale": "fla" (K^-0.5, the default: weights trained with fla) or "one"
    (1.0: weights trained with the official HGRN2 code, docs/families/hgrn2.md §3.3)."""
    name = js.meta.get("query_scale", "fla")
    if not isinstance(name, str) or name not in QUERY_SCALE_NAMES:
        raise js.error("query_scale", f"is {name!r}; expected one of {sorted(QUERY_SCALE_NAMES)} (\"fla\": "
                       "head_k_dim^-0.5, \"one\": 1.0 for the official HGRN2 code's weights)")
    return QUERY_SCALE_NAMES[name]


def layer_count(raw: dict[str, Tensor], file: Path) -> int:
    """N, where the model.layers.{i}. keys number exactly the layers 0..N-1."""
    return count_layers(raw, LAYER_PREFIX, file)


def check_against_tensors(raw: dict[str, Tensor], sizes: dict, js: FlaJson, file: Path) -> None:
    """config.json's sizes and options against the tensors they describe, each error naming both; checked before
    the expected keys are built from them (a huge num_hidden_layers never becomes a loop)."""
    D, V = sizes["hidden_size"], sizes["vocab_size"]
    emb = tensor_shape(raw, EMBEDDINGS, file)
    if emb != (V, D):
        raise UserError(f"{js.path} says vocab_size={V}, hidden_size={D}, but {file} has {EMBEDDINGS} of shape "
                        f"{list(emb)}; expected [{V}, {D}]")
    layers = layer_count(raw, file)
    if layers != sizes["n_layer"]:
        raise UserError(f"{js.path} says num_hidden_layers={sizes['n_layer']}, but {file} has keys for {layers} "
                        f"layers ({LAYER_PREFIX}0..{layers - 1})")
    hk = sizes["num_heads"] * sizes["head_k_dim"]
    q_rows = tensor_shape(raw, DETECT_KEY, file)[0]
    if q_rows != hk:
        raise UserError(f"{js.path} gives {sizes['num_heads']} heads of head_k_dim {sizes['head_k_dim']} "
                        f"(expand_ratio), {hk} rows, but {file} has {DETECT_KEY} with {q_rows} rows")
    gate = f"{LAYER_PREFIX}0.mlp.gate_proj.weight"
    gate_rows = tensor_shape(raw, gate, file)[0]
    if gate_rows != sizes["intermediate_size"]:
        raise UserError(f"{js.path} gives intermediate_size={sizes['intermediate_size']} (intermediate_size, or "
                        f"from hidden_ratio), but {file} has {gate} with {gate_rows} rows")
    check_presence(raw, js, file, LOWER_BOUNDS, "use_lower_bound", bool(sizes["use_lower_bound"]))
    tied = bool(sizes["tie_word_embeddings"])
    check_presence(raw, js, file, HEAD, "tie_word_embeddings", tied, present=not tied)


def check_presence(raw: dict[str, Tensor], js: FlaJson, file: Path, key: str, option: str, value: bool,
                   present: bool | None = None) -> None:
    """`key` is in the checkpoint exactly when config.json's `option` (= `value`) says so (`present`, default
    `value`)."""
    present = value if present is None else present
    if (key in raw) != present:
        raise UserError(f"{js.path} says {option}={str(value).lower()}, but {file} "
                        f"{'has' if key in raw else 'has no'} {key}")


def tensor_shape(raw: dict[str, Tensor], key: str, file: Path) -> tuple[int, ...]:
    if key not in raw or raw[key].ndim != 2:
        raise UserError(f"{file}: missing or non-2-D tensor {key!r}, needed to check the sizes in {CONFIG_FILE}")
    return tuple(raw[key].shape)


FAMILY = register_family(Family(
    config_class=Hgrn2Config,
    model_class=Hgrn2Model,
    checkpoint=FlaHgrn2Checkpoint(),
    fp32_parameters=frozenset({"gain", "lower_bound"}),
    head_input_op="Mul",  # the final RMSNorm's last node, normed · gain (export/models/hgrn2.py RMSNorm)
))
