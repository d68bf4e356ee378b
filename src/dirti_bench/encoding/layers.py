"""Layer-wise image features: every block of a ViT image tower and its pre-projection pooled output.

One forward per batch (open_clip's ``forward_intermediates``) gives every block's tokens; each
layer is reduced inside the batch, so memory holds one batch of tokens and the reduced features,
never a whole feature map of the set (a ViT-L: 24 blocks x 257 tokens x 1024 per image).

Two modes per layer:

* ``token``: one pooled token per layer: the class token where the tower pools by its class
  token (open_clip ``pool_type='tok'``, every CLIP ViT), else the mean of the patch tokens
  (recorded as ``pooling``).
* ``srp``: the whole feature map (class token + patch tokens, flattened) reduced by a sparse
  random projection to the Johnson-Lindenstrauss dimension for the set's size at eps 0.1
  (``sklearn.random_projection.johnson_lindenstrauss_min_dim``), the published method's reduction
  (Conwell et al., PNAS 2025; ColinConwell/AffectExMachina ``feature_reduction.py``). The projection
  is fitted once per layer width, seeded, and applied batch by batch; a layer already narrower than
  that dimension is kept whole.

The layer after the last block is ``pooled``: the tower's own pooling (and final LayerNorm) before
the projection into the joint embedding space. Depth is ``k / n_layers`` for the k-th of the
``n_layers`` layers (blocks then pooled): 1.0 is the pooled output, so models of different depth compare.

The same forward returns the projected embedding, which is written to the embedding cache: a
layer-wise run costs one forward per image, and the plain evaluations that follow read their
embeddings from the cache. Layer features are cached per image and layer, content-keyed by the
image's sha256 under a namespace of the encoder identity and the reduction (mode, dimension,
seed), written atomically (``atomic.write_bytes``) with a checksum trailer like the embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..paths import HOME_ENV, cache_home
from .cache import EmbeddingCache

LAYER_MODES = ("token", "srp")
JL_EPS = 0.1
LAYERS_CHOICES = ("final", "all")  # --layers: the final embedding only (default), or every layer too
POOLED = "pooled"
NAMES_KEY = "layer_names"


def layer_cache_dir() -> Path:
    return cache_home() / "layers"


def jl_dim(n_stimuli: int, eps: float = JL_EPS) -> int:
    from sklearn.random_projection import johnson_lindenstrauss_min_dim

    return int(johnson_lindenstrauss_min_dim(max(int(n_stimuli), 2), eps=eps))


@dataclass(frozen=True)
class LayerSpec:
    """How each layer becomes one vector per image (part of the layer cache key)."""

    mode: str = "token"
    srp_seed: int = 0
    eps: float = JL_EPS

    def __post_init__(self):
        if self.mode not in LAYER_MODES:
            raise UserError(f"unknown layer mode {self.mode!r}; choose one of {', '.join(LAYER_MODES)}", "layer_mode")

    def identity(self, n_stimuli: int) -> dict:
        out = {"layer_mode": self.mode}
        if self.mode == "srp":
            out |= {"srp_dim": jl_dim(n_stimuli, self.eps), "srp_eps": self.eps, "srp_seed": self.srp_seed}
        return out


@dataclass
class LayerFeatures:
    """Per-layer features of one set, rows in the stimulus order."""

    names: list[str]
    depths: list[float]
    arrays: list[np.ndarray]  # (n, d_layer) float32 each
    mode: str
    pooling: str  # how the token mode pools a layer ('class token' or 'mean of patch tokens')
    reduction: dict = field(default_factory=dict)  # per layer: 'srp d->k' or 'kept whole (d)'
    weights: str = ""  # the encoder's weights identity (random:seed=N, sha256:..., tag:...)

    def describe(self) -> dict:
        return {"mode": self.mode, "pooling": self.pooling, "layers": list(self.names),
                "depths": [float(d) for d in self.depths], "widths": [int(a.shape[1]) for a in self.arrays],
                "reduction": self.reduction, "weights": self.weights}


def depths_for(n_layers: int) -> list[float]:
    return [float(k / n_layers) for k in range(1, n_layers + 1)]


def _vision_tower(model):
    visual = getattr(model, "visual", model)
    if not hasattr(visual, "forward_intermediates") or not hasattr(visual, "transformer"):
        raise UserError(f"layer features need a ViT image tower (open_clip VisionTransformer); this model's is "
                        f"{type(visual).__name__}: use a ViT model (e.g. ViT-B-32), or the final embedding only (layers "
                        "'final')", "model")
    return visual


class _Reducer:
    """Per-batch reduction of every layer; the sparse random projections are fitted once (seeded)
    on the first batch's widths and then applied to every batch."""

    def __init__(self, visual, spec: LayerSpec, n_stimuli: int):
        self.visual, self.spec = visual, spec
        self.k = jl_dim(n_stimuli, spec.eps) if spec.mode == "srp" else None
        self.use_class_token = getattr(visual, "pool_type", "tok") == "tok"
        self.pooling = "class token" if self.use_class_token else "mean of patch tokens"
        self.n_blocks = len(visual.transformer.resblocks)
        self.names = [f"block{i + 1:02d}" for i in range(self.n_blocks)] + [POOLED]
        self.parts: list[list[np.ndarray]] = [[] for _ in self.names]
        self.projections: dict[int, object] = {}
        self.reduction: dict[str, str] = {}

    def _project(self, name: str, flat: np.ndarray) -> np.ndarray:
        d = flat.shape[1]
        if self.k is None or d <= self.k:
            self.reduction.setdefault(name, f"kept whole ({d})")
            return flat
        if d not in self.projections:
            from sklearn.random_projection import SparseRandomProjection

            # fit only draws the (k, d) sparse matrix from the seed; no data is needed
            self.projections[d] = SparseRandomProjection(n_components=self.k, random_state=self.spec.srp_seed,
                                                         dense_output=True).fit(np.zeros((1, d), np.float32))
        self.reduction.setdefault(name, f"sparse random projection {d} -> {self.k}")
        return np.asarray(self.projections[d].transform(flat), dtype=np.float32)

    def __call__(self, images):
        import torch

        out = self.visual.forward_intermediates(images, output_fmt="NLC", output_extra_tokens=True)
        spatial, prefix = out["image_intermediates"], out["image_intermediates_prefix"]
        for i, (pre, tokens) in enumerate(zip(prefix, spatial, strict=True)):
            name = self.names[i]
            if self.spec.mode == "token":
                pooled = pre[:, 0] if self.use_class_token else tokens.mean(dim=1)
                self.parts[i].append(pooled.float().cpu().numpy())
            else:
                full = torch.cat([pre, tokens], dim=1).flatten(1).float().cpu().numpy()
                self.parts[i].append(self._project(name, full))
        final, _ = self.visual._pool(torch.cat([prefix[-1], spatial[-1]], dim=1))  # the tower's own pooling
        self.parts[-1].append(final.float().cpu().numpy())
        self.reduction.setdefault(POOLED, f"pre-projection pooled output ({final.shape[1]})")
        return out["image_features"]  # the projected embedding, as model.encode_image returns it

    def trim_last(self, rows: int) -> None:
        """Keep only the first ``rows`` of the last batch (the rest padded a small batch; imaging.py)."""
        for parts in self.parts:
            parts[-1] = parts[-1][:rows]

    def arrays(self) -> list[np.ndarray]:
        return [np.concatenate(p).astype(np.float32) for p in self.parts]


def _layer_cache(clip, spec: LayerSpec, n_stimuli: int) -> EmbeddingCache:
    return EmbeddingCache(layer_cache_dir(), {**clip.identity(), **spec.identity(n_stimuli)})


def _weights_identity(clip) -> str:
    try:
        return str(clip.identity().get("weights", ""))
    except Exception:  # a test double without identity
        return ""


def extract_layers(encoder, paths, keys, spec: LayerSpec, reporter=None) -> LayerFeatures:
    """Every layer's features for ``paths`` (``keys``: their sha256), through the layer cache. Images
    with any layer missing go through one forward that also fills the embedding cache (when
    ``encoder`` is a ``CachedEncoder``). An encoder offering ``encode_layers`` (the known-answer
    double) is asked directly."""
    clip = getattr(encoder, "encoder", encoder)
    if hasattr(clip, "encode_layers"):
        return clip.encode_layers(paths, spec)
    if not hasattr(clip, "load") or not hasattr(clip, "_preprocess"):
        from ..errors import ScenarioNotRunnable

        raise ScenarioNotRunnable(f"layer features are read from an open_clip image tower; {type(clip).__name__} "
                                  "has none")
    paths, keys = [Path(p) for p in paths], list(keys)
    cache = _layer_cache(clip, spec, len(paths))
    meta = cache.read_meta()
    names = meta.get(NAMES_KEY)
    rows: list[list[np.ndarray | None]] = []
    if isinstance(names, list) and names:
        rows = [[cache.get(f"layer-{name}", key) for name in names] for key in keys]
    todo = [i for i, row in enumerate(rows or [[None]] * len(keys)) if any(v is None for v in row)]
    if reporter is not None:
        reporter.stage(f"layers ({spec.mode}): {len(keys) - len(todo)} of {len(keys)} images cached"
                       + (f", encoding {len(todo)}" if todo else ""))
    if todo:
        fresh = _forward_layers(encoder, clip, [paths[i] for i in todo], [keys[i] for i in todo], spec, len(paths))
        names, arrays, info = fresh
        if not rows:
            rows = [[None] * len(names) for _ in keys]
        try:
            for j, i in enumerate(todo):
                rows[i] = [arrays[layer][j] for layer in range(len(names))]
                for layer, name in enumerate(names):
                    cache.put(f"layer-{name}", keys[i], arrays[layer][j])
            cache.write_meta({**meta, NAMES_KEY: names, **info})
        except OSError as exc:
            raise UserError(f"cannot write the layer cache in {cache.dir} ({exc.strerror or exc}); free some "
                            f"space or point {HOME_ENV} to a writable folder") from None
        meta = cache.read_meta()
    arrays = [np.stack([row[layer] for row in rows]).astype(np.float32) for layer in range(len(names))]
    return LayerFeatures(list(names), depths_for(len(names)), arrays, spec.mode, meta.get("pooling", ""),
                         meta.get("reduction", {}), _weights_identity(clip))


def _forward_layers(encoder, clip, paths, keys, spec: LayerSpec, n_stimuli: int):
    """One forward over ``paths``: every layer reduced per batch, and the projected embeddings stored
    in the embedding cache (the forward the plain run would have made)."""
    from .imaging import encode_image_paths

    model = clip.load()
    reducer = _Reducer(_vision_tower(model), spec, n_stimuli)
    embeddings, forwards = encode_image_paths(
        model, clip._preprocess, paths, device=clip.device, batch_size=clip.batch_size,
        forward=reducer, **clip.decode_options())
    clip.forward_calls += forwards
    clip.image_forward_calls += forwards
    store = getattr(encoder, "_store", None)
    if store is not None:  # a CachedEncoder: the shared forward fills the embedding cache too
        store("image", list(keys), list(range(len(keys))), embeddings, [None] * len(keys))
    return reducer.names, reducer.arrays(), {"pooling": reducer.pooling, "reduction": reducer.reduction}
