"""Full-content fingerprints: equal content hashes equal, any change shows, nothing is sampled."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

import hypothesis.extra.numpy as hnp
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracked.capture.fingerprint import (
    SCHEME,
    Fingerprint,
    fingerprint,
    fingerprint_bytes,
    is_data_like,
)
from tracked.errors import FingerprintError

# The autouse settings fixture in conftest is function-scoped but holds no per-example state.
PROPERTY = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

DTYPES = ["<f8", "<i4", "<i8", "|u1", "|b1", "<c16", "<M8[ns]", "<m8[s]", "<U3", ">f4", ">i8"]
SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5)
arrays = st.sampled_from(DTYPES).flatmap(lambda dtype: hnp.arrays(dtype, SHAPES))
chunk_sizes = st.integers(min_value=1, max_value=256)


def strided_copy(a: np.ndarray) -> np.ndarray:
    """The same values as a, held in every other element of a larger array (not contiguous)."""
    big = np.zeros(tuple(2 * side for side in a.shape), dtype=a.dtype)
    view = big[(slice(None, None, 2),) * a.ndim]
    view[...] = a
    return view


# --- the digest itself ------------------------------------------------------------------------


def test_digest_is_scheme_tagged_xxh3_128_and_json_ready() -> None:
    fp = fingerprint(np.arange(6.0).reshape(2, 3))
    prefix, hexpart = fp.digest.rsplit(":", 1)
    assert prefix == SCHEME == "xxh3-128:v1"
    assert len(hexpart) == 32 and int(hexpart, 16) >= 0
    assert fp.short() == hexpart[:12]
    assert (fp.kind, fp.shape, fp.schema, fp.nbytes, fp.source) == (
        "numpy",
        (2, 3),
        {"dtype": "float64"},
        48,
        None,
    )
    assert json.loads(json.dumps(fp.to_dict())) == fp.to_dict()
    assert fp.to_dict()["shape"] == [2, 3]


def test_v1_digests_are_pinned() -> None:
    """These values are the v1 scheme: if one changes, digests stopped matching old runs."""
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", None]})
    assert fingerprint(np.arange(4, dtype="<i8")).digest == (
        "xxh3-128:v1:1d65c7ea758705a85b10d17e7fadd924"
    )
    assert fingerprint(frame.astype({"b": "string"})).digest == (
        "xxh3-128:v1:576e8f7d6c85f6dfb7620eccf0a5b6db"
    )
    assert fingerprint_bytes(b"tracked").digest == "xxh3-128:v1:702a8e7f6b3715e28c0e747bccac9f36"


# --- numpy ------------------------------------------------------------------------------------


@PROPERTY
@given(arrays, chunk_sizes)
def test_array_digest_ignores_memory_layout_and_chunking(a: np.ndarray, chunk: int) -> None:
    expected = fingerprint(np.ascontiguousarray(a))
    assert fingerprint(np.asfortranarray(a), _chunk_size=chunk) == expected
    assert fingerprint(strided_copy(a), _chunk_size=chunk) == expected
    assert fingerprint(np.flip(np.flip(a).copy()), _chunk_size=chunk) == expected
    swapped = a.astype(a.dtype.newbyteorder(">" if a.dtype.byteorder != ">" else "<"))
    assert fingerprint(swapped, _chunk_size=chunk).digest == expected.digest


@PROPERTY
@given(st.data())
def test_any_single_changed_element_changes_the_digest(data: st.DataObject) -> None:
    dtype = data.draw(st.sampled_from(["<i8", "<f8", "<U4", "|b1"]))
    a = data.draw(
        hnp.arrays(dtype, SHAPES, elements={"allow_nan": False} if dtype == "<f8" else None)
    )
    index = tuple(data.draw(st.integers(0, side - 1)) for side in a.shape)
    changed = a.copy()
    old = a[index]
    changed[index] = data.draw(hnp.from_dtype(a.dtype).filter(lambda v: v != old and v == v))
    assert fingerprint(changed).digest != fingerprint(a).digest
    assert fingerprint(np.asfortranarray(changed)).digest != fingerprint(a).digest


@PROPERTY
@given(hnp.arrays("<i4", hnp.array_shapes(min_dims=1, max_dims=2, min_side=2, max_side=6)))
def test_dtype_and_shape_are_part_of_the_digest(a: np.ndarray) -> None:
    digest = fingerprint(a).digest
    assert fingerprint(a.astype("<i8")).digest != digest  # same values, other dtype
    assert fingerprint(a.view("<f4")).digest != digest  # same bytes, other dtype
    assert fingerprint(a.view("<u4")).digest != digest
    assert fingerprint(a.reshape(-1)).digest != digest or a.ndim == 1
    assert fingerprint(a.reshape(1, -1)).digest != digest
    assert fingerprint(a.reshape(-1, 1)).digest != digest


def test_datetime_bool_complex_and_unicode_arrays() -> None:
    cases = [
        np.array(["2024-01-01", "NaT", "1970-01-01T00:00:01"], dtype="datetime64[ns]"),
        np.array([True, False, True]),
        np.array([1 + 2j, -0.5j, 3.0]),
        np.array(["a", "bc", ""]),
        np.array(3.5),
    ]
    digests = {fingerprint(a).digest for a in cases}
    assert len(digests) == len(cases)
    dates = cases[0]
    assert fingerprint(dates.astype("datetime64[us]")).digest != fingerprint(dates).digest
    assert (
        fingerprint(np.array([1 + 2j, -0.5j, 3.0 + 1e-9j])).digest != fingerprint(cases[2]).digest
    )


def test_structured_arrays_hash_values_not_padding() -> None:
    packed = np.dtype([("id", "<i4"), ("score", "<f8"), ("tag", "<U2")])
    aligned = np.dtype([("id", "<i4"), ("score", "<f8"), ("tag", "<U2")], align=True)
    rows = [(1, 0.5, "ab"), (2, -1.0, "c")]
    a = np.array(rows, dtype=packed)
    assert fingerprint(np.array(rows, dtype=aligned)).digest == fingerprint(a).digest
    assert fingerprint(a[::-1][::-1]) == fingerprint(a)
    changed = a.copy()
    changed["score"][1] = -2.0
    assert fingerprint(changed).digest != fingerprint(a).digest
    renamed = a.astype([("key", "<i4"), ("score", "<f8"), ("tag", "<U2")])
    assert fingerprint(renamed).digest != fingerprint(a).digest
    nested = np.zeros(2, dtype=[("xy", "<f8", (2,)), ("inner", [("a", "<i2")])])
    assert fingerprint(nested).kind == "numpy"


def test_object_arrays_frame_each_element() -> None:
    def obj(*items: object) -> np.ndarray:
        out = np.empty(len(items), dtype=object)
        out[:] = items
        return out

    assert fingerprint(obj("a", "bc")).digest != fingerprint(obj("ab", "c")).digest
    assert fingerprint(obj(1, "1")).digest != fingerprint(obj("1", 1)).digest
    assert fingerprint(obj(None, "")).digest != fingerprint(obj("", None)).digest
    assert fingerprint(obj(1.0, 1)).digest != fingerprint(obj(1, 1)).digest
    assert fingerprint(obj([1, 2], (1, 2))).digest != fingerprint(obj((1, 2), [1, 2])).digest
    big = np.arange(5000.0)
    other = big.copy()
    other[2500] += 1  # the repr of a large array elides the middle; its digest does not
    assert fingerprint(obj(big, 0)).digest != fingerprint(obj(other, 0)).digest
    grid = np.array([["x", 1, None], [2.5, b"y", {"k": 1}]], dtype=object)
    assert fingerprint(np.asfortranarray(grid)) == fingerprint(grid)
    assert fingerprint(strided_copy(grid), _chunk_size=8) == fingerprint(grid)


# --- pandas -----------------------------------------------------------------------------------


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    rows = draw(st.integers(1, 12))
    columns: dict[str, object] = {}
    for j in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["int", "float", "str", "object"]))
        if kind == "int":
            values: list[object] = draw(
                st.lists(st.integers(-(2**40), 2**40), min_size=rows, max_size=rows)
            )
        elif kind == "float":
            values = draw(st.lists(st.floats(-1e6, 1e6), min_size=rows, max_size=rows))
        else:
            values = draw(st.lists(st.text(max_size=4), min_size=rows, max_size=rows))
        columns[f"c{j}"] = pd.Series(values, dtype=object if kind == "object" else None)
    return pd.DataFrame(columns)


def changed_value(value: object) -> object:
    return value + "x" if isinstance(value, str) else value + 1  # type: ignore[operator]


@PROPERTY
@given(frames(), st.data())
def test_frame_digest_sees_every_cell_name_and_order(df: pd.DataFrame, data: st.DataObject) -> None:
    digest = fingerprint(df).digest
    assert fingerprint(df.copy()) == fingerprint(df)
    assert fingerprint(df.copy(deep=True)).digest == digest

    i = data.draw(st.integers(0, len(df) - 1))
    j = data.draw(st.integers(0, df.shape[1] - 1))
    edited = df.copy()
    edited.iat[i, j] = changed_value(df.iat[i, j])
    assert fingerprint(edited).digest != digest

    assert fingerprint(df.rename(columns={df.columns[j]: "renamed"})).digest != digest
    if df.shape[1] > 1:
        assert fingerprint(df[list(reversed(df.columns))]).digest != digest

    shifted = df.set_axis(range(100, 100 + len(df)))
    assert fingerprint(shifted).digest != digest
    assert (
        fingerprint(shifted, ignore_index=True).digest == fingerprint(df, ignore_index=True).digest
    )


@PROPERTY
@given(hnp.arrays("<f8", hnp.array_shapes(min_dims=2, max_dims=2, max_side=8)), chunk_sizes)
def test_frame_digest_ignores_block_layout(a: np.ndarray, chunk: int) -> None:
    by_column = pd.DataFrame({i: a[:, i].copy() for i in range(a.shape[1])})
    expected = fingerprint(by_column)
    assert fingerprint(pd.DataFrame(a), _chunk_size=chunk) == expected
    # copy=False keeps the row-major array, so each column is a strided view of it
    assert fingerprint(pd.DataFrame(a, copy=False), _chunk_size=chunk) == expected
    assert fingerprint(pd.DataFrame(np.asfortranarray(a), copy=False)) == expected


def test_frame_dtype_change_changes_digest() -> None:
    df = pd.DataFrame({"a": np.arange(10), "b": np.linspace(0, 1, 10)})
    assert fingerprint(df.astype({"a": "int32"})).digest != fingerprint(df).digest
    assert fingerprint(df.astype({"a": "float64"})).digest != fingerprint(df).digest
    assert fingerprint(df.astype({"a": "Int64"})).digest != fingerprint(df).digest


def test_editing_row_50000_of_100000_changes_the_digest() -> None:
    """MLflow's dataset digest looks at a sample of rows and misses this edit; we must not."""
    rng = np.random.default_rng(0)
    n = 100_000
    df = pd.DataFrame(
        {
            "x": rng.random(n),
            "k": rng.integers(0, 1000, n),
            "name": pd.Series([f"r{i}" for i in range(n)], dtype="string"),
        }
    )
    digest = fingerprint(df).digest
    for column, value in [("x", 0.123), ("k", -1), ("name", "edited")]:
        edited = df.copy()
        edited.loc[50_000, column] = value
        assert fingerprint(edited).digest != digest, column
    assert fingerprint(df.copy()).digest == digest


def test_extension_dtypes() -> None:
    base = pd.DataFrame(
        {
            "cat": pd.Categorical(["a", "b", "a", None]),
            "int": pd.array([1, None, 3, 4], dtype="Int64"),
            "flag": pd.array([True, None, False, True], dtype="boolean"),
            "text": pd.array(["x", None, "", "yz"], dtype="string[pyarrow]"),
            "when": pd.date_range("2024-01-01", periods=4, tz="Europe/Paris"),
            "span": pd.period_range("2024-01", periods=4, freq="M"),
            "arrow": pd.array([1.5, None, 2.5, 3.5], dtype="double[pyarrow]"),
        }
    )
    digest = fingerprint(base).digest
    assert fingerprint(base.copy()).digest == digest
    changes = {
        "cat": pd.Categorical(["a", "b", "b", None]),
        "int": pd.array([1, None, 3, 5], dtype="Int64"),
        "flag": pd.array([True, False, False, True], dtype="boolean"),
        "text": pd.array(["x", "", "", "yz"], dtype="string[pyarrow]"),
        "when": pd.date_range("2024-01-01", periods=4, tz="UTC"),
        "span": pd.period_range("2024-02", periods=4, freq="M"),
        "arrow": pd.array([1.5, 0.0, 2.5, 3.5], dtype="double[pyarrow]"),
    }
    for column, values in changes.items():
        assert fingerprint(base.assign(**{column: values})).digest != digest, column
    reordered = pd.Categorical(["a", "b", "a", None], categories=["b", "a"])
    assert fingerprint(base.assign(cat=reordered)).digest != digest


def test_string_storage_does_not_change_the_digest() -> None:
    values = ["a", None, "", "ünï", "bc"]
    python = pd.Series(values, dtype="string[python]")
    arrow = pd.Series(values, dtype="string[pyarrow]")
    assert fingerprint(python).digest == fingerprint(arrow).digest
    chunked = pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([values[:2], values[2:]])))
    assert fingerprint(chunked).digest == fingerprint(arrow).digest
    assert (
        fingerprint(pd.Series(["a", "bc"], dtype="string")).digest
        != fingerprint(pd.Series(["ab", "c"], dtype="string")).digest
    )


def test_series_name_and_multiindex_levels() -> None:
    s = pd.Series([1.0, 2.0, 3.0], name="y")
    assert fingerprint(s).kind == "pandas.Series"
    assert fingerprint(s.rename("z")).digest != fingerprint(s).digest
    df = pd.DataFrame({"a": [1, 1, 2], "b": ["x", "y", "x"], "v": [0.1, 0.2, 0.3]})
    indexed = df.set_index(["a", "b"])
    swapped = indexed.swaplevel()
    assert fingerprint(indexed).digest != fingerprint(df[["v"]]).digest
    assert fingerprint(indexed).digest != fingerprint(swapped).digest
    assert (
        fingerprint(indexed, ignore_index=True).digest
        == fingerprint(df[["v"]], ignore_index=True).digest
    )


# --- pyarrow, polars, scipy -------------------------------------------------------------------


def test_arrow_table_digest_ignores_chunking_and_offsets() -> None:
    table = pa.table(
        {
            "i": pa.array([1, None, 3, 4, 5], pa.int64()),
            "f": pa.array([0.5, 1.5, None, 3.5, 4.5]),
            "b": pa.array([True, None, False, True, False]),
            "s": pa.array(["a", None, "ccc", "", "ee"]),
            "d": pa.array(["x", "y", "x", None, "y"]).dictionary_encode(),
            "l": pa.array([[1], [], None, [2, 3], [4]]),
            "dec": pa.array([1, 2, 3, None, 5], pa.decimal128(6, 2)),
        }
    )
    digest = fingerprint(table).digest
    rechunked = pa.concat_tables([table.slice(0, 2), table.slice(2, 1), table.slice(3)])
    assert rechunked.column("s").num_chunks == 3
    assert fingerprint(rechunked).digest == digest
    padded = pa.concat_tables([table, table]).slice(len(table))  # non-zero offsets
    assert fingerprint(padded).digest == digest
    assert fingerprint(table.rename_columns(["I", "f", "b", "s", "d", "l", "dec"])).digest != digest
    assert fingerprint(table.select(["f", "i", "b", "s", "d", "l", "dec"])).digest != digest
    for name, values in {
        "i": pa.array([1, None, 3, 4, 6], pa.int64()),
        "s": pa.array(["a", None, "cc", "c", "ee"]),
        "b": pa.array([True, False, False, True, False]),
    }.items():
        edited = table.set_column(table.schema.get_field_index(name), name, values)
        assert fingerprint(edited).digest != digest, name


def test_arrow_large_and_view_strings_hash_their_values() -> None:
    values = ["a", None, "bc"]
    small = fingerprint(pa.table({"s": pa.array(values, pa.string())}))
    large = fingerprint(pa.table({"s": pa.array(values, pa.large_string())}))
    view = fingerprint(pa.table({"s": pa.array(values, pa.string_view())}))
    # the type is part of the header, the value encoding is shared: same nbytes, other digest
    assert small.nbytes == large.nbytes == view.nbytes
    assert len({small.digest, large.digest, view.digest}) == 3


def test_polars_frames() -> None:
    pl = pytest.importorskip("polars")
    df = pl.DataFrame({"a": [1, 2, 3], "s": ["x", None, "z"]})
    fp = fingerprint(df)
    assert fp.kind == "polars.DataFrame" and fp.shape == (3, 2)
    assert fingerprint(df.clone()).digest == fp.digest
    assert fingerprint(df.with_columns(pl.Series("a", [1, 2, 4]))).digest != fp.digest
    assert fingerprint(df.rename({"a": "b"})).digest != fp.digest


def test_sparse_digest_is_format_independent() -> None:
    m = sp.random(30, 20, density=0.2, format="csr", random_state=1)
    digest = fingerprint(m).digest
    for fmt in ["csc", "coo", "lil", "dok", "bsr", "dia"]:
        assert fingerprint(m.asformat(fmt)).digest == digest, fmt
    assert fingerprint(sp.csr_array(m)).digest == digest
    coo = m.tocoo()
    doubled = sp.coo_matrix(
        (
            np.r_[coo.data / 2, coo.data / 2, 0.0],
            (np.r_[coo.row, coo.row, 0], np.r_[coo.col, coo.col, 0]),
        ),
        shape=m.shape,
    )
    assert fingerprint(doubled).digest == digest  # duplicates summed, explicit zero dropped
    changed = m.copy()
    changed.data[0] += 1
    assert fingerprint(changed).digest != digest
    wider = sp.csr_matrix((m.data, m.indices, np.r_[m.indptr, m.indptr[-1]]), shape=(31, 20))
    assert fingerprint(wider).digest != digest
    assert fingerprint(m.astype(np.float32)).digest != digest


def test_sparse_fingerprint_leaves_the_matrix_alone() -> None:
    m = sp.csr_matrix((np.array([1.0, 2.0]), np.array([1, 0]), np.array([0, 2])), shape=(1, 2))
    assert not m.has_sorted_indices
    fp = fingerprint(m)
    assert list(m.indices) == [1, 0]
    assert fp.digest == fingerprint(sp.csr_matrix(np.array([[2.0, 1.0]]))).digest


def test_sequences_hash_their_items_in_order() -> None:
    a, b = np.arange(3), pd.DataFrame({"x": [1, 2]})
    fp = fingerprint([a, b])
    assert fp.kind == "sequence" and fp.shape == (2,)
    assert fingerprint((a, b)).digest == fp.digest
    assert fingerprint([b, a]).digest != fp.digest
    assert fingerprint([a]).digest != fingerprint(a).digest
    assert fp.nbytes == fingerprint(a).nbytes + fingerprint(b).nbytes


# --- files and directories --------------------------------------------------------------------


@PROPERTY
@given(st.binary(max_size=3000), st.integers(1, 1024))
def test_files_hash_the_same_as_their_bytes_in_memory(content: bytes, chunk: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "data.bin")
        path.write_bytes(content)
        in_memory = fingerprint_bytes(content)
        on_disk = fingerprint(str(path), _chunk_size=chunk)
        assert on_disk.digest == in_memory.digest
        assert (on_disk.kind, on_disk.nbytes, on_disk.source) == ("file", len(content), str(path))
        assert fingerprint(path) == on_disk  # os.PathLike as well as str


def test_relative_file_paths_are_recorded_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "rel.csv").write_text("a,b\n1,2\n")
    monkeypatch.chdir(tmp_path)
    assert fingerprint("rel.csv").source == str(tmp_path / "rel.csv")


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


tree_files = st.dictionaries(
    st.lists(st.sampled_from(["a", "b", "sub", "x.csv"]), min_size=1, max_size=3).map(
        lambda parts: "/".join([*(f"d{p}" for p in parts[:-1]), f"f{parts[-1]}"])
    ),
    st.binary(min_size=1, max_size=64),
    min_size=1,
    max_size=5,
)


@PROPERTY
@given(tree_files, st.data())
def test_directories_detect_renames_and_byte_changes(
    files: dict[str, bytes], data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        original = write_tree(Path(tmp, "original"), files)
        fp = fingerprint(original)
        assert fp.kind == "directory" and fp.nbytes == sum(map(len, files.values()))
        assert fingerprint(write_tree(Path(tmp, "copy"), files)).digest == fp.digest

        victim = data.draw(st.sampled_from(sorted(files)))
        target = original / victim
        content = target.read_bytes()
        position = data.draw(st.integers(0, len(content) - 1))
        flipped = bytes([content[position] ^ 1])
        target.write_bytes(content[:position] + flipped + content[position + 1 :])
        assert fingerprint(original).digest != fp.digest
        target.write_bytes(content)
        assert fingerprint(original).digest == fp.digest

        target.rename(target.with_name(target.name + ".renamed"))
        assert fingerprint(original).digest != fp.digest


# --- detection and errors ---------------------------------------------------------------------


def test_is_data_like_imports_nothing() -> None:
    code = (
        "import tracked.capture.fingerprint as f, sys; f.is_data_like([1]); "
        "assert 'pandas' not in sys.modules and 'numpy' not in sys.modules, sorted(sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


def test_is_data_like(tmp_path: Path) -> None:
    (tmp_path / "f.csv").write_text("x\n")
    assert is_data_like(np.zeros(2))
    assert is_data_like(pd.DataFrame({"a": [1]})) and is_data_like(pd.Series([1]))
    assert is_data_like(pa.table({"a": [1]})) and is_data_like(sp.eye(2, format="csr"))
    assert is_data_like(str(tmp_path / "f.csv")) and is_data_like(tmp_path)
    assert is_data_like([np.zeros(1), str(tmp_path / "f.csv")])
    for not_data in [
        object(),
        [1],
        [],
        (np.zeros(1), 3),
        "no/such/file.csv",
        tmp_path / "missing",
        b"bytes",
        np.float64(1.0),
        np.ma.masked_array([1, 2], mask=[0, 1]),
    ]:
        assert not is_data_like(not_data), not_data


def test_unsupported_objects_raise_fingerprint_error() -> None:
    with pytest.raises(FingerprintError, match=r"cannot fingerprint builtins\.object"):
        fingerprint(object())
    with pytest.raises(FingerprintError, match="not an existing file or directory"):
        fingerprint("no/such/file.csv")
    with pytest.raises(FingerprintError, match="empty sequence"):
        fingerprint([])
    with pytest.raises(FingerprintError, match="masked array"):
        fingerprint(np.ma.masked_array([1, 2], mask=[0, 1]))
    opaque = np.empty(1, dtype=object)
    opaque[0] = object()
    with pytest.raises(FingerprintError, match="no repr of its own"):
        fingerprint(opaque)


# --- memory: zero-copy where contiguous, bounded otherwise ------------------------------------


def peak_bytes_while(fn: object) -> int:
    tracemalloc.start()
    try:
        fn()  # type: ignore[operator]
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_contiguous_data_is_hashed_without_copying() -> None:
    a = np.ones((1 << 22,))  # 32 MiB
    df = pd.DataFrame({"a": a, "b": a.copy()})
    assert peak_bytes_while(lambda: fingerprint(a)) < 1 << 20
    assert peak_bytes_while(lambda: fingerprint(df, ignore_index=True)) < 1 << 20
    # the RangeIndex is hashed from its values, generated one chunk at a time
    assert peak_bytes_while(lambda: fingerprint(df, _chunk_size=1 << 20)) < 2 << 20


def test_non_contiguous_arrays_and_files_use_bounded_memory(tmp_path: Path) -> None:
    f = np.asfortranarray(np.ones((1 << 11, 1 << 11)))  # 32 MiB
    chunk = 1 << 20
    assert peak_bytes_while(lambda: fingerprint(f, _chunk_size=chunk)) < 3 * chunk
    path = tmp_path / "big.bin"
    path.write_bytes(bytes(1 << 24))
    assert isinstance(fingerprint(path, _chunk_size=chunk), Fingerprint)
    assert peak_bytes_while(lambda: fingerprint(path, _chunk_size=chunk)) < 3 * chunk
