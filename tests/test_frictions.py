"""What a researcher with their own model hit (issue 34): each item that was a
traceback, a misleading line or a silent wrong result, with the fix's behaviour."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import jsma
from jsma.campaign import Campaign, CampaignSpec
from jsma.cli import main
from jsma.data import Dataset
from jsma.errors import CampaignError, ConfigurationError, InputTypeError
from tests.campaign.conftest import _model


def test_an_exported_programs_module_is_attacked_as_torch_loads_it(
    forms: dict[str, Path], user_data: Dataset
) -> None:
    module = torch.export.load(forms["exported"]).module()
    with pytest.raises(NotImplementedError):
        module.eval()  # what jsma.attack called before
    x, y = user_data.test.tensors(np.arange(2))
    result = jsma.attack(module, x, (y + 1) % user_data.num_classes)
    assert result.success.shape == (2,)


def test_a_numpy_input_is_named_as_such(user_data: Dataset, forms: dict[str, Path]) -> None:
    x, _ = user_data.test.tensors(np.arange(1))
    with pytest.raises(InputTypeError, match=r"got a ndarray \(torch.from_numpy"):
        jsma.attack(_model(), x.numpy(), torch.tensor([1]))  # type: ignore[arg-type]


def test_maximal_with_a_target_speaks_command_line(
    tiny_dataset: Dataset, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["attack", "--variant", "maximal", "--target", "0"]) == 2
    assert "leave out --target" in capsys.readouterr().err


def test_a_split_the_data_lacks_is_refused(tiny_dataset: Dataset, tmp_path: Path) -> None:
    data = dataclasses.replace(tiny_dataset, validation=tiny_dataset.validation.cut(slice(0)))
    spec = CampaignSpec(splits=("validation",), samples=2)
    with pytest.raises(ConfigurationError, match="has no validation samples to attack"):
        Campaign.run(tmp_path / "run", spec, _model(), data)
    assert not (tmp_path / "run").exists()


def test_export_inside_the_campaign_and_of_nothing_are_refused(
    tiny_dataset: Dataset, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    Campaign.run(run, CampaignSpec(samples=2, unit_size=2), _model(), tiny_dataset)
    manifest = (run / "campaign.json").read_bytes()
    campaign = Campaign.open(run)
    with pytest.raises(CampaignError, match="inside the campaign"):
        campaign.export(tiny_dataset, run / "campaign.json")
    assert (run / "campaign.json").read_bytes() == manifest
    for unit in (run / "units").iterdir():
        unit.unlink()
    with pytest.raises(CampaignError):
        Campaign.open(run).export(tiny_dataset, tmp_path / "out.npz")
    assert not (tmp_path / "out.npz").exists()


def test_a_default_of_zero_is_shown_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["attack"], ["campaign", "run"]):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        shown = (
            "sample index in the split (default: 0)"
            if command == ["attack"]
            else ("seed of the random target rule and the stratified order (default: 0)")
        )
        assert shown in text


def test_data_other_than_mnist_needs_a_model_named(
    user_data: Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data", str(user_data.location)]
    assert main(["eval", *data, "--split", "test"]) == 2
    assert "is not MNIST: name the model with --model" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()
    assert main(["train", *data, "--epochs", "1"]) == 2
    assert "give --out" in capsys.readouterr().err
    checkpoint = tmp_path / "lenet.safetensors"
    assert main(["-q", "train", *data, "--epochs", "1", "--out", str(checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "validation" not in out  # the data has no validation split: no nan line
    assert main(["-q", "eval", *data, "--model", str(checkpoint), "--split", "test"]) == 0
    assert f"model:   the lenet of checkpoint {checkpoint.resolve()}, on cpu" in (
        capsys.readouterr().out
    )


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (np.array([b"a", b"b"]), ("a", "b")),  # was "b'a'"
        (np.array(["\x1b[31mred", "line\nbreak", "\u202eevil"]), ("\\x1b[31mred",
         "line\\nbreak", "\\u202eevil")),
    ],
)  # fmt: skip
def test_class_names_are_text_with_control_characters_escaped(
    names: np.ndarray, expected: tuple[str, ...], tmp_path: Path
) -> None:
    from jsma.data import load_data

    count = len(names) * 4
    labels = np.arange(count) % len(names)
    images = np.zeros((count, 1, 16, 16), np.uint8)
    np.savez(tmp_path / "d.npz", x=images, y=labels, class_names=names)
    data = load_data(tmp_path / "d.npz")
    assert data.class_names == expected
    assert all(ch.isprintable() for name in data.class_names for ch in name)
    assert ("escapes" in " ".join(data.notes)) == (names.dtype.kind == "U")


def test_hub_class_names_that_are_not_text_are_refused(tmp_path: Path) -> None:
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from jsma.data import load_data
    from jsma.errors import DataError

    features = {"label": {"names": [{"x": 1}, None, 3]}}
    table = pa.table({"image": [[0.0] * 4] * 6, "label": [0, 1, 2] * 2})
    metadata = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
    pq.write_table(table.replace_schema_metadata(metadata), tmp_path / "hub.parquet")
    with pytest.raises(DataError, match=r"class name 0 is \{'x': 1\}"):
        load_data(tmp_path / "hub.parquet")


class _Dropout(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3 * 16 * 16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.dropout(self.layer(x.flatten(1)), 0.5, training=True)


class _BatchStatistics(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3 * 16 * 16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.layer(x.flatten(1))
        return scores - scores.mean(dim=0, keepdim=True)


class _Double(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3 * 16 * 16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x.flatten(1)).double()  # float32 weights, float64 scores


@pytest.mark.parametrize(
    ("model", "message"),
    [(_Dropout(), "training mode"), (_BatchStatistics(), "training mode"),
     (_Double(), r"gives torch\.float64 scores for torch\.float32 inputs")],
)  # fmt: skip
def test_models_in_training_mode_or_float64_are_named(
    model: torch.nn.Module, message: str, user_data: Dataset
) -> None:
    from jsma.errors import ModelError
    from jsma.models import check_model_fits

    with pytest.raises(ModelError, match=message):
        check_model_fits(model, user_data)
    x, y = user_data.test.tensors(np.arange(2))
    if isinstance(model, _Double):  # the attack itself says it too, in one line
        with pytest.raises(InputTypeError, match=r"float64 scores for torch\.float32 inputs"):
            jsma.attack(model, x, (y + 1) % 4)


def test_status_shows_the_success_rate_and_says_what_is_timed(
    tiny_dataset: Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    Campaign.run(run, CampaignSpec(samples=4, unit_size=2), _model(), tiny_dataset)
    status = Campaign.open(run).status()
    succeeded = int(np.count_nonzero(Campaign.open(run).arrays().success))
    assert status.successes == succeeded
    assert main(["campaign", "status", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"success:    {succeeded / status.attacks_done:.2%} of the attacks done" in out
    assert "attacks/s of attack time" in out


def test_a_parquet_table_names_its_classes_in_a_column(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from jsma.data import load_data
    from jsma.errors import DataError

    labels = [0, 1, 2, 1, 0, 2]
    names = ["ant", "bee", "cow", "bee", "ant", "cow"]
    table = pa.table({"x": [[0.5] * 4] * 6, "label": labels, "class_name": names})
    pq.write_table(table, tmp_path / "t.parquet")
    assert load_data(tmp_path / "t.parquet").class_names == ("ant", "bee", "cow")
    conflicting = ["ant", "bee", "cow", "cow", "ant", "cow"]  # label 1 is bee, then cow
    pq.write_table(table.set_column(2, "class_name", pa.array(conflicting)), tmp_path / "u.parquet")
    with pytest.raises(DataError, match="label 1 has two class names, 'bee' and 'cow'"):
        load_data(tmp_path / "u.parquet")


@pytest.mark.slow
def test_campaigns_record_clean_accuracy_and_refuse_a_model_near_chance(
    forms: dict[str, Path], user_data: Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    from jsma.models import predict
    from tests.userdata import load_model, outside_source

    model = load_model(outside_source(str(forms["exported"])))
    x, y = user_data.test.tensors(np.arange(8))
    correct = int((predict(model, x) == y).sum())
    run = tmp_path / "run"
    brief = ["--targets", "random", "--max-distortion", "0.02"]  # the accuracy is what counts
    options = ["--data", str(user_data.location), "--samples", "8", "--unit-size", "4", *brief]
    assert (
        main(["-q", "campaign", "run", str(run), *options, "--model", str(forms["exported"])]) == 0
    )
    clean = Campaign.open(run).manifest.clean
    assert clean is not None
    assert (clean.correct, clean.samples) == (correct, 8)
    assert f"clean:      {correct / 8:.2%} of the 8 attacked samples" in capsys.readouterr().out

    # The same data with its class order changed (what an image folder's alphabetical
    # order does to a model trained on the .npz): refused before anything is written.
    shuffled = tmp_path / "shuffled.npz"
    with np.load(str(user_data.location)) as stored:
        arrays = {key: stored[key] for key in stored.files}
    for key in [k for k in arrays if k.startswith("y")]:
        arrays[key] = (arrays[key] + 1) % user_data.num_classes
    np.savez(shuffled, **arrays)
    other = ["--data", str(shuffled), "--samples", "8", "--model", str(forms["exported"]), *brief]
    assert main(["-q", "campaign", "run", str(tmp_path / "weak"), *other]) == 2
    assert "near chance (25.0% for 4 classes)" in capsys.readouterr().err
    assert not (tmp_path / "weak").exists()
    assert (
        main(["-q", "campaign", "run", str(tmp_path / "weak"), *other, "--allow-weak-model"]) == 0
    )
    shutil.rmtree(tmp_path / "weak")


def test_stratified_order_spans_the_classes_and_is_fixed(tmp_path: Path) -> None:
    labels = np.repeat(np.arange(4), 25)  # stored class by class, as image folders are
    spec = CampaignSpec(order="stratified", seed=3)
    order = spec.sample_indices("test", labels)
    assert sorted(order.tolist()) == list(range(100))
    for k in (1, 2, 7):
        assert np.bincount(labels[order[: 4 * k]], minlength=4).tolist() == [k] * 4
    assert np.array_equal(order, spec.sample_indices("test", labels))
    again = CampaignSpec(order="stratified", seed=4).sample_indices("test", labels)
    assert not np.array_equal(order, again)  # the seed decides
    assert CampaignSpec().sample_indices("test", labels).tolist() == list(range(100))
    # A default spec keeps the digest earlier campaigns' units were stamped with.
    assert CampaignSpec().digest() == CampaignSpec(order="first").digest()
    assert CampaignSpec(order="stratified").digest() != CampaignSpec().digest()


def test_a_stratified_campaign_attacks_the_samples_it_records(
    user_data: Dataset, forms: dict[str, Path], tmp_path: Path
) -> None:
    from tests.userdata import load_model, outside_source

    by_class = np.argsort(user_data.test.labels, kind="stable")
    data = dataclasses.replace(user_data, test=user_data.test.cut(by_class))
    model = load_model(outside_source(str(forms["exported"])))
    spec = CampaignSpec(samples=4, unit_size=2, order="stratified", targets="random")
    Campaign.run(tmp_path / "run", spec, model, data)
    rows = Campaign.open(tmp_path / "run").results().to_pydict()
    expected = spec.sample_indices("test", data.test.labels)[:4]
    assert rows["index"] == expected.tolist()
    assert sorted(rows["source"]) == [0, 1, 2, 3]  # the first 4 of the data are one class
    assert rows["source"] == data.test.labels[expected].tolist()


@pytest.mark.slow
def test_the_command_stratifies_data_other_than_mnist_by_default(
    user_data: Dataset, forms: dict[str, Path], tmp_path: Path
) -> None:
    options = ["--data", str(user_data.location), "--model", str(forms["exported"]),
               "--targets", "random", "--max-distortion", "0.02"]  # fmt: skip
    assert main(["-q", "campaign", "run", str(tmp_path / "a"), *options, "--samples", "4"]) == 0
    assert Campaign.open(tmp_path / "a").manifest.spec.order == "stratified"
    first = ["--samples", "4", "--order", "first"]
    assert main(["-q", "campaign", "run", str(tmp_path / "b"), *options, *first]) == 0
    assert Campaign.open(tmp_path / "b").manifest.spec.order == "first"


def test_the_same_weights_have_one_fingerprint_in_every_form(forms: dict[str, Path]) -> None:
    from jsma.models import model_fingerprint
    from tests.userdata import build_small_cnn, load_model, outside_source

    module = build_small_cnn()
    module.load_state_dict(torch.load(forms["weights"], weights_only=True))
    built = outside_source("tests.userdata:build_small_cnn", weights=forms["weights"])
    fingerprints = {
        "module": model_fingerprint(module),
        "builder": model_fingerprint(load_model(built)),
        **{
            form: model_fingerprint(load_model(outside_source(text)))
            for form, text in (
                ("exported", str(forms["exported"])),
                ("torchscript", str(forms["torchscript"])),
            )
        },
    }
    assert len(set(fingerprints.values())) == 1, fingerprints


def test_status_reads_footers_without_torch_and_agrees_with_the_full_read(
    tiny_dataset: Dataset, tmp_path: Path
) -> None:
    import subprocess
    import sys

    from jsma.campaign._status import glance

    run = tmp_path / "run"
    Campaign.run(run, CampaignSpec(samples=6, unit_size=2), _model(), tiny_dataset)
    next((run / "units").iterdir()).unlink()  # a unit lost: 2 of 3 done
    assert glance(run) == Campaign.open(run).status()
    code = (
        "import sys; from jsma.cli import main; main(['-q', 'campaign', 'status', sys.argv[1]]);"
        "print('torch loaded:', 'torch' in sys.modules)"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code, str(run)], capture_output=True, text=True, check=True
    )
    assert "units:      2 / 3" in shown.stdout
    assert "torch loaded: False" in shown.stdout
