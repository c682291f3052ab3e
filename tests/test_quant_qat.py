"""Quantization-aware training: the fake-quantized forward is the artifact's integer forward."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from hwlenet import HwlenetError
from hwlenet.checkpoint import load_checkpoint, resolve_model
from hwlenet.cli import main
from hwlenet.data import MnistSplit, split_validation
from hwlenet.defaults import LR_CANDIDATES
from hwlenet.quant import qat
from hwlenet.quant.qat import (FakeQuantModel, QatDiverged, choose_config, classes_of,
                               config_from_checkpoint, fake_quant_logits, qat_finetune,
                               qat_select_lr)
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
    # --lr auto (the default): 40 of the 200 images held out (a fifth), the rest trained on
    assert meta["qat"]["lr"] in LR_CANDIDATES and meta["qat"]["train_images"] == 160
    assert sorted(map(float, meta["qat"]["candidates"])) == sorted(LR_CANDIDATES)
    assert meta["qat"]["validation_images"] == 40 * 3
    fake = FakeQuantModel(model, artifact)
    images = digit_images[1][:100]
    np.testing.assert_array_equal(fake_quant_logits(fake, images),
                                  simulate(artifact, images).logits)
    # the recorded config is a valid --config file
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert load_config(path) == config


def test_qat_cli_with_a_fixed_rate_trains_on_every_image(tmp_path, data_dir):
    out = tmp_path / "qat.pt"
    result = CliRunner().invoke(main, [
        "qat", "lenet5-relu", "--bits", "4", "--epochs", "1", "--lr", "1e-3", "--train-limit",
        "100", "--calib", "50", "--limit", "50", "--data-dir", str(data_dir), "--out",
        str(out)])
    assert result.exit_code == 0, result.output
    meta = load_checkpoint(out)[1]
    assert meta["qat"]["lr"] == 1e-3 and meta["qat"]["train_images"] == 100
    assert "candidates" not in meta["qat"] and "--lr 0.001" in meta["command"]


@pytest.fixture(scope="module")
def selection_run(digit_images):
    """``qat_select_lr`` on 128 images (48 held out) at two rates, and each rate on its own."""
    calibration = digit_images[0]
    search, validation = split_validation(_split(calibration[:128]), 48, seed=1)
    model = resolve_model("lenet5-relu")[0]
    config = choose_config(model, calibration[:100], 3, 3)
    rates = (2e-3, 1e-4)
    fake, selection = qat_select_lr(model, search, validation, calibration[:100], config,
                                    candidates=rates, epochs=1, seed=3, progress=False)
    alone = {}
    for rate in rates:
        trial = resolve_model("lenet5-relu")[0]
        trained = qat_finetune(trial, search, calibration[:100], config, epochs=1, seed=3,
                               lr=rate, progress=False)
        own = fake_quant_logits(trained, validation.images)
        alone[rate] = (float(np.mean(classes_of(trained.template, own) == validation.labels)),
                       trial)
    return model, fake, selection, alone, validation


def test_selection_keeps_the_rate_with_the_best_validation_accuracy(selection_run):
    model, fake, selection, alone, validation = selection_run
    assert selection["candidates"] == {f"{rate:g}": score for rate, (score, _) in alone.items()}
    best = max(alone, key=lambda rate: (alone[rate][0], -rate))
    assert selection["lr"] == best
    assert selection["validation_accuracy"] == alone[best][0]
    assert (selection["validation_images"], selection["train_images"]) == (48, 80)
    for key, value in alone[best][1].state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)
    assert fake.model is model
    own = fake_quant_logits(fake, validation.images)
    assert np.mean(classes_of(fake.template, own) == validation.labels) == \
        selection["validation_accuracy"]


def test_selection_ties_go_to_the_lowest_rate(digit_images):
    images = digit_images[0][:60]
    search, validation = split_validation(_split(images), 20)
    model = resolve_model("lenet5-relu")[0]
    config = choose_config(model, images, 4, 4)
    _, selection = qat_select_lr(model, search, validation, images, config,
                                 candidates=(1e-3, 1e-4, 5e-4), epochs=0, progress=False)
    assert len(set(selection["candidates"].values())) == 1 and selection["lr"] == 1e-4


def test_a_diverging_rate_is_skipped_and_all_diverging_is_an_error(digit_images, monkeypatch):
    images = digit_images[0][:60]
    search, validation = split_validation(_split(images), 20)
    config = choose_config(resolve_model("lenet5-relu")[0], images, 4, 4)
    real = qat.qat_finetune

    def diverging_above_1e_4(model, *args, lr, **options):
        if lr > 1e-4:
            raise QatDiverged(f"QAT diverged at learning rate {lr:g}")
        return real(model, *args, lr=lr, **options)

    monkeypatch.setattr(qat, "qat_finetune", diverging_above_1e_4)
    model = resolve_model("lenet5-relu")[0]
    _, selection = qat_select_lr(model, search, validation, images, config,
                                 candidates=(1e-3, 1e-4), epochs=1, progress=False)
    assert selection["lr"] == 1e-4 and selection["candidates"]["0.001"] is None
    with pytest.raises(QatDiverged, match=r"every learning rate tried \(0.001, 0.0005\)"):
        qat_select_lr(model, search, validation, images, config, candidates=(1e-3, 5e-4),
                      epochs=1, progress=False)


@pytest.mark.parametrize("candidates", [(), (0.0,), (-1e-3,), (True,), ("fast",), (2.0,),
                                        (float("nan"),)])
def test_bad_candidate_rates_are_errors(digit_images, candidates):
    images = digit_images[0][:60]
    search, validation = split_validation(_split(images), 20)
    model = resolve_model("lenet5-relu")[0]
    config = choose_config(model, images, 4, 4)
    with pytest.raises(HwlenetError, match=r"learning rates must be numbers in \(0, 1\]"):
        qat_select_lr(model, search, validation, images, config, candidates=candidates,
                      epochs=1, progress=False)


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
    (["--lr", "fast"], "must be 'auto' or a number in (0, 1]"),
    (["--lr", "0"], "must be 'auto' or a number in (0, 1]"),
    (["--lr", "1e39"], "must be 'auto' or a number in (0, 1]"),
    (["--lr", "nan"], "must be 'auto' or a number in (0, 1]"),
    (["--lr", "1e-3", "--validation", "100"], "--validation and --augmented-copies need"),
    (["--lr", "1e-3", "--augmented-copies", "0"], "--validation and --augmented-copies need"),
    (["--train-limit", "100", "--validation", "100"],
     "the validation split must hold 1 to 99 of the 100 training images"),
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
