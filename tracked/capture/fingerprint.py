"""Full-content fingerprints of training data: every byte counts, not a sample of rows.

A fingerprint names the data a run saw, so two runs can be compared by what they trained on.
It is an xxh3-128 digest (``xxh3-128:v1:<32 hex>``) over a typed header and then the data, so
equal values give equal digests whatever their memory layout, and a change in any element, dtype,
shape, column name or column order gives a different one. Importing this module pulls in no
array library; each handler imports its library only once it has an object of that library.

Scheme v1 (frozen: a change to anything below needs a new version tag, ``v2``)
--------------------------------------------------------------------------------
All integers are little-endian. The primitives fed to an xxh3-128 stream are:

- ``U8(n)``: 1 byte; ``U64(n)``: 8 bytes, unsigned.
- ``STR(s)``: ``U64(len(b))`` then ``b``, where ``b = s.encode("utf-8", "surrogatepass")``.
- ``SHAPE(t)``: ``U64(len(t))`` then ``U64(d)`` for each dimension.
- ``DIGEST(x)``: the 16 raw bytes of a finished xxh3-128 stream or of another fingerprint.

Every top-level stream starts with ``STR("tracked.v1") STR(kind)``. Then, per kind:

``numpy``
    ``STR(token(dtype)) SHAPE(shape)``, then ``ARRAY(a)``. ``token`` is the little-endian
    ``dtype.str`` (``"<f8"``, ``"|b1"``, ``"<M8[ns]"``, ``"|O"``); for structured dtypes it is
    ``{'name':token,...}`` in field order (offsets and padding are not part of it), for a
    sub-array field ``token(base)`` followed by the Python repr of its shape.
    ``ARRAY(a)`` is, in C (row-major) element order whatever the memory layout:
    for plain dtypes the raw little-endian element bytes; for object dtype ``OBJ(x)`` per
    element; for structured dtypes ``ARRAY(a[field])`` for each field in order.
``pandas.DataFrame`` / ``pandas.Series``
    ``SHAPE(shape) U8(with_index)``, then per column (a Series is one column) ``OBJ(label)
    STR(str(dtype))``, then if ``with_index`` ``U64(nlevels)`` and per index level ``OBJ(name)
    STR(str(dtype))``. Then ``DIGEST(column stream)`` per column in order, then per index level.
    A column stream holds ``COLUMN(values)``, chosen by the dtype:
    numpy non-object dtype: ``ARRAY``; object: ``OBJ`` per element; categorical: ``U8(ordered)
    STR(str(categories dtype)) U64(ncategories) COLUMN(categories) STR(token(codes dtype))
    ARRAY(codes)``; nullable Int/UInt/Float/boolean: ``U8(valid)`` per element, then the
    values as ``ARRAY`` with missing ones set to 0; datetime with time zone: the int64 UTC
    epoch values as ``ARRAY``; ``StringDtype`` (any storage) and Arrow string/binary: ``STRINGS``;
    other Arrow dtypes: ``ARROW``; any other extension dtype: ``OBJ`` per element.
``pyarrow.Table`` / ``polars.DataFrame`` (polars via ``to_arrow()``)
    ``SHAPE((rows, columns))``, then per column ``STR(name) STR(type)`` (``str(pa_type)``
    for Arrow, ``str(polars dtype)`` for polars; nullability and metadata are not part of it),
    then ``DIGEST(column stream)`` per column, a column stream holding ``ARROW(column)``:
    fixed-width types: ``U8(has_nulls)``, if so ``U8(valid)`` per element, then the element
    bytes with null slots zeroed (booleans one byte each); string/binary types (views and
    large variants alike): ``STRINGS``; dictionary: ``ARROW`` of the decoded values; anything
    else: ``OBJ`` per element of ``to_pylist()``. Chunk boundaries never change the stream.
``scipy.sparse``
    ``STR(token(dtype)) SHAPE(shape)``, then the canonical CSR form (duplicates summed,
    indices sorted, explicit zeros dropped): ``indptr`` and ``indices`` as int64 ``ARRAY``,
    then ``ARRAY(data)``. CSR, CSC, COO, LIL, ... of equal matrices hash equal.
``sequence`` (list or tuple)
    ``U64(len)``, then ``DIGEST(fingerprint(element))`` per element in order.
``file``
    ``U64(size)``, then the bytes. ``fingerprint_bytes(b)`` is the same stream.
``directory``
    ``U64(nfiles)``, then per regular file in order of its relative POSIX path:
    ``STR(relative path) DIGEST(file fingerprint)``. Empty directories are not part of it;
    links to directories are not followed.

``torch.Tensor`` (any device)
    The very stream of the ``numpy`` kind (``STR("numpy")`` included) for the array
    ``t.numpy()`` would give: a tensor and the numpy array of the same values share one digest,
    so data converted between the two keeps its fingerprint. Dtypes numpy lacks (bfloat16,
    float8, ...) have the token ``str(dtype)`` (``"torch.bfloat16"``) and their raw element
    bytes. The conjugate and negative bits are resolved first (the values are hashed, not the
    lazy view). A tensor on another device is copied to the host a bounded block at a time,
    never whole. Sparse, quantized, nested and meta tensors are refused.
``torch.Dataset`` / ``torch.DataLoader``
    A dataset that exposes its arrays has the digest of the ``sequence`` of them: a
    ``TensorDataset`` (or any dataset with a ``tensors`` tuple) of its tensors; a dataset with
    ``data`` (and ``targets``) attributes of those, a list of numbers counting as the numpy array
    of them; a ``Subset`` of its dataset and its indices (as an int64 array); a
    ``ConcatDataset`` of its datasets. A ``DataLoader`` has its dataset's digest. Other datasets
    are not data: their content is whatever ``__getitem__`` computes.

``STRINGS`` is three streams filled in one pass: ``U8(valid)`` per element, ``U64(length in
bytes)`` per element (0 when missing), and the concatenated UTF-8 / binary values; the column
stream gets their three ``DIGEST``s in that order.

``OBJ(x)`` is ``STR(type(x).__module__ + "." + type(x).__qualname__)`` then: a ``str`` as
``STR``; ``bytes``/``bytearray`` as ``U64(len)`` and the bytes; ``None`` as nothing; a
list or tuple as ``U64(len)`` and ``OBJ`` per item; a dict as ``U64(len)`` and ``OBJ(key)
OBJ(value)`` per item; a numpy array as ``DIGEST(fingerprint(x))``; a numpy scalar as
``STR(str(x))``; anything else as ``STR(repr(x))`` (objects whose repr is the default
``<... at 0x...>`` cannot be fingerprinted: the address would change every run).

Floats are compared bit for bit: ``-0.0`` and ``0.0``, or NaNs with other payloads, differ.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import xxhash

from tracked.errors import FingerprintError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

__all__ = ["SCHEME", "Fingerprint", "fingerprint", "fingerprint_bytes", "is_data_like"]

SCHEME = "xxh3-128:v1"
_MAGIC = "tracked.v1"
# Bounds every copy made for a non-contiguous array and the read buffer for files.
_CHUNK_SIZE = 8 << 20
# Python objects are encoded this many at a time, then hashed in one update.
_OBJECT_BATCH = 4096

# (module, qualname) of a class in type(obj).__mro__ -> kind; found without importing anything.
_MRO_KINDS: dict[tuple[str, str], str] = {
    ("numpy", "ndarray"): "numpy",
    ("pandas", "DataFrame"): "pandas.DataFrame",
    ("pandas.core.frame", "DataFrame"): "pandas.DataFrame",
    ("pandas", "Series"): "pandas.Series",
    ("pandas.core.series", "Series"): "pandas.Series",
    ("pyarrow.lib", "Table"): "pyarrow.Table",
    ("polars", "DataFrame"): "polars.DataFrame",
    ("polars.dataframe.frame", "DataFrame"): "polars.DataFrame",
    ("scipy.sparse._base", "_spbase"): "scipy.sparse",
    ("scipy.sparse._matrix", "spmatrix"): "scipy.sparse",
    ("scipy.sparse.base", "spmatrix"): "scipy.sparse",
    ("torch", "Tensor"): "torch.Tensor",
    ("torch.utils.data.dataset", "Dataset"): "torch.Dataset",
    ("torch.utils.data.dataloader", "DataLoader"): "torch.DataLoader",
}
# Public homes of the same classes, asked only when their module is already in sys.modules,
# so a library that moves a class to another private module is still recognised.
_PUBLIC_KINDS: tuple[tuple[str, str, str], ...] = (
    ("numpy", "ndarray", "numpy"),
    ("pandas", "DataFrame", "pandas.DataFrame"),
    ("pandas", "Series", "pandas.Series"),
    ("pyarrow", "Table", "pyarrow.Table"),
    ("polars", "DataFrame", "polars.DataFrame"),
    ("scipy.sparse", "spmatrix", "scipy.sparse"),
    ("scipy.sparse", "sparray", "scipy.sparse"),
)
# A masked array's data alone is not its content; refuse it rather than hash half of it.
_REFUSED: frozenset[tuple[str, str]] = frozenset(
    {("numpy.ma", "MaskedArray"), ("numpy.ma.core", "MaskedArray")}
)


@dataclass(frozen=True)
class Fingerprint:
    """The content digest of one data object, with what a reader needs to recognise it."""

    digest: str
    kind: str
    shape: tuple[int, ...] | None
    schema: dict[str, str] | None
    nbytes: int
    source: str | None = None

    def short(self) -> str:
        """First 12 hex characters of the digest, enough to tell runs' data apart at a glance."""
        return self.digest.rsplit(":", 1)[1][:12]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the shape becomes a list)."""
        return {
            "digest": self.digest,
            "kind": self.kind,
            "shape": list(self.shape) if self.shape is not None else None,
            "schema": dict(self.schema) if self.schema is not None else None,
            "nbytes": self.nbytes,
            "source": self.source,
        }

    @property
    def raw(self) -> bytes:
        """The 16 digest bytes, as fed to an enclosing sequence or directory stream."""
        return bytes.fromhex(self.digest.rsplit(":", 1)[1])


class _Stream:
    """One xxh3-128 stream that counts the payload bytes apart from the header bytes."""

    __slots__ = ("_hash", "nbytes")

    def __init__(self) -> None:
        self._hash = xxhash.xxh3_128()
        self.nbytes = 0

    def u8(self, n: int) -> None:
        self._hash.update(bytes((n,)))

    def u64(self, n: int) -> None:
        self._hash.update(n.to_bytes(8, "little"))

    def text(self, s: str) -> None:
        b = s.encode("utf-8", "surrogatepass")
        self._hash.update(len(b).to_bytes(8, "little"))
        self._hash.update(b)

    def shape(self, shape: Iterable[int]) -> None:
        dims = tuple(shape)
        self.u64(len(dims))
        for d in dims:
            self.u64(int(d))

    def data(self, buf: Any) -> None:
        """Hash payload bytes (any C-contiguous buffer), counting them."""
        view = memoryview(buf)
        self._hash.update(view)
        self.nbytes += view.nbytes

    def obj(self, x: object) -> None:
        """OBJ(x) as header (labels, names): not counted as payload."""
        out: list[bytes] = []
        _encode_object(x, out)
        self._hash.update(b"".join(out))

    def sub(self, child: _Stream) -> None:
        """Append a finished child stream (a column, a section) by its digest."""
        self.add_digest(child.digest(), child.nbytes)

    def add_digest(self, raw: bytes, nbytes: int) -> None:
        """Append the 16 raw bytes of a digest; its payload counts towards ours."""
        self._hash.update(raw)
        self.nbytes += nbytes

    def digest(self) -> bytes:
        return self._hash.digest()

    def finish(
        self,
        kind: str,
        shape: tuple[int, ...] | None,
        schema: dict[str, str] | None,
        source: str | None = None,
    ) -> Fingerprint:
        return Fingerprint(
            f"{SCHEME}:{self._hash.hexdigest()}", kind, shape, schema, self.nbytes, source
        )


def _start(kind: str) -> _Stream:
    stream = _Stream()
    stream.text(_MAGIC)
    stream.text(kind)
    return stream


# --- detection (imports nothing) ------------------------------------------------------------


def _library_kind(obj: object) -> str | None:
    """The kind of a library object, found from its class names or already-imported modules."""
    mro = [(c.__module__, c.__qualname__) for c in type(obj).__mro__]
    if any(pair in _REFUSED for pair in mro):
        return None
    for pair in mro:
        if pair in _MRO_KINDS:
            return _MRO_KINDS[pair]
    for module, name, kind in _PUBLIC_KINDS:
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and isinstance(obj, cls):
            return kind
    return None


def _path_kind(obj: object) -> str | None:
    if not isinstance(obj, (str, os.PathLike)):
        return None
    try:
        path = os.fspath(obj)
        if isinstance(path, bytes):
            return None
        if os.path.isfile(path):
            return "file"
        if os.path.isdir(path):
            return "directory"
    except (OSError, ValueError):  # e.g. an embedded NUL: not a path at all
        return None
    return None


def _kind(obj: object) -> str | None:
    kind = _path_kind(obj)
    if kind is not None:
        return kind
    if isinstance(obj, (list, tuple)):
        return "sequence" if obj and all(_kind(item) for item in obj) else None
    kind = _library_kind(obj)
    if kind in ("torch.Dataset", "torch.DataLoader") and _dataset_parts(obj) is None:
        return None
    return kind


def is_data_like(obj: object) -> bool:
    """Whether `fingerprint` accepts obj; never imports a library to find out.

    A str or path counts only if it names an existing file or directory; a list or tuple only
    if it is non-empty and every item is data-like.
    """
    return _kind(obj) is not None


# --- numpy ------------------------------------------------------------------------------------


def _dtype_token(dtype: np.dtype) -> str:
    """The dtype as hashed: little-endian, structure without offsets or padding."""
    if dtype.fields is not None:
        fields = ",".join(
            f"{name!r}:{_dtype_token(dtype.fields[name][0])}" for name in dtype.names or ()
        )
        return "{" + fields + "}"
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        return f"{_dtype_token(base)}{shape!r}"
    return dtype.newbyteorder("<").str


def _c_blocks(arr: np.ndarray, chunk: int, dtype: np.dtype | None = None) -> Iterator[np.ndarray]:
    """C-contiguous pieces of arr in C order: arr itself if it already is, else bounded copies."""
    import numpy as np

    if arr.size == 0:
        return
    if arr.flags.c_contiguous and (dtype is None or dtype == arr.dtype):
        yield arr
        return
    if arr.ndim == 0:
        yield np.ascontiguousarray(arr, dtype=dtype)
        return
    row_bytes = arr.itemsize * (arr.size // arr.shape[0])
    if row_bytes <= chunk or arr.ndim == 1:
        step = max(1, chunk // row_bytes)
        for start in range(0, arr.shape[0], step):
            yield np.ascontiguousarray(arr[start : start + step], dtype=dtype)
    else:  # a single row is larger than a chunk: split it in turn
        for i in range(arr.shape[0]):
            yield from _c_blocks(arr[i], chunk, dtype)


def _bytes_of(block: np.ndarray) -> memoryview:
    """A byte view of a C-contiguous array; works for dtypes memoryview rejects (datetime)."""
    import numpy as np

    return block.reshape(-1).view(np.uint8).data


def _hash_array(stream: _Stream, arr: np.ndarray, chunk: int) -> None:
    """ARRAY(arr): values in C order, independent of strides and byte order."""
    dtype = arr.dtype
    if dtype.fields is not None:
        for name in dtype.names or ():
            _hash_array(stream, arr[name], chunk)
        return
    if dtype.hasobject:
        for block in _c_blocks(arr, chunk):
            _hash_objects(stream, block.reshape(-1))
        return
    little = dtype.newbyteorder("<")
    # dtype equality sees the real byte order, so this converts exactly the non-little ones.
    target = None if dtype == little else little
    for block in _c_blocks(arr, chunk, target):
        stream.data(_bytes_of(block))


def _fingerprint_numpy(arr: np.ndarray, chunk: int) -> Fingerprint:
    stream = _start("numpy")
    stream.text(_dtype_token(arr.dtype))
    stream.shape(arr.shape)
    _hash_array(stream, arr, chunk)
    return stream.finish("numpy", tuple(int(d) for d in arr.shape), {"dtype": str(arr.dtype)})


# --- torch ------------------------------------------------------------------------------------


def _numpy_dtype(dtype: Any) -> np.dtype | None:
    """The numpy dtype of a torch dtype, or None for the ones numpy lacks (bfloat16, ...)."""
    import torch

    try:
        return torch.empty(0, dtype=dtype).numpy().dtype
    except TypeError:
        return None


def _host_array(block: Any) -> np.ndarray:
    """A host tensor's elements as a C-contiguous numpy array (no copy when it already is one);
    dtypes numpy lacks come as the integers of their size (only their bytes are hashed)."""
    import numpy as np
    import torch

    try:
        array = block.numpy()
    except TypeError:
        same_size = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
        array = block.view(same_size[block.element_size()]).numpy()
    return np.ascontiguousarray(array)


def _tensor_blocks(t: Any, chunk: int) -> Iterator[Any]:
    """C-contiguous host tensors holding t's elements in C order; bounded copies unless t is
    already a contiguous host tensor (then t itself: no copy)."""
    if t.numel() == 0:
        return
    if t.device.type == "cpu" and t.is_contiguous():
        yield t
        return
    if t.dim() == 0:
        yield t.reshape(1).cpu()
        return
    row_bytes = t.element_size() * (t.numel() // t.shape[0])
    if row_bytes <= chunk or t.dim() == 1:
        step = max(1, chunk // max(1, row_bytes))
        for start in range(0, t.shape[0], step):
            yield t[start : start + step].contiguous().cpu()
    else:  # a single row is larger than a chunk: split it in turn
        for i in range(t.shape[0]):
            yield from _tensor_blocks(t[i], chunk)


def _fingerprint_torch(t: Any, chunk: int) -> Fingerprint:
    import torch

    if t.layout != torch.strided or t.is_quantized or t.is_nested or t.is_meta:
        what = "a meta" if t.is_meta else f"a {t.layout} / quantized / nested"
        raise FingerprintError(t, f"{what} tensor has no plain element buffer to hash")
    t = t.detach().resolve_conj().resolve_neg()
    np_dtype = _numpy_dtype(t.dtype)
    stream = _start("numpy")  # a tensor hashes as the numpy array of its values
    stream.text(_dtype_token(np_dtype) if np_dtype is not None else str(t.dtype))
    stream.shape(t.shape)
    for block in _tensor_blocks(t, chunk):
        stream.data(_bytes_of(_host_array(block)))
    return stream.finish("torch.Tensor", tuple(int(d) for d in t.shape), {"dtype": str(t.dtype)})


def _dataset_parts(obj: Any) -> list[Any] | None:
    """The arrays a torch dataset (or a DataLoader's dataset) exposes, or None."""
    if _library_kind(obj) == "torch.DataLoader":
        obj = getattr(obj, "dataset", None)
        if obj is None or _library_kind(obj) != "torch.Dataset":
            return None
    names = {cls.__name__ for cls in type(obj).__mro__}
    parts: list[Any]
    if "IterableDataset" in names:  # its content is whatever __iter__ produces
        return None
    if "Subset" in names and hasattr(obj, "dataset") and hasattr(obj, "indices"):
        parts = [obj.dataset, obj.indices]
    elif "ConcatDataset" in names and isinstance(getattr(obj, "datasets", None), list):
        parts = list(obj.datasets)
    elif isinstance(getattr(obj, "tensors", None), tuple):
        parts = list(obj.tensors)
    elif getattr(obj, "data", None) is not None:
        parts = [obj.data]
        if getattr(obj, "targets", None) is not None:
            parts.append(obj.targets)
    else:
        return None
    if not parts or not all(_kind(p) is not None or _numbers(p) for p in parts):
        return None
    return parts


def _numbers(value: object) -> bool:
    return isinstance(value, (list, tuple, range)) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    )


def _fingerprint_dataset(obj: Any, kind: str, ignore_index: bool, chunk: int) -> Fingerprint:
    import numpy as np

    parts = _dataset_parts(obj)
    if parts is None:  # is_data_like said yes a moment ago: the dataset changed under us
        raise FingerprintError(obj, "the dataset no longer exposes its arrays")
    items = [
        fingerprint(
            p if _kind(p) is not None else np.asarray(p),
            ignore_index=ignore_index,
            _chunk_size=chunk,
        )
        for p in parts
    ]
    stream = _start("sequence")
    stream.u64(len(items))
    for item in items:
        stream.add_digest(item.raw, item.nbytes)
    try:
        shape: tuple[int, ...] | None = (len(obj.dataset if kind == "torch.DataLoader" else obj),)
    except TypeError:
        shape = None
    return stream.finish(kind, shape, None)


# --- Python objects (object arrays and columns) ----------------------------------------------

_TYPE_TOKENS: dict[type, bytes] = {}


def _type_token(t: type) -> bytes:
    token = _TYPE_TOKENS.get(t)
    if token is None:
        name = f"{t.__module__}.{t.__qualname__}".encode("utf-8", "surrogatepass")
        token = _TYPE_TOKENS[t] = len(name).to_bytes(8, "little") + name
    return token


def _encode_object(x: object, out: list[bytes]) -> None:
    """Append OBJ(x) to out (see the module docstring)."""
    t = type(x)
    out.append(_type_token(t))
    if t is str:
        b = x.encode("utf-8", "surrogatepass")  # type: ignore[attr-defined]
    elif x is None:
        return
    elif isinstance(x, (bytes, bytearray)):
        b = bytes(x)
    elif isinstance(x, (list, tuple)):
        out.append(len(x).to_bytes(8, "little"))
        for item in x:
            _encode_object(item, out)
        return
    elif isinstance(x, dict):
        out.append(len(x).to_bytes(8, "little"))
        for key, value in x.items():
            _encode_object(key, out)
            _encode_object(value, out)
        return
    elif t.__module__ == "numpy" and t.__qualname__ == "ndarray":
        out.append(_fingerprint_numpy(x, _CHUNK_SIZE).raw)  # type: ignore[arg-type]
        return
    elif t.__module__ == "numpy":  # numpy scalars: str is stable, repr changed in numpy 2
        b = str(x).encode("utf-8", "surrogatepass")
    elif isinstance(x, str):  # str subclasses, e.g. enum.StrEnum members
        b = repr(x).encode("utf-8", "surrogatepass")
    else:
        if t.__repr__ is object.__repr__:
            raise FingerprintError(
                x, "it has no repr of its own, so its value cannot be hashed (only its address)"
            )
        b = repr(x).encode("utf-8", "surrogatepass")
    out.append(len(b).to_bytes(8, "little"))
    out.append(b)


def _hash_objects(stream: _Stream, items: Iterable[object]) -> None:
    """OBJ(x) for each item, hashed a batch at a time."""
    out: list[bytes] = []
    for count, item in enumerate(items, 1):
        _encode_object(item, out)
        if count % _OBJECT_BATCH == 0:
            stream.data(b"".join(out))
            out.clear()
    if out:
        stream.data(b"".join(out))


class _Strings:
    """STRINGS: validity, lengths and bytes go to three streams, so one pass suffices."""

    def __init__(self) -> None:
        self.valid, self.lengths, self.values = _Stream(), _Stream(), _Stream()

    def add_python(self, items: Iterable[object]) -> None:
        """Add str/bytes items; anything else (None, NA, NaN) counts as missing."""
        import numpy as np

        valid, lengths, values = bytearray(), [], []
        for item in items:
            if isinstance(item, str):
                b = item.encode("utf-8", "surrogatepass")
            elif isinstance(item, (bytes, bytearray)):
                b = bytes(item)
            else:
                valid.append(0)
                lengths.append(0)
                continue
            valid.append(1)
            lengths.append(len(b))
            values.append(b)
        self.valid.data(valid)
        self.lengths.data(np.asarray(lengths, dtype="<u8"))
        self.values.data(b"".join(values))

    def add_arrow(self, array: pa.Array) -> None:
        """Add one Arrow string/binary array (any offset width, views included)."""
        import numpy as np
        import pyarrow as pa

        if len(array) == 0:
            return
        if _is_view(array.type):
            large = pa.large_binary() if pa.types.is_binary_view(array.type) else pa.large_string()
            array = array.cast(large)
        if array.null_count:
            valid = array.is_valid().to_numpy(zero_copy_only=False)
            present = array.drop_null()
        else:
            valid = np.ones(len(array), dtype=np.bool_)
            present = array
        self.valid.data(valid.view(np.uint8))
        lengths = np.zeros(len(array), dtype="<u8")
        if len(present):
            large = pa.types.is_large_string(present.type) or pa.types.is_large_binary(present.type)
            buffers = present.buffers()
            offsets = np.frombuffer(buffers[1], dtype="<i8" if large else "<i4")
            offsets = offsets[present.offset : present.offset + len(present) + 1]
            lengths[valid] = np.diff(offsets)
            if buffers[2] is not None and offsets[-1] > offsets[0]:
                data = np.frombuffer(buffers[2], dtype=np.uint8)
                self.values.data(data[offsets[0] : offsets[-1]])
        self.lengths.data(lengths)

    def into(self, stream: _Stream) -> None:
        for part in (self.valid, self.lengths, self.values):
            stream.sub(part)


# --- Arrow (pyarrow tables, pandas Arrow columns, polars) -------------------------------------


def _is_view(t: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(
        getattr(pa.types, "is_string_view", lambda _: False)(t)
        or getattr(pa.types, "is_binary_view", lambda _: False)(t)
    )


def _is_arrow_string(t: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or _is_view(t)
    )


def _byte_width(t: pa.DataType) -> int | None:
    """Bytes per element of a fixed-width type with byte-sized elements, else None."""
    try:
        bits = t.bit_width
    except ValueError:
        return None
    return bits // 8 if bits % 8 == 0 else None


def _hash_arrow(stream: _Stream, chunks: Callable[[], Iterable[pa.Array]], t: pa.DataType) -> None:
    """ARROW(column): one pass per section over the chunks; chunking never shows in the stream."""
    import numpy as np
    import pyarrow as pa

    if isinstance(t, pa.ExtensionType):
        _hash_arrow(stream, lambda: (c.storage for c in chunks()), t.storage_type)
        return
    if pa.types.is_dictionary(t):
        _hash_arrow(stream, lambda: (c.dictionary_decode() for c in chunks()), t.value_type)
        return
    if _is_arrow_string(t):
        strings = _Strings()
        for array in chunks():
            strings.add_arrow(array)
        strings.into(stream)
        return
    width = 1 if pa.types.is_boolean(t) else _byte_width(t)
    if width is None:
        _hash_objects(stream, (item for array in chunks() for item in array.to_pylist()))
        return
    has_nulls = any(array.null_count for array in chunks())
    stream.u8(int(has_nulls))
    if has_nulls:
        for array in chunks():
            if len(array):
                stream.data(array.is_valid().to_numpy(zero_copy_only=False).view(np.uint8))
    for array in chunks():
        if not len(array):
            continue
        if pa.types.is_boolean(t):
            values = array.fill_null(False).to_numpy(zero_copy_only=False).view(np.uint8)
        else:
            raw = np.frombuffer(array.buffers()[1], dtype=np.uint8)
            values = raw[array.offset * width : (array.offset + len(array)) * width]
            if array.null_count:
                values = values.reshape(-1, width).copy()
                values[~array.is_valid().to_numpy(zero_copy_only=False)] = 0
        stream.data(np.ascontiguousarray(values))


def _fingerprint_arrow_table(
    table: pa.Table, kind: str, types: list[str], schema: dict[str, str]
) -> Fingerprint:
    stream = _start(kind)
    shape = (table.num_rows, table.num_columns)
    stream.shape(shape)
    for name, type_name in zip(table.column_names, types, strict=True):
        stream.text(name)
        stream.text(type_name)
    for column in table.columns:
        column_stream = _Stream()
        _hash_arrow(column_stream, column.iterchunks, column.type)
        stream.sub(column_stream)
    return stream.finish(kind, shape, schema)


def _fingerprint_pyarrow(table: pa.Table) -> Fingerprint:
    types = [str(field.type) for field in table.schema]
    schema = dict(zip(table.column_names, types, strict=True))
    return _fingerprint_arrow_table(table, "pyarrow.Table", types, schema)


def _fingerprint_polars(df: Any) -> Fingerprint:
    types = [str(dtype) for dtype in df.dtypes]
    schema = dict(zip(df.columns, types, strict=True))
    return _fingerprint_arrow_table(df.to_arrow(), "polars.DataFrame", types, schema)


# --- pandas -----------------------------------------------------------------------------------


def _slices(n: int, step: int) -> Iterator[slice]:
    return (slice(start, start + step) for start in range(0, n, step))


def _hash_pandas_values(stream: _Stream, values: Any, chunk: int) -> None:
    """COLUMN(values) for a Series or an Index (see the module docstring)."""
    import numpy as np
    import pandas as pd

    dtype = values.dtype
    n = len(values)
    rows = max(1, chunk // 8)
    if isinstance(values, pd.RangeIndex):  # hash its int64 values without materialising them
        for part in _slices(n, rows):
            stream.data(np.asarray(values[part], dtype="<i8"))
        return
    if isinstance(dtype, np.dtype):
        if dtype.hasobject:
            array = values.to_numpy()
            for part in _slices(n, _OBJECT_BATCH * 16):
                _hash_objects(stream, array[part])
        else:
            _hash_array(stream, values.to_numpy(), chunk)  # a view for numeric blocks
        return
    array = values.array
    if isinstance(dtype, pd.CategoricalDtype):
        stream.u8(int(bool(dtype.ordered)))
        stream.text(str(dtype.categories.dtype))
        stream.u64(len(dtype.categories))
        _hash_pandas_values(stream, dtype.categories, chunk)
        codes = np.asarray(array.codes)
        stream.text(_dtype_token(codes.dtype))
        _hash_array(stream, codes, chunk)
    elif _is_masked(array):
        for part in _slices(n, rows):
            stream.data((~np.asarray(array[part].isna())).view(np.uint8))
        zero = False if isinstance(array, pd.arrays.BooleanArray) else 0
        for part in _slices(n, rows):
            _hash_array(stream, array[part].to_numpy(dtype=dtype.numpy_dtype, na_value=zero), chunk)
    elif isinstance(dtype, pd.DatetimeTZDtype):
        _hash_array(stream, np.asarray(array.asi8), chunk)
    elif isinstance(dtype, pd.StringDtype) or (
        isinstance(dtype, pd.ArrowDtype) and _is_arrow_string(dtype.pyarrow_dtype)
    ):
        strings = _Strings()
        if getattr(dtype, "storage", "pyarrow") == "pyarrow":
            for piece in _arrow_chunks(array):
                strings.add_arrow(piece)
        else:
            for part in _slices(n, _OBJECT_BATCH * 16):
                strings.add_python(array[part].to_numpy(dtype=object))
        strings.into(stream)
    elif isinstance(dtype, pd.ArrowDtype):
        _hash_arrow(stream, lambda: _arrow_chunks(array), dtype.pyarrow_dtype)
    else:  # period, interval, sparse, third-party: correct, if slow
        for part in _slices(n, _OBJECT_BATCH * 16):
            _hash_objects(stream, array[part].to_numpy(dtype=object))


def _is_masked(array: object) -> bool:
    """Nullable Int/UInt/Float/boolean arrays: numpy values plus a missing-value mask."""
    import pandas as pd

    masked = (pd.arrays.IntegerArray, pd.arrays.FloatingArray, pd.arrays.BooleanArray)
    return isinstance(array, masked)


def _arrow_chunks(array: Any) -> list[pa.Array]:
    """The Arrow chunks behind a pandas Arrow-backed array, without combining them."""
    import pyarrow as pa

    converted = array.__arrow_array__()
    return converted.chunks if isinstance(converted, pa.ChunkedArray) else [converted]


def _fingerprint_pandas(obj: Any, kind: str, ignore_index: bool, chunk: int) -> Fingerprint:
    import pandas as pd

    if isinstance(obj, pd.DataFrame):
        columns = [obj.iloc[:, i] for i in range(obj.shape[1])]
        labels = list(obj.columns)
    else:
        columns, labels = [obj], [obj.name]
    index = obj.index
    levels = [index.get_level_values(i) for i in range(index.nlevels)] if not ignore_index else []
    if isinstance(index, pd.RangeIndex) and levels:
        levels = [index]  # keeps it lazy: get_level_values may hand back a materialised copy
    shape = tuple(int(d) for d in obj.shape)
    stream = _start(kind)
    stream.shape(shape)
    stream.u8(0 if ignore_index else 1)
    for label, column in zip(labels, columns, strict=True):
        stream.obj(label)
        stream.text(str(column.dtype))
    if not ignore_index:
        stream.u64(len(levels))
        for name, level in zip(index.names, levels, strict=True):
            stream.obj(name)
            stream.text(str(level.dtype))
    for values in [*columns, *levels]:
        column_stream = _Stream()
        _hash_pandas_values(column_stream, values, chunk)
        stream.sub(column_stream)
    schema = {str(label): str(column.dtype) for label, column in zip(labels, columns, strict=True)}
    return stream.finish(kind, shape, schema)


# --- scipy.sparse -----------------------------------------------------------------------------


def _fingerprint_sparse(matrix: Any, chunk: int) -> Fingerprint:
    import numpy as np

    if len(matrix.shape) != 2:
        raise FingerprintError(matrix, "only 2-D sparse matrices and arrays are supported")
    csr = matrix.tocsr()
    canonical = csr.has_canonical_format and np.count_nonzero(csr.data) == csr.nnz
    if not canonical:  # copy first: the caller's matrix must not change under it
        csr = csr.copy() if csr is matrix else csr
        csr.sum_duplicates()
        csr.eliminate_zeros()
    stream = _start("scipy.sparse")
    stream.text(_dtype_token(csr.dtype))
    shape = tuple(int(d) for d in csr.shape)
    stream.shape(shape)
    int64 = np.dtype("<i8")
    for index in (csr.indptr, csr.indices):
        for block in _c_blocks(index, chunk, int64):
            stream.data(_bytes_of(block))
    _hash_array(stream, csr.data, chunk)
    return stream.finish("scipy.sparse", shape, {"dtype": str(csr.dtype)})


# --- files and directories --------------------------------------------------------------------


def fingerprint_bytes(data: bytes | bytearray | memoryview) -> Fingerprint:
    """The fingerprint a file holding exactly these bytes gets (kind "file")."""
    view = memoryview(data).cast("B")
    stream = _start("file")
    stream.u64(view.nbytes)
    stream.data(view)
    return stream.finish("file", None, None)


def _fingerprint_file(path: str, chunk: int) -> Fingerprint:
    """Stream the file through one reusable buffer: memory stays at `chunk` bytes."""
    buffer = memoryview(bytearray(chunk))
    try:
        with open(path, "rb", buffering=0) as f:
            size = os.fstat(f.fileno()).st_size
            stream = _start("file")
            stream.u64(size)
            while n := f.readinto(buffer):
                stream.data(buffer[:n])
    except OSError as e:
        raise FingerprintError(path, f"cannot read {path}: {e.strerror or e}") from e
    if stream.nbytes != size:
        raise FingerprintError(path, f"{path} changed size while it was read")
    return stream.finish("file", None, None, path)


def _fingerprint_directory(root: str, chunk: int) -> Fingerprint:
    files: list[tuple[str, str]] = []
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            full = os.path.join(dirpath, name)
            if os.path.isfile(full):
                files.append((os.path.relpath(full, root).replace(os.sep, "/"), full))
    files.sort()
    stream = _start("directory")
    stream.u64(len(files))
    for relative, full in files:
        stream.text(relative)
        file = _fingerprint_file(full, chunk)
        stream.add_digest(file.raw, file.nbytes)
    return stream.finish("directory", None, None, root)


# --- entry point ------------------------------------------------------------------------------


def fingerprint(
    obj: object, *, ignore_index: bool = False, _chunk_size: int = _CHUNK_SIZE
) -> Fingerprint:
    """Digest the full content of a data object, file or directory.

    Accepts numpy arrays, pandas DataFrames and Series, pyarrow Tables, polars DataFrames,
    scipy sparse matrices, torch tensors, torch datasets that expose their arrays and their
    DataLoaders, paths of existing files or directories, and lists or tuples of these.
    ``ignore_index`` leaves the pandas index out (for frames that were only re-indexed).
    Raises `FingerprintError` for anything else.
    """
    if _chunk_size < 1:
        raise ValueError(f"_chunk_size must be positive, got {_chunk_size}")
    kind = _kind(obj)
    if kind in ("file", "directory"):
        path = os.path.abspath(os.fspath(cast("str | os.PathLike[str]", obj)))
        if kind == "file":
            return _fingerprint_file(path, _chunk_size)
        return _fingerprint_directory(path, _chunk_size)
    if kind == "sequence":
        items = [
            fingerprint(item, ignore_index=ignore_index, _chunk_size=_chunk_size)
            for item in obj  # type: ignore[attr-defined]
        ]
        stream = _start("sequence")
        stream.u64(len(items))
        for item in items:
            stream.add_digest(item.raw, item.nbytes)
        return stream.finish("sequence", (len(items),), None)
    if kind == "torch.Tensor":
        return _fingerprint_torch(obj, _chunk_size)
    if kind in ("torch.Dataset", "torch.DataLoader"):
        return _fingerprint_dataset(obj, kind, ignore_index, _chunk_size)
    if kind == "numpy":
        return _fingerprint_numpy(obj, _chunk_size)  # type: ignore[arg-type]
    if kind in ("pandas.DataFrame", "pandas.Series"):
        return _fingerprint_pandas(obj, kind, ignore_index, _chunk_size)
    if kind == "pyarrow.Table":
        return _fingerprint_pyarrow(obj)  # type: ignore[arg-type]
    if kind == "polars.DataFrame":
        return _fingerprint_polars(obj)
    if kind == "scipy.sparse":
        return _fingerprint_sparse(obj, _chunk_size)
    raise FingerprintError(obj, _unsupported_reason(obj))


def _unsupported_reason(obj: object) -> str:
    if isinstance(obj, (str, os.PathLike)):
        return f"{os.fspath(obj)!r} is not an existing file or directory"
    if isinstance(obj, (list, tuple)):
        if not obj:
            return "an empty sequence holds no data"
        return "every item of a list or tuple must be data (an array, frame, table or path)"
    if any((c.__module__, c.__qualname__) in _REFUSED for c in type(obj).__mro__):
        return "a masked array: fingerprint its .filled() values, or .data and .mask apart"
    return (
        "expected a numpy array, pandas DataFrame or Series, pyarrow Table, polars DataFrame, "
        "scipy sparse matrix, torch tensor, a torch dataset exposing its arrays (tensors, or "
        "data and targets) or its DataLoader, an existing file or directory path, or a list "
        "of these"
    )
