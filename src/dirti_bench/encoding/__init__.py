"""Encoders: the open_clip model factory, streamed image decoding, truncated text encoding,
the on-disk embedding cache and opt-in reduced precision.

Importing this package makes the suite's model configs (``dirti-tiny``) known to open_clip, so
``open_clip.create_model("dirti-tiny")`` works after it. open_clip (and torch) are not imported
for that: a warm run, all embeddings cached, never needs them. Where open_clip is loaded already
the configs are added now; otherwise right after open_clip's own import finishes.
"""

import importlib.abc
import importlib.machinery
import sys
from importlib import resources

_CONFIGS_PACKAGE = "dirti_bench.model_configs"


def register_with_open_clip() -> None:
    """Add the configs folder to open_clip's registry (once; open_clip must be imported)."""
    open_clip = sys.modules["open_clip"]
    with resources.as_file(resources.files(_CONFIGS_PACKAGE)) as folder:
        if "dirti-tiny" not in open_clip.list_models():
            open_clip.add_model_config(folder)


class _RegisterAfterImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds open_clip as the path finder would, and registers the configs after its module runs."""

    def find_spec(self, name, path=None, target=None):
        if name != "open_clip":
            return None
        sys.meta_path.remove(self)  # one shot: open_clip is imported once per process
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        self._loader = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        spec = module.__spec__
        spec.loader = self._loader
        module.__loader__ = self._loader
        self._loader.exec_module(module)
        register_with_open_clip()


if "open_clip" in sys.modules:
    register_with_open_clip()
elif not any(isinstance(f, _RegisterAfterImport) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterImport())
