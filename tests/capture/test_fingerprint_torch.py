"""Torch tensors, datasets and loaders: fingerprinted like the numpy arrays they hold."""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
from torch.utils.data import (  # noqa: E402
    ConcatDataset,
    DataLoader,
    Dataset,
    IterableDataset,
    Subset,
    TensorDataset,
)

from tracked.capture.fingerprint import fingerprint, is_data_like  # noqa: E402
from tracked.capture.params import capture_params  # noqa: E402
from tracked.errors import FingerprintError  # noqa: E402

# dtypes torch and numpy share
DTYPES = ["<f2", "<f4", "<f8", "<i1", "<i2", "<i4", "<i8", "|u1", "|b1", "<c8", "<c16"]


@settings(max_examples=150, deadline=None)
@given(
    hnp.arrays(
        dtype=st.sampled_from(DTYPES).map(np.dtype),
        shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
    ),
    st.integers(min_value=1, max_value=64),
)
def test_a_tensor_and_its_numpy_array_share_a_digest(array: np.ndarray, chunk: int) -> None:
    tensor = torch.from_numpy(array.copy())
    found = fingerprint(tensor, _chunk_size=chunk)
    assert found.digest == fingerprint(array).digest
    assert (found.kind, found.shape) == ("torch.Tensor", array.shape)
    assert found.nbytes == array.nbytes


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(dtype=np.float32, shape=hnp.array_shapes(min_dims=2, max_dims=3, max_side=6)),
    st.integers(min_value=1, max_value=40),
)
def test_layout_never_changes_the_digest(array: np.ndarray, chunk: int) -> None:
    tensor = torch.from_numpy(array.copy())
    transposed = tensor.transpose(0, 1)  # a strided view, hashed by bounded blocks
    assert not transposed.is_contiguous() or 1 in transposed.shape[:2]
    expected = fingerprint(np.ascontiguousarray(array.swapaxes(0, 1))).digest
    assert fingerprint(transposed, _chunk_size=chunk).digest == expected
    assert fingerprint(tensor[::2], _chunk_size=chunk).digest == fingerprint(array[::2]).digest


def test_values_not_lazy_views_are_hashed() -> None:
    z = torch.tensor([1 + 2j, 3 - 1j], dtype=torch.complex64)
    assert z.conj().is_conj()
    assert fingerprint(z.conj()).digest == fingerprint(z.numpy().conj()).digest
    weights = torch.nn.Parameter(torch.ones(3, 2))  # requires grad
    assert fingerprint(weights).digest == fingerprint(np.ones((3, 2), dtype=np.float32)).digest


def test_dtypes_numpy_lacks_are_hashed_by_their_bytes() -> None:
    values = torch.tensor([[1.5, -2.0], [0.25, 3.0]])
    bf16 = values.to(torch.bfloat16)
    found = fingerprint(bf16)
    assert found.schema == {"dtype": "torch.bfloat16"}
    assert found.digest == fingerprint(bf16.clone()).digest
    assert found.digest == fingerprint(bf16.t().contiguous().t(), _chunk_size=2).digest
    assert found.digest != fingerprint(values.to(torch.float16)).digest  # other dtype token
    changed = bf16.clone()
    changed[1, 1] = 4.0
    assert fingerprint(changed).digest != found.digest


def test_tensors_without_a_plain_buffer_are_refused() -> None:
    with pytest.raises(FingerprintError, match="sparse"):
        fingerprint(torch.eye(3).to_sparse())
    with pytest.raises(FingerprintError, match="meta tensor"):
        fingerprint(torch.empty(3, device="meta"))


@pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="no CUDA device here: device tensors are copied to the host block by block, "
    "which needs a GPU to run",
)
def test_a_cuda_tensor_hashes_like_its_host_copy() -> None:
    host = torch.randn(1000, 33)
    device = host.cuda()
    assert fingerprint(device, _chunk_size=4096).digest == fingerprint(host).digest
    assert fingerprint(device.t(), _chunk_size=4096).digest == fingerprint(host.t()).digest


X = torch.arange(24, dtype=torch.float32).reshape(8, 3)
Y = torch.tensor([0, 1, 0, 1, 1, 0, 1, 0])


def test_a_tensor_dataset_is_the_sequence_of_its_tensors() -> None:
    dataset = TensorDataset(X, Y)
    found = fingerprint(dataset)
    assert found.digest == fingerprint((X.numpy(), Y.numpy())).digest
    assert (found.kind, found.shape) == ("torch.Dataset", (8,))
    loader = DataLoader(dataset, batch_size=3, shuffle=True)
    assert fingerprint(loader).digest == found.digest
    assert fingerprint(loader).kind == "torch.DataLoader"
    assert fingerprint(TensorDataset(X, 1 - Y)).digest != found.digest


class Arrays(Dataset):
    """torchvision's shape: `data` and `targets` (a list of labels)."""

    def __init__(self, data: np.ndarray, targets: list[int]) -> None:
        self.data, self.targets = data, targets

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        return self.data[i], self.targets[i]


class Opaque(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int):
        return torch.full((2,), float(i))


class Stream(IterableDataset):
    data = np.ones(3)

    def __iter__(self):
        yield from self.data


def test_datasets_that_expose_their_arrays() -> None:
    arrays = Arrays(X.numpy(), Y.tolist())
    assert fingerprint(arrays).digest == fingerprint((X.numpy(), Y.numpy())).digest
    base = TensorDataset(X, Y)
    subset = Subset(base, [0, 2, 4])  # its dataset and which rows of it
    assert fingerprint(subset).digest == fingerprint((base, np.array([0, 2, 4]))).digest
    joined = ConcatDataset([TensorDataset(X), TensorDataset(Y)])
    assert fingerprint(joined).digest == fingerprint([TensorDataset(X), TensorDataset(Y)]).digest


def test_datasets_that_compute_their_items_are_not_data() -> None:
    for dataset in (Opaque(), Stream(), DataLoader(Opaque(), batch_size=2)):
        assert not is_data_like(dataset)
        with pytest.raises(FingerprintError, match="dataset exposing its arrays"):
            fingerprint(dataset)


def test_tensors_and_datasets_are_data_not_params() -> None:
    loader = DataLoader(TensorDataset(X, Y), batch_size=4)
    captured = capture_params({"x": X, "train": loader, "lr": 0.1, "opaque": Opaque()})
    assert set(captured.data) == {"x", "train"}
    assert captured.params["lr"] == "0.1"
