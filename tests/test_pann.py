"""The pann extractor: CNN14 from a user's checkpoint (here a randomly initialised one), no download."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from listenloop.errors import ListenloopError  # noqa: E402
from listenloop.features import get_extractor  # noqa: E402
from listenloop.features.pann import EMBEDDING_DIM, build_cnn14, load_cnn14, slaney_filterbank  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random CNN14 in PANN's layout: {"model": state dict} with the front end's and head's keys."""
    torch.manual_seed(0)
    net = build_cnn14()
    with torch.no_grad():  # BatchNorm statistics away from their defaults, as trained ones would be
        for mod in net.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-1, 1)
                mod.running_var.uniform_(0.5, 2)
    state = dict(net.state_dict())
    state["fc_audioset.weight"] = torch.zeros(527, 2048)
    state["logmel_extractor.melW"] = torch.from_numpy(slaney_filterbank())
    path = tmp_path_factory.mktemp("pann") / "cnn14.pth"
    torch.save({"model": state, "epoch": 0}, path)
    return path


def _signal(seconds: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=0.1, size=int(32000 * seconds)).astype(np.float32)


def test_embeddings_have_2048_dims_and_are_deterministic(checkpoint: Path) -> None:
    ex = get_extractor("pann", checkpoint=str(checkpoint))
    assert ex.sample_rate == 32000 and ex.dim == EMBEDDING_DIM and len(ex.names) == EMBEDDING_DIM
    a = ex.extract(_signal(1.5, 0), 32000)
    assert a.shape == (EMBEDDING_DIM,) and a.dtype == np.float32 and np.all(a >= 0)  # ReLU(fc1)
    again = get_extractor("pann", checkpoint=str(checkpoint)).extract(_signal(1.5, 0), 32000)
    assert np.array_equal(a, again)
    assert not np.allclose(a, ex.extract(_signal(1.5, 1), 32000))
    assert ex.extract(_signal(0.2, 2), 32000).shape == (EMBEDDING_DIM,)  # short clips are padded


def test_cache_key_follows_the_checkpoint_contents(checkpoint: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.pth"
    state = torch.load(checkpoint, weights_only=True)
    state["model"]["fc1.bias"] = state["model"]["fc1.bias"] + 1
    torch.save(state, other)
    a = get_extractor("pann", checkpoint=str(checkpoint))
    b = get_extractor("pann", checkpoint=str(other))
    assert a.version != b.version and a.cache_token() != b.cache_token()


def test_loader_errors_are_clear(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(ListenloopError, match="not found"):
        load_cnn14(tmp_path / "missing.pth")
    with pytest.raises(ListenloopError, match="--checkpoint"):
        get_extractor("pann").extract(_signal(1, 0), 32000)
    state = torch.load(checkpoint, weights_only=True)["model"]
    wrong = {("head." + k if k.startswith("fc1.") else k): v for k, v in state.items()}
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(ListenloopError, match=r"missing 2 key\(s\) \(fc1.bias, fc1.weight.*unexpected 2"):
        load_cnn14(tmp_path / "wrong.pth")
    state = dict(state)
    state["fc1.weight"] = torch.zeros(10, 2048)
    torch.save(state, tmp_path / "shape.pth")
    with pytest.raises(ListenloopError, match=r"shape\.pth"):
        load_cnn14(tmp_path / "shape.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ListenloopError, match="cannot be read"):
        load_cnn14(tmp_path / "junk.pth")
