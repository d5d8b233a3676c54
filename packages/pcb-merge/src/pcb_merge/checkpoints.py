"""Lazy checkpoint readers and an atomic, streaming safetensors writer.

Readers load one tensor at a time and never map whole files, so the resident memory of a merge
is bounded by the tensors in flight, not by the model size:

- :class:`SafetensorsCheckpoint` parses the safetensors header itself and reads each tensor with a
  positioned ``readinto`` (:meth:`~SafetensorsCheckpoint.load`). Streaming merges use
  :meth:`~SafetensorsCheckpoint.view` instead: a zero-copy tensor over a copy-on-write mapping of
  the shard (writes never reach the file), whose pages :meth:`~SafetensorsCheckpoint.release`
  drops from the process again (``madvise(MADV_DONTNEED)``), so mapped pages do not accumulate in
  the resident set. It accepts a ``.safetensors`` file, a sharded checkpoint's
  ``*.safetensors.index.json``, or a folder holding either.
- :class:`TorchCheckpoint` reads ``.bin``/``.pt`` files only through
  ``torch.load(weights_only=True, mmap=True)``: no pickled code is ever executed.
- :class:`StateDictCheckpoint` wraps an in-memory ``{name: tensor}`` mapping.

:class:`SafetensorsWriter` knows every output tensor's name, shape and dtype up front, writes each
shard's header first and then streams tensor bytes in order, so it holds one tensor at a time. It
writes into a temporary file or folder next to the destination and renames it into place only
when everything was written: a failed merge never leaves a partial checkpoint behind.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import shutil
import struct
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import torch
from torch import Tensor

__all__ = [
    "Checkpoint",
    "SafetensorsCheckpoint",
    "SafetensorsWriter",
    "StateDictCheckpoint",
    "TorchCheckpoint",
    "open_checkpoint",
]

_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}
_NAMES = {v: k for k, v in _DTYPES.items()}
INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"


class Checkpoint(Protocol):
    """A read-only set of named tensors that can be loaded one at a time."""

    name: str

    def keys(self) -> list[str]: ...

    def __iter__(self) -> Iterator[str]: ...

    def spec(self, key: str) -> tuple[tuple[int, ...], torch.dtype]: ...

    def load(self, key: str) -> Tensor: ...

    def close(self) -> None: ...


class StateDictCheckpoint:
    """An in-memory state dict seen as a :class:`Checkpoint` (tensors are never modified)."""

    def __init__(self, state_dict: Mapping[str, Tensor], name: str = "state dict") -> None:
        if not isinstance(state_dict, Mapping):
            raise TypeError(
                f"{name} must be a mapping of names to tensors, got {type(state_dict).__name__}"
            )
        for k, v in state_dict.items():
            if not isinstance(k, str):
                raise TypeError(f"{name}: keys must be str, got {k!r}")
            if not isinstance(v, Tensor):
                raise TypeError(f"{name}[{k!r}] must be a torch.Tensor, got {type(v).__name__}")
        self._sd = state_dict
        self.name = name

    def keys(self) -> list[str]:
        return list(self._sd.keys())

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def spec(self, key: str) -> tuple[tuple[int, ...], torch.dtype]:
        t = self._sd[key]
        return tuple(t.shape), t.dtype

    def load(self, key: str) -> Tensor:
        return self._sd[key].detach()

    def close(self) -> None:
        return None


@dataclass(frozen=True)
class _Entry:
    file: Path
    start: int  # absolute byte offset
    nbytes: int
    shape: tuple[int, ...]
    dtype: torch.dtype


def _read_header(path: Path) -> tuple[dict[str, Any], int]:
    size = path.stat().st_size
    with path.open("rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError(f"{path} is not a safetensors file (shorter than 8 bytes)")
        (n,) = struct.unpack("<Q", raw)
        if n > size - 8 or n > 100_000_000:
            raise ValueError(
                f"{path} is not a safetensors file (header length {n} exceeds the file)"
            )
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path} is not a safetensors file (bad JSON header)") from exc
    if not isinstance(header, dict):
        raise ValueError(f"{path} is not a safetensors file (header is not a JSON object)")
    return header, 8 + n


class SafetensorsCheckpoint:
    """A single-file or sharded safetensors checkpoint, read lazily tensor by tensor."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        p = Path(path)
        if p.is_dir():
            if (p / INDEX_NAME).is_file():
                p = p / INDEX_NAME
            elif (p / SINGLE_NAME).is_file():
                p = p / SINGLE_NAME
            else:
                found = sorted(p.glob("*.safetensors"))
                if len(found) != 1:
                    raise ValueError(
                        f"path={str(path)!r}: a folder must hold {INDEX_NAME}, {SINGLE_NAME} or exactly one "
                        f"*.safetensors file (found {len(found)})"
                    )
                p = found[0]
        if not p.is_file():
            raise ValueError(f"path={str(path)!r} does not exist")
        self.name = str(path)
        self.path = p
        self._entries: dict[str, _Entry] = {}
        self._maps: dict[Path, mmap.mmap] = {}
        self.metadata: dict[str, str] = {}
        if p.name.endswith(".json"):
            index = json.loads(p.read_text(encoding="utf-8"))
            wmap = index.get("weight_map") if isinstance(index, dict) else None
            if not isinstance(wmap, dict):
                raise ValueError(f"{p} has no 'weight_map' object; not a safetensors index")
            order: list[str] = []
            for fname in wmap.values():
                if fname not in order:
                    order.append(fname)
            for fname in order:
                self._add_file(p.parent / fname, only={k for k, v in wmap.items() if v == fname})
            missing = set(wmap) - set(self._entries)
            if missing:
                raise ValueError(
                    f"{p}: index lists tensors missing from their shards: {sorted(missing)[:10]}"
                )
        else:
            self._add_file(p, only=None)

    def _add_file(self, file: Path, only: set[str] | None) -> None:
        if not file.is_file():
            raise ValueError(f"shard {file} listed by the index does not exist")
        header, data_start = _read_header(file)
        size = file.stat().st_size
        meta = header.pop("__metadata__", None) or {}
        if isinstance(meta, dict):
            self.metadata.update({str(k): str(v) for k, v in meta.items()})
        for key, info in header.items():
            if only is not None and key not in only:
                continue
            try:
                dtype = _DTYPES[info["dtype"]]
                shape = tuple(int(s) for s in info["shape"])
                begin, end = (int(x) for x in info["data_offsets"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{file}: bad header entry for {key!r}: {info!r}") from exc
            numel = 1
            for s in shape:
                numel *= s
            itemsize = torch.empty((), dtype=dtype).element_size()
            if end - begin != numel * itemsize or begin < 0 or data_start + end > size:
                raise ValueError(
                    f"{file}: tensor {key!r} has inconsistent offsets {begin}..{end} for {shape} {dtype}"
                )
            if key in self._entries:
                raise ValueError(f"{file}: tensor {key!r} appears in more than one shard")
            self._entries[key] = _Entry(file, data_start + begin, end - begin, shape, dtype)

    def keys(self) -> list[str]:
        return list(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def spec(self, key: str) -> tuple[tuple[int, ...], torch.dtype]:
        e = self._entries[key]
        return e.shape, e.dtype

    def load(self, key: str) -> Tensor:
        return self.load_into(key, torch.empty(self._entries[key].nbytes, dtype=torch.uint8))

    def load_into(self, key: str, buf: Tensor) -> Tensor:
        """Read ``key`` into the front of the flat ``uint8`` tensor ``buf`` and return a typed view
        of it (no allocation: streaming merges reuse one buffer for every tensor)."""
        e = self._entries[key]
        if buf.dtype != torch.uint8 or buf.dim() != 1 or buf.numel() < e.nbytes:
            raise ValueError(f"buffer too small or not flat uint8 for tensor {key!r}")
        buf = buf[: e.nbytes]
        with e.file.open("rb", buffering=0) as f:  # one open per tensor: no handle outlives a read
            f.seek(e.start)
            view = memoryview(buf.numpy())  # type: ignore[arg-type]
            if e.nbytes and f.readinto(view) != e.nbytes:
                raise ValueError(f"{e.file}: truncated data for tensor {key!r}")
        return buf.view(e.dtype).reshape(e.shape)

    def view(self, key: str) -> Tensor | None:
        """A zero-copy tensor over the mapped file, or ``None`` where that is not possible (no
        ``madvise``, an empty or misaligned tensor). Writes to it stay private to the process.
        Call :meth:`release` when done with it to drop its pages from the resident set."""
        e = self._entries[key]
        itemsize = torch.empty((), dtype=e.dtype).element_size()
        if not _CAN_RELEASE or e.nbytes == 0 or e.start % itemsize:
            return None
        mm = self._maps.get(e.file)
        if mm is None:
            with e.file.open("rb") as f:
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
            self._maps[e.file] = mm
        raw = torch.frombuffer(mm, dtype=torch.uint8, count=e.nbytes, offset=e.start)
        return raw.view(e.dtype).reshape(e.shape)

    def release(self, key: str) -> None:
        """Drop the pages of ``key``'s mapped bytes from the process (the page cache keeps them;
        a later access faults them in again from the unchanged file)."""
        e = self._entries[key]
        mm = self._maps.get(e.file)
        if mm is None or e.nbytes == 0:
            return
        lo = e.start - e.start % mmap.PAGESIZE
        hi = min(len(mm), e.start + e.nbytes)
        mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)

    def close(self) -> None:
        for mm in self._maps.values():
            with contextlib.suppress(BufferError):  # a view is still held: the map goes with it
                mm.close()
        self._maps.clear()


_CAN_RELEASE = hasattr(mmap, "MADV_DONTNEED") and hasattr(mmap.mmap, "madvise")


class TorchCheckpoint:
    """A ``.bin``/``.pt`` state dict read with ``torch.load(weights_only=True, mmap=True)``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.name = str(path)
        try:
            sd = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # legacy (non-zip) format cannot be mapped
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
        if not isinstance(sd, Mapping):
            raise ValueError(
                f"path={str(path)!r} does not hold a state dict (got {type(sd).__name__})"
            )
        self._inner = StateDictCheckpoint(sd, name=self.name)

    def keys(self) -> list[str]:
        return self._inner.keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def spec(self, key: str) -> tuple[tuple[int, ...], torch.dtype]:
        return self._inner.spec(key)

    def load(self, key: str) -> Tensor:
        return self._inner.load(key)

    def close(self) -> None:
        return None


def open_checkpoint(source: Any, *, name: str = "checkpoint") -> Checkpoint:
    """A :class:`Checkpoint` for a state dict, a safetensors file/index/folder or a ``.bin``/``.pt`` file.

    Pickle-based files are read only with ``weights_only=True``; other suffixes are refused.
    """
    if isinstance(source, Mapping):
        return StateDictCheckpoint(source, name=name)
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if p.is_dir() or p.name.endswith((".safetensors", ".safetensors.index.json")):
            return SafetensorsCheckpoint(p)
        if p.suffix in (".bin", ".pt", ".pth"):
            if not p.is_file():
                raise ValueError(f"{name}={str(source)!r} does not exist")
            return TorchCheckpoint(p)
        raise ValueError(
            f"{name}={str(source)!r}: expected a .safetensors file, a safetensors index .json, a folder, "
            "or a .bin/.pt state dict"
        )
    raise TypeError(f"{name} must be a state dict or a path, got {type(source).__name__}")


# ------------------------------------------------------------------------------------------ writer


def _header_bytes(
    entries: Sequence[tuple[str, tuple[int, ...], torch.dtype]], metadata: Mapping[str, str]
) -> tuple[bytes, list[int]]:
    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    sizes = []
    for key, shape, dtype in entries:
        numel = 1
        for s in shape:
            numel *= s
        nbytes = numel * torch.empty((), dtype=dtype).element_size()
        header[key] = {
            "dtype": _NAMES[dtype],
            "shape": list(shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
        sizes.append(nbytes)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw, sizes


class SafetensorsWriter:
    """Write a planned list of tensors as one safetensors file or as shards with an index json.

    Args:
        out: destination. A path ending in ``.safetensors`` gives one file; any other path is a
            folder that receives ``model.safetensors`` (one shard) or ``model-0000k-of-0000K.safetensors``
            plus ``model.safetensors.index.json``.
        plan: ``(name, shape, dtype)`` of every tensor, in the order :meth:`add` will receive them.
        max_shard_bytes: shard size limit (folder output only).
        metadata: string metadata stored in every header.
        overwrite: replace an existing destination (otherwise it is an error).
    """

    def __init__(
        self,
        out: str | os.PathLike[str],
        plan: Sequence[tuple[str, tuple[int, ...], torch.dtype]],
        *,
        max_shard_bytes: int = 2 * 1024**3,
        metadata: Mapping[str, str] | None = None,
        overwrite: bool = False,
    ) -> None:
        self.out = Path(out)
        if self.out.exists() and not overwrite:
            raise ValueError(
                f"output={str(out)!r} already exists (pass overwrite=True to replace it)"
            )
        if max_shard_bytes <= 0:
            raise ValueError(f"max_shard_bytes must be positive, got {max_shard_bytes!r}")
        for _, _, dtype in plan:
            if dtype not in _NAMES:
                raise ValueError(f"dtype {dtype} cannot be stored in safetensors")
        self.single = self.out.name.endswith(".safetensors")
        self.metadata = dict(metadata or {})
        self.out.parent.mkdir(parents=True, exist_ok=True)
        shards: list[list[tuple[str, tuple[int, ...], torch.dtype]]] = [[]]
        used = 0
        for entry in plan:
            _, sizes = _header_bytes([entry], {})
            if not self.single and shards[-1] and used + sizes[0] > max_shard_bytes:
                shards.append([])
                used = 0
            shards[-1].append(entry)
            used += sizes[0]
        self._shards = shards
        self._order = [key for shard in shards for key, _, _ in shard]
        self._pos = 0
        self._shard_idx = -1
        self._left_in_shard = 0
        self._file: BinaryIO | None = None
        if self.single:
            fd, tmp = tempfile.mkstemp(
                dir=self.out.parent, prefix=f".{self.out.name}.", suffix=".tmp"
            )
            os.close(fd)
            self._tmp = Path(tmp)
            self._names = [self._tmp]
        else:
            self._tmp = Path(
                tempfile.mkdtemp(dir=self.out.parent, prefix=f".{self.out.name}.", suffix=".tmp")
            )
            k = len(shards)
            self._names = [
                self._tmp / (SINGLE_NAME if k == 1 else f"model-{i + 1:05d}-of-{k:05d}.safetensors")
                for i in range(k)
            ]
        self._specs = {key: (shape, dtype) for key, shape, dtype in plan}
        self.total_size = 0

    def _open_next(self) -> None:
        if self._file is not None:
            self._file.close()
        self._shard_idx += 1
        shard = self._shards[self._shard_idx]
        header, _ = _header_bytes(shard, self.metadata)
        self._file = self._names[self._shard_idx].open("wb")
        self._file.write(header)
        self._left_in_shard = len(shard)

    def add(self, key: str, tensor: Tensor) -> None:
        """Write the next planned tensor (names must arrive in plan order)."""
        if self._pos >= len(self._order) or key != self._order[self._pos]:
            expected = self._order[self._pos] if self._pos < len(self._order) else "nothing"
            raise RuntimeError(f"writer expected tensor {expected!r}, got {key!r}")
        shape, dtype = self._specs[key]
        if tuple(tensor.shape) != shape or tensor.dtype != dtype:
            raise RuntimeError(
                f"tensor {key!r} is {tuple(tensor.shape)} {tensor.dtype}, planned {shape} {dtype}"
            )
        if self._left_in_shard == 0:
            self._open_next()
        assert self._file is not None
        data = tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy()
        self._file.write(memoryview(data))  # type: ignore[arg-type]
        self.total_size += int(data.nbytes)
        self._left_in_shard -= 1
        self._pos += 1

    def commit(self) -> Path:
        """Finish, fsync and atomically move the result into place. Returns the output path."""
        if self._pos != len(self._order):
            raise RuntimeError(f"writer received {self._pos} of {len(self._order)} planned tensors")
        if self._file is None and self._order == []:
            self._open_next()  # empty checkpoint: still write a valid header
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        if self.single:
            os.replace(self._tmp, self.out)
            return self.out
        if len(self._names) > 1:
            index = {
                "metadata": {"total_size": self.total_size},
                "weight_map": {
                    key: self._names[i].name
                    for i, shard in enumerate(self._shards)
                    for key, _, _ in shard
                },
            }
            (self._tmp / INDEX_NAME).write_text(json.dumps(index, indent=2), encoding="utf-8")
        if self.out.exists():
            backup = Path(
                tempfile.mkdtemp(dir=self.out.parent, prefix=f".{self.out.name}.", suffix=".old")
            )
            backup.rmdir()
            os.replace(self.out, backup)
            os.replace(self._tmp, self.out)
            shutil.rmtree(backup) if backup.is_dir() else backup.unlink()
        else:
            os.replace(self._tmp, self.out)
        return self.out

    def abort(self) -> None:
        """Drop everything written so far (the destination is untouched)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tmp.is_dir():
            shutil.rmtree(self._tmp, ignore_errors=True)
        else:
            self._tmp.unlink(missing_ok=True)
