"""Merge configs in YAML or TOML, in the spirit of mergekit's, and the ``pcb-merge`` command.

Example (YAML)::

    method: pcb              # task_arithmetic | ties | dare | pcb
    scope: global            # global | tensor (required for ties and pcb)
    base: base.safetensors
    models:
      - path: math.safetensors
        weight: 1.0          # per-model λ_i (multiplied by `lambda`)
      - code/                # a folder or an index .json of a sharded checkpoint
    lambda: 1.2              # shared scale (default 1.0)
    parameters: {ratio: 0.1, outlier: 0.01, inter: sum}
    compute_dtype: float32   # float32 | float64
    out_dtype: bfloat16      # default: the base's dtype per tensor
    output: merged/          # a folder (shards + index) or a .safetensors file
    max_shard_size: 2GB

Relative paths are resolved against the config file's folder.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pcb_merge import _validate as V

__all__ = ["MergeConfig", "load_config", "run_config"]

_KEYS = {
    "method",
    "scope",
    "base",
    "models",
    "lambda",
    "parameters",
    "compute_dtype",
    "out_dtype",
    "output",
    "max_shard_size",
    "overwrite",
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "kib": 2**10,
    "m": 10**6,
    "mb": 10**6,
    "mib": 2**20,
    "g": 10**9,
    "gb": 10**9,
    "gib": 2**30,
    "t": 10**12,
    "tb": 10**12,
    "tib": 2**40,
}


@dataclass
class MergeConfig:
    """A validated merge description (see the module docstring for the file format)."""

    method: str
    base: Path
    models: list[Path]
    output: Path
    scope: str = "tensor"
    weights: list[float] = field(default_factory=list)
    scale: float = 1.0
    parameters: dict[str, Any] = field(default_factory=dict)
    compute_dtype: str = "float32"
    out_dtype: str | None = None
    max_shard_bytes: int = 2 * 1024**3
    overwrite: bool = False

    @property
    def lambdas(self) -> list[float]:
        return [self.scale * w for w in self.weights]


def parse_size(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    m = _SIZE.match(str(value))
    if not m or (m.group(2) or "").lower() not in _UNITS:
        raise ValueError(
            f"max_shard_size must be a positive byte count like 500MB or 2GiB, got {value!r}"
        )
    size = int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower()])
    if size <= 0:
        raise ValueError(f"max_shard_size must be positive, got {value!r}")
    return size


def from_dict(data: Mapping[str, Any], root: Path = Path()) -> MergeConfig:
    """Validate a parsed config; relative paths are resolved against ``root``."""
    if not isinstance(data, Mapping):
        raise ValueError(f"config must be a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ValueError(f"config: unknown key(s) {unknown}; known keys are {sorted(_KEYS)}")
    for key in ("method", "base", "models", "output"):
        if key not in data:
            raise ValueError(f"config: missing required key {key!r}")
    method = data["method"]
    if method not in V.METHODS:
        raise ValueError(f"config: method must be one of {V.METHODS}, got {method!r}")
    if method in ("ties", "pcb") and "scope" not in data:
        raise ValueError(
            f"config: {method} needs an explicit scope ('global' is the official code's, 'tensor' mergekit's)"
        )
    scope = V.scope(data.get("scope", "tensor"))

    def path(v: Any, what: str) -> Path:
        if not isinstance(v, str) or not v:
            raise ValueError(f"config: {what} must be a path string, got {v!r}")
        p = Path(os.path.expanduser(v))
        return p if p.is_absolute() else root / p

    models_raw = data["models"]
    if not isinstance(models_raw, list) or not models_raw:
        raise ValueError(f"config: models must be a non-empty list, got {models_raw!r}")
    models, weights = [], []
    for i, entry in enumerate(models_raw):
        if isinstance(entry, Mapping):
            extra = sorted(set(entry) - {"path", "model", "weight"})
            if extra:
                raise ValueError(f"config: models[{i}] has unknown key(s) {extra}")
            models.append(path(entry.get("path", entry.get("model")), f"models[{i}].path"))
            weights.append(entry.get("weight", 1.0))
        else:
            models.append(path(entry, f"models[{i}]"))
            weights.append(1.0)
    scale = data.get("lambda", 1.0)
    V.lambdas(scale, 1)
    V.lambdas(weights, len(weights))
    params = data.get("parameters", {}) or {}
    if not isinstance(params, Mapping):
        raise ValueError(f"config: parameters must be a mapping, got {params!r}")
    from pcb_merge.merge import make_method

    make_method(method, **params)  # validates names and ranges now, not after loading files
    compute = data.get("compute_dtype", "float32")
    V.compute_dtype(compute)
    out_dtype = data.get("out_dtype")
    V.out_dtype(out_dtype)
    overwrite = data.get("overwrite", False)
    if not isinstance(overwrite, bool):
        raise ValueError(f"config: overwrite must be true or false, got {overwrite!r}")
    return MergeConfig(
        method=method,
        base=path(data["base"], "base"),
        models=models,
        output=path(data["output"], "output"),
        scope=scope,
        weights=[float(w) for w in weights],
        scale=float(scale),
        parameters=dict(params),
        compute_dtype=str(compute),
        out_dtype=out_dtype,
        max_shard_bytes=parse_size(data.get("max_shard_size", 2 * 1024**3)),
        overwrite=overwrite,
    )


def load_config(path: str | os.PathLike[str]) -> MergeConfig:
    """Read a ``.yaml``/``.yml`` or ``.toml`` merge config."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"config={str(path)!r} does not exist")
    text = p.read_text(encoding="utf-8")
    if p.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"config={str(path)!r} is not valid YAML: {exc}") from exc
    elif p.suffix == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"config={str(path)!r} is not valid TOML: {exc}") from exc
    else:
        raise ValueError(f"config={str(path)!r}: expected a .yaml, .yml or .toml file")
    return from_dict(data, root=p.parent)


def run_config(
    config: MergeConfig | str | os.PathLike[str],
    *,
    progress: bool = False,
    overwrite: bool | None = None,
) -> Path:
    """Run a merge config (a :class:`MergeConfig` or a path to one); returns the output path."""
    from pcb_merge.streaming import merge_files

    cfg = config if isinstance(config, MergeConfig) else load_config(config)
    return merge_files(
        cfg.method,
        cfg.base,
        cfg.models,
        cfg.output,
        scope=cfg.scope,
        lambdas=cfg.lambdas,
        compute_dtype=cfg.compute_dtype,
        out_dtype=cfg.out_dtype,
        max_shard_bytes=cfg.max_shard_bytes,
        overwrite=cfg.overwrite if overwrite is None else overwrite,
        progress=progress,
        **cfg.parameters,
    )
