import pytest
import torch

from hwlenet import HwlenetError
from hwlenet.checkpoint import SHIPPED_MODELS, load_checkpoint, resolve_model, save_checkpoint
from hwlenet.models import build_model


@pytest.mark.parametrize("arch", ["classic", "classic-fc", "relu"])
def test_round_trip(tmp_path, arch):
    torch.manual_seed(1)
    model = build_model(arch)
    save_checkpoint(model, tmp_path / "m.pt", {"epochs": 3, "train_images": 10})
    loaded, meta = load_checkpoint(tmp_path / "m.pt")
    assert meta == {"epochs": 3, "train_images": 10}
    assert loaded.arch == arch
    for key, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], tensor, rtol=0, atol=0)


def rewrite(path, **changes):
    payload = torch.load(path, weights_only=True)
    payload.update(changes)
    torch.save(payload, path)


@pytest.fixture()
def saved(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(build_model("relu"), path, {})
    return path


def test_rejects_garbage(tmp_path):
    path = tmp_path / "g.pt"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(HwlenetError, match="not a readable checkpoint"):
        load_checkpoint(path)


def test_rejects_truncated(saved):
    saved.write_bytes(saved.read_bytes()[:500])
    with pytest.raises(HwlenetError, match="not a readable checkpoint"):
        load_checkpoint(saved)


def test_rejects_foreign_dict(saved):
    torch.save({"weights": torch.zeros(3)}, saved)
    with pytest.raises(HwlenetError, match="not an hwlenet checkpoint"):
        load_checkpoint(saved)


def test_rejects_unknown_arch(saved):
    rewrite(saved, arch="alexnet")
    with pytest.raises(HwlenetError, match="unknown architecture 'alexnet'"):
        load_checkpoint(saved)


def test_rejects_mismatched_tensors(saved):
    rewrite(saved, arch="classic")
    with pytest.raises(HwlenetError, match="do not fit 'classic'"):
        load_checkpoint(saved)


def test_fc_and_rbf_classic_checkpoints_do_not_mix(tmp_path):
    """An FC-output classic checkpoint is not an RBF one: its output weights have no place in
    the RBF model, whose codes come from the code, never from a file."""
    path = tmp_path / "fc.pt"
    save_checkpoint(build_model("classic-fc"), path, {})
    rewrite(path, arch="classic")
    with pytest.raises(HwlenetError, match=r"do not fit 'classic' \(missing \[\], extra "
                                           r"\['out.bias', 'out.weight'\]\)"):
        load_checkpoint(path)


def test_rejects_wrong_shape(saved):
    payload = torch.load(saved, weights_only=True)
    payload["state_dict"]["c1.weight"] = torch.zeros(6, 1, 3, 3)
    torch.save(payload, saved)
    with pytest.raises(HwlenetError, match="c1.weight has the wrong shape"):
        load_checkpoint(saved)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_rejects_non_finite(saved, bad):
    payload = torch.load(saved, weights_only=True)
    payload["state_dict"]["fc1.weight"][3, 4] = bad
    torch.save(payload, saved)
    with pytest.raises(HwlenetError, match="NaN or infinite"):
        load_checkpoint(saved)


@pytest.mark.parametrize("name", sorted(SHIPPED_MODELS))
def test_shipped_models_load_with_metadata(name):
    model, meta, label = resolve_model(name)
    assert label == name
    assert model.arch == name.removeprefix("lenet5-")
    assert meta["train_images"] == 10000 and meta["test_images"] == 10000
    assert meta["command"].startswith(f"hwlenet train --arch {model.arch} ")
    assert meta["test_accuracy"] >= (0.987 if model.arch == "classic" else 0.98)


def test_default_model_is_classic():
    assert resolve_model(None)[0].arch == "classic"


def test_unknown_model_name():
    with pytest.raises(HwlenetError, match="not a file nor a shipped model"):
        resolve_model("lenet7")
