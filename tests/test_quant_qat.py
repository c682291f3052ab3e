"""Quantization-aware training: the fake-quantized forward is the artifact's integer forward."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from hwlenet import HwlenetError
from hwlenet.checkpoint import load_checkpoint, resolve_model
from hwlenet.cli import main
from hwlenet.data import MnistSplit
from hwlenet.quant.qat import (FakeQuantModel, choose_config, classes_of, config_from_checkpoint,
                               fake_quant_logits, qat_finetune)
from hwlenet.quant.quantize import load_config, quantize_model
from hwlenet.sim import simulate

MODELS = ["lenet5-classic", "lenet5-classic-fc", "lenet5-relu"]


def _split(images, seed=0):
    labels = np.random.default_rng(seed).integers(0, 10, len(images)).astype(np.uint8)
    return MnistSplit(images, labels, "test images")


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("bits, rounding, overflow", [
    (8, "half_up", "saturate"), (4, "half_even", "saturate"), (3, "floor", "saturate"),
    (2, "half_up", "saturate"), (4, "half_up", "wrap"),
])
def test_fake_quant_forward_is_bit_identical_to_the_simulator(name, bits, rounding, overflow,
                                                              digit_images):
    calibration, images = digit_images
    model = resolve_model(name)[0]
    config = choose_config(model, calibration[:300], bits, bits, rounding=rounding,
                           overflow=overflow)
    qmodel = quantize_model(model, calibration[:300], config=config)
    fake = FakeQuantModel(model, qmodel)
    expected = simulate(qmodel, images, trace=True)
    np.testing.assert_array_equal(fake_quant_logits(fake, images), expected.logits)
    with torch.no_grad():
        trace = fake.forward_integers(torch.from_numpy(images).unsqueeze(1), trace=True)
    for layer in qmodel.layers:
        np.testing.assert_array_equal(trace[layer.name].numpy().astype(np.int64),
                                      expected.trace[layer.name], err_msg=layer.name)


@pytest.mark.parametrize("name", MODELS)
def test_integer_weights_are_the_quantizers(name, digit_images):
    model = resolve_model(name)[0]
    config = choose_config(model, digit_images[0][:200], 3, 3)
    qmodel = quantize_model(model, digit_images[0][:200], config=config)
    weights = FakeQuantModel(model, qmodel).integer_weights()
    for layer in qmodel.layers:
        if layer.has_weights:
            np.testing.assert_array_equal(weights[layer.name][0].detach().numpy(), layer.weight)
            np.testing.assert_array_equal(weights[layer.name][1].detach().numpy(), layer.bias)


def test_choose_config_is_complete_and_beats_max_abs_at_two_bits(digit_images):
    calibration, images = digit_images
    model = resolve_model("lenet5-relu")[0]
    config = choose_config(model, calibration[:300], 2, 2)
    plain = quantize_model(model, calibration[:300], 2, 2)
    chosen = quantize_model(model, calibration[:300], config=config)
    for layer in chosen.layers:
        if layer.has_weights:
            assert set(config["layers"][layer.name]) == {"weight", "bias", "output"}
            assert layer.weight_format.width == 2
            assert layer.weight_format.frac >= plain.layer(layer.name).weight_format.frac
    # a max-abs fit at 2 bits rounds most weights to zero; the chosen fracs keep more of them
    nonzero = [np.count_nonzero(q.layer("fc1").weight) for q in (plain, chosen)]
    assert nonzero[1] > nonzero[0]


def test_user_frac_is_kept_and_width_gets_a_chosen_frac(digit_images):
    model = resolve_model("lenet5-relu")[0]
    user = {"layers": {"c1": {"weight": {"width": 6, "frac": 3}}, "fc1": {"weight": {"width": 3}}}}
    config = choose_config(model, digit_images[0][:200], 4, 4, user)
    assert config["layers"]["c1"]["weight"]["width"] == 6
    assert config["layers"]["c1"]["weight"]["frac"] == 3
    assert config["layers"]["fc1"]["weight"]["width"] == 3
    assert config["layers"]["fc2"]["weight"]["width"] == 4


@pytest.fixture(scope="module")
def tiny_qat(digit_images):
    """``lenet5-relu`` fine-tuned at W3A3 for one epoch on 256 images, twice with one seed."""
    calibration, images = digit_images
    train = _split(calibration[:256])
    results = []
    for _ in range(2):
        model = resolve_model("lenet5-relu")[0]
        config = choose_config(model, calibration[:200], 3, 3)
        fake = qat_finetune(model, train, calibration[:200], config, epochs=1, seed=3,
                            progress=False)
        results.append((model, config, fake))
    return results


def test_qat_is_reproducible_and_changes_the_weights(tiny_qat):
    (first, _, _), (second, _, _) = tiny_qat
    original = resolve_model("lenet5-relu")[0].state_dict()
    for key, value in first.state_dict().items():
        torch.testing.assert_close(value, second.state_dict()[key], rtol=0, atol=0)
    assert any(not torch.equal(value, original[key])
               for key, value in first.state_dict().items())


def test_trained_model_is_bit_identical_to_its_artifact(tiny_qat, digit_images):
    model, config, fake = tiny_qat[0]
    images = digit_images[1]
    artifact = quantize_model(model, digit_images[0][500:700], config=config)
    logits = simulate(artifact, images).logits
    np.testing.assert_array_equal(fake_quant_logits(fake, images), logits)
    assert np.array_equal(classes_of(artifact, logits), logits.argmax(axis=1))


def test_qat_cli_writes_a_checkpoint_whose_formats_quantize_reuses(tmp_path, data_dir,
                                                                   digit_images):
    out, report = tmp_path / "qat.pt", tmp_path / "qat.json"
    result = CliRunner().invoke(main, [
        "qat", "lenet5-relu", "--bits", "3", "--epochs", "1", "--train-limit", "200",
        "--calib", "100", "--limit", "100", "--data-dir", str(data_dir), "--out", str(out),
        "--json", str(report)])
    assert result.exit_code == 0, result.output
    model, meta = load_checkpoint(out)
    config = config_from_checkpoint(meta)
    assert config == json.loads(report.read_text())["quant_config"]
    # quantizing with other calibration images and other default widths reuses every format
    artifact = quantize_model(model, digit_images[0][-100:], 8, 8, config=config)
    for layer in artifact.layers:
        if layer.has_weights:
            recorded = config["layers"][layer.name]
            assert layer.weight_format.to_dict() == recorded["weight"]
            assert layer.output_format.to_dict() == recorded["output"]
            assert layer.bias_format.to_dict() == recorded["bias"]
    assert meta["qat"]["weight_bits"] == 3 and meta["test_images"] == 100
    fake = FakeQuantModel(model, artifact)
    images = digit_images[1][:100]
    np.testing.assert_array_equal(fake_quant_logits(fake, images),
                                  simulate(artifact, images).logits)
    # the recorded config is a valid --config file
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert load_config(path) == config


def test_a_float_checkpoint_has_no_qat_config():
    assert config_from_checkpoint(resolve_model("lenet5-relu")[1]) == {}


@pytest.mark.parametrize("meta, message", [
    ({"quant_config": [1]}, "expected an object with a 'layers' key"),
    ({"quant_config": {"layers": {"c1": {"weights": {}}}}}, "keys must be among"),
    ({"quant_config": {"layers": {"c1": {"weight": {"width": 1}}}}}, "width must be"),
])
def test_malformed_recorded_config_is_an_error(meta, message):
    with pytest.raises(HwlenetError, match=message):
        config_from_checkpoint(meta)


@pytest.mark.parametrize("options, message", [
    ({"epochs": -1}, "epochs must be"), ({"distill": 1.5}, "distill must be a weight"),
])
def test_bad_training_options_are_errors(digit_images, options, message):
    model = resolve_model("lenet5-relu")[0]
    config = choose_config(model, digit_images[0][:50], 4, 4)
    with pytest.raises(HwlenetError, match=message):
        qat_finetune(model, _split(digit_images[0][:50]), digit_images[0][:50], config,
                     progress=False, **{"epochs": 1, **options})


@pytest.mark.parametrize("arguments, message", [
    (["--bits", "1"], "--bits must be an integer from 2"),
    (["--weight-bits", "40"], "--weight-bits must be an integer from 2"),
    (["--config", "missing.json"], "cannot read config"),
    (["--out", "no/such/folder/x.pt"], "does not exist"),
    (["nosuchmodel"], "no model 'nosuchmodel'"),
])
def test_qat_bad_input_is_one_line(tmp_path, monkeypatch, arguments, message):
    monkeypatch.chdir(tmp_path)
    base = ["qat", "--epochs", "1", "--out", "out.pt"]
    if arguments[0] == "--out":
        base = base[:-2]
    result = CliRunner().invoke(main, base + arguments)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], \
        result.output
    assert not (tmp_path / "out.pt").exists()


def test_qat_config_naming_an_unknown_layer_is_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.json").write_text(json.dumps({"layers": {"zz": {"weight": {"width": 3}}}}))
    result = CliRunner().invoke(main, ["qat", "lenet5-relu", "--config", "c.json", "--out",
                                       "out.pt"])
    assert result.exit_code == 2 and "names layer 'zz'" in result.output
    assert not (tmp_path / "out.pt").exists()


@pytest.mark.parametrize("name", ["lenet5-classic", "lenet5-classic-fc"])
def test_qat_of_the_classic_models_stays_bit_identical(name, digit_images):
    """The RBF output (fixed codes, class = argmin) and the FC output both train and export."""
    calibration, images = digit_images
    model = resolve_model(name)[0]
    config = choose_config(model, calibration[:100], 3, 3)
    assert ("out" in config["layers"]) == (name == "lenet5-classic-fc")
    fake = qat_finetune(model, _split(calibration[:64]), calibration[:100], config, epochs=1,
                        seed=1, progress=False)
    artifact = quantize_model(model, calibration[100:200], config=config)
    result = simulate(artifact, images[:100])
    own = fake_quant_logits(fake, images[:100])
    np.testing.assert_array_equal(own, result.logits)
    np.testing.assert_array_equal(classes_of(artifact, own), result.classes)
    assert artifact.output_rule == ("argmin" if name == "lenet5-classic" else "argmax")
