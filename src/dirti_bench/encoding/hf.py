"""Hugging Face ``transformers``-format CLIP and SigLIP directories (``config.json`` + weights),
behind the same encoder interface as open_clip models (optional extra ``[hf]``).

The model becomes an object with open_clip's ``encode_image`` / ``encode_text``, so the image
pipeline (decode paths, batching) and the text path run unchanged; preprocessing is built from
the directory's ``preprocessor_config.json`` as torchvision steps (CLIP: resize the shortest edge
+ centre crop; SigLIP: squash to the square), text from its tokenizer, padded to the context
length as each family was trained (SigLIP: always to ``max_length``, as its text tower pools the
last position). The weights are identified by the sha256 of their files (the cache key).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import UserError

MODEL_TYPES = ("clip", "siglip")
WEIGHT_FILES = ("*.safetensors", "*.bin")


def is_transformers_dir(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def weights_sha256(folder: Path) -> str:
    """sha256 over the weight files (name and bytes, sorted by name)."""
    files = sorted({p for pattern in WEIGHT_FILES for p in folder.glob(pattern)})
    if not files:
        raise UserError(f"{folder} has a config.json but no weights (*.safetensors or *.bin); save the model "
                        "with save_pretrained into it")
    h = hashlib.sha256()
    for path in files:
        h.update(path.name.encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def processor_config(folder: Path) -> dict:
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        raise UserError(f"{folder} has no preprocessor_config.json; save the model's processor (or image "
                        "processor) with save_pretrained into it, so its preprocessing is known")
    return json.loads(path.read_text())


class ProcessorCenterCrop:
    """transformers' centre crop: the offset rounds down ((h - crop) // 2), where torchvision's
    CenterCrop rounds half up, one pixel apart on odd margins. Not a torchvision step, so the
    tensor-resize shortcut falls back to the jpeg-draft decode with these PIL steps."""

    def __init__(self, height: int, width: int):
        self.size = (height, width)

    def __call__(self, image):
        height, width = self.size
        top, left = (image.height - height) // 2, (image.width - width) // 2
        if top < 0 or left < 0:
            raise ValueError("image smaller than the processor's crop after resizing")
        return image.crop((left, top, left + width, top + height))

    def __repr__(self) -> str:
        return f"ProcessorCenterCrop(size={self.size})"


def preprocess_from(cfg: dict):
    """The image processor's steps as torchvision transforms (what the decode paths understand)."""
    from torchvision import transforms as T

    modes = {2: T.InterpolationMode.BILINEAR, 3: T.InterpolationMode.BICUBIC}
    interpolation = modes.get(int(cfg.get("resample", 3)), T.InterpolationMode.BICUBIC)
    size = cfg.get("size", {})
    steps = []
    if cfg.get("do_resize", True):
        if "shortest_edge" in size:
            steps.append(T.Resize(int(size["shortest_edge"]), interpolation=interpolation))
        else:
            steps.append(T.Resize((int(size["height"]), int(size["width"])), interpolation=interpolation))
    if cfg.get("do_center_crop", False):
        crop = cfg.get("crop_size", {})
        steps.append(ProcessorCenterCrop(int(crop["height"]), int(crop["width"])))
    steps += [T.ToTensor(), T.Normalize(cfg.get("image_mean"), cfg.get("image_std"))]
    if float(cfg.get("rescale_factor", 1 / 255)) != 1 / 255 or not cfg.get("do_normalize", True):
        raise UserError("the processor's rescale/normalise settings are not CLIP's or SigLIP's; this directory "
                        "is not supported")
    return T.Compose(steps)


class TransformersClip:
    """A transformers CLIPModel/SiglipModel with open_clip's encode_image / encode_text."""

    def __init__(self, model, model_type: str):
        self.model = model
        self.model_type = model_type
        self.logit_scale = model.logit_scale
        self.logit_bias = getattr(model, "logit_bias", None) if model_type == "siglip" else None

    def eval(self):
        self.model.eval()
        return self

    def parameters(self):
        return self.model.parameters()

    def state_dict(self):
        return self.model.state_dict()

    @staticmethod
    def _features(out):
        return out if hasattr(out, "shape") else out.pooler_output  # transformers 5 wraps the projection

    def encode_image(self, x):
        return self._features(self.model.get_image_features(pixel_values=x))

    def encode_text(self, tokens):
        return self._features(self.model.get_text_features(input_ids=tokens))

    def __call__(self, *args, **kwargs):
        return self.model(*args, **kwargs)


def load(folder: Path, device: str):
    """(model wrapper, torchvision preprocess, tokenizer(texts) -> ids, processor config)."""
    try:
        import transformers
    except ImportError:
        raise UserError(f"{folder} is a transformers model directory; install the [hf] extra "
                        "(pip install 'dirti-bench[hf]') to load it") from None
    config = json.loads((folder / "config.json").read_text())
    model_type = config.get("model_type")
    if model_type not in MODEL_TYPES:
        raise UserError(f"{folder}/config.json has model_type {model_type!r}; dirti-bench loads "
                        f"{' and '.join(MODEL_TYPES)} models from transformers directories")
    cls = transformers.CLIPModel if model_type == "clip" else transformers.SiglipModel
    model = cls.from_pretrained(folder, local_files_only=True).to(device).eval()
    cfg = processor_config(folder)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    context = int(model.config.text_config.max_position_embeddings)

    def tokenize(texts):
        # SigLIP pools the last position: its text must be padded to the context length, as trained.
        return tokenizer(list(texts), padding="max_length", max_length=context, truncation=True,
                         return_tensors="pt")["input_ids"]

    return TransformersClip(model, model_type), preprocess_from(cfg), tokenize, cfg
