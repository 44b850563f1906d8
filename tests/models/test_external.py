"""Models from outside jsma: a `.pt2` program, TorchScript, a builder and weights; the
same network in each form gives the same outputs and the same attack, crosses process
boundaries as its source, and is refused, with the reason, when it needs unpickling."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
import safetensors.torch
import torch

import jsma
from jsma.data import Dataset, load_data
from jsma.errors import ModelError
from jsma.models import ModelProvenance, ModelRef, check_model_fits
from jsma.models._external import SourcedModel, resolve_device
from tests.userdata import (
    build_small_cnn,
    load_model,
    outside_source,
)


def _sources(forms: dict[str, Path]) -> dict[str, ModelRef]:
    return {
        "exported": outside_source(str(forms["exported"])),
        "torchscript": outside_source(str(forms["torchscript"])),
        "builder": outside_source(
            "tests.userdata:build_small_cnn", weights=forms["weights"], arguments={"width": 8}
        ),
    }


def test_every_form_is_the_same_network(forms: dict[str, Path], user_data: Dataset) -> None:
    x, y = user_data.test.tensors()
    sources = _sources(forms)
    assert [s.form for s in sources.values()] == ["exported", "torchscript", "builder"]
    models = {name: load_model(source) for name, source in sources.items()}
    reference = models["builder"](x)
    assert reference.argmax(1).eq(y).float().mean() > 0.9  # it learned
    targets = (y + 1) % user_data.num_classes
    attacked = jsma.attack(models["builder"], x, targets)
    for name, model in models.items():
        assert not model.training
        check_model_fits(model, user_data, name=name)
        torch.testing.assert_close(model(x), reference, rtol=1e-5, atol=1e-5)
        result = jsma.attack(model, x, targets)
        assert torch.equal(result.adversarial, attacked.adversarial), name
        assert torch.equal(result.iterations, attacked.iterations), name


def test_a_sourced_model_pickles_as_its_source_and_files(
    forms: dict[str, Path], user_data: Dataset, tmp_path: Path
) -> None:
    x, _ = user_data.test.tensors()
    for name in ("exported", "torchscript", "weights"):
        shutil.copy(forms[name], tmp_path / forms[name].name)
    copies = {name: tmp_path / path.name for name, path in forms.items()}
    for source in _sources(copies).values():
        model = load_model(source)
        payload = pickle.dumps(model)
        for file in copies.values():
            file.rename(f"{file}.gone")  # a worker elsewhere has no such file
        try:
            back = pickle.loads(payload)
        finally:
            for file in copies.values():
                Path(f"{file}.gone").rename(file)
        assert isinstance(back, SourcedModel)
        assert back.source == model.source
        torch.testing.assert_close(back(x), model(x))


def test_provenance_says_where_the_model_came_from(forms: dict[str, Path]) -> None:
    source = outside_source(str(forms["exported"]), mean=(0.5,), std=(0.25,))
    provenance = ModelProvenance.of(load_model(source))
    assert provenance.origin == "source"
    assert provenance.source == source
    assert provenance.architecture == "model.pt2"
    assert "the exported program" in provenance.describe()
    assert "mean [0.5] and std [0.25]" in provenance.describe()


def test_normalisation_equals_a_model_that_normalises_itself(
    forms: dict[str, Path], user_data: Dataset
) -> None:
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    outside = load_model(outside_source(str(forms["exported"]), mean=mean, std=std))
    inner = load_model(outside_source(str(forms["exported"])))
    x, _y = user_data.test.tensors()
    written = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(outside(x), inner(written))


def test_weights_as_safetensors_and_nested_state_dicts(
    forms: dict[str, Path], user_data: Dataset, tmp_path: Path
) -> None:
    state = torch.load(forms["weights"], weights_only=True)
    safetensors.torch.save_file(state, tmp_path / "w.safetensors")
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "nested.pt")
    x, _ = user_data.test.tensors()
    expected = load_model(outside_source(str(forms["exported"])))(x)
    for weights in (tmp_path / "w.safetensors", tmp_path / "nested.pt"):
        model = load_model(outside_source("tests.userdata:build_small_cnn", weights=weights))
        torch.testing.assert_close(model(x), expected)


def test_what_needs_unpickling_is_refused(forms: dict[str, Path], tmp_path: Path) -> None:
    torch.save(build_small_cnn(), tmp_path / "whole.pt")  # a pickled module
    with pytest.raises(ModelError, match=r"never unpickles.*package.module:builder@"):
        ModelRef.parse(tmp_path / "whole.pt")
    with pytest.raises(ModelError, match="never unpickles"):
        ModelRef.parse(forms["weights"])  # a state dict given as the model
    (tmp_path / "odd.bin").write_bytes(b"\x80\x04 a legacy pickle")
    with pytest.raises(ModelError, match="a pickled object"):
        ModelRef.parse(tmp_path / "odd.bin")

    class Smuggled:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (print, ("ran",))

    torch.save({"weight": Smuggled()}, tmp_path / "evil.pt")
    source = outside_source("tests.userdata:build_small_cnn", weights=tmp_path / "evil.pt")
    with pytest.raises(ModelError, match="not a state dict that loads without unpickling"):
        load_model(source)


def test_bad_models_each_give_one_clear_error(
    forms: dict[str, Path], user_data: Dataset, tmp_path: Path
) -> None:
    with pytest.raises(ModelError, match=r"not a recipe .*, a file or directory that exists"):
        ModelRef.parse(tmp_path / "missing.pt2")
    with pytest.raises(ModelError, match="cannot import no_such_package"):
        load_model(outside_source("no_such_package.models:net"))
    with pytest.raises(ModelError, match=r"tests.userdata has no nothing_here"):
        load_model(outside_source("tests.userdata:nothing_here"))
    with pytest.raises(
        ModelError, match=r"do not fit tests.userdata:build_small_cnn.*size mismatch"
    ):
        load_model(
            outside_source(
                "tests.userdata:build_small_cnn", weights=forms["weights"], arguments={"width": 4}
            )
        )
    with pytest.raises(ModelError, match="give as many of each"):
        ModelRef.parse(forms["exported"], mean=(0.5, 0.5), std=(0.2,))
    with pytest.raises(ModelError, match="weights and builder arguments go with a builder"):
        ModelRef(form="exported", location=str(forms["exported"]), weights=str(forms["weights"]))
    with pytest.raises(ModelError, match="--normalize goes with a model from outside jsma"):
        ModelRef.parse("paper", mean=(0.5,), std=(0.5,))

    ten = load_model(outside_source("tests.userdata:build_small_cnn", arguments={"classes": 10}))
    with pytest.raises(ModelError, match="gives 10 class scores, the data has 4 classes"):
        check_model_fits(ten, user_data)
    flat = load_model(outside_source(str(forms["exported"])))
    features = load_data(_features_npz(tmp_path))
    with pytest.raises(ModelError, match=r"does not take this data's inputs, of shape \(64,\)"):
        check_model_fits(flat, features)

    single = torch.export.export(
        _sourced(load_model(outside_source(str(forms["exported"])))).network,
        (torch.zeros(1, 3, 16, 16),),
    )
    torch.export.save(single, tmp_path / "single.pt2")
    with pytest.raises(ModelError, match=r"takes one input at a time only.*dynamic batch"):
        check_model_fits(load_model(outside_source(str(tmp_path / "single.pt2"))), user_data)


def _features_npz(tmp_path: Path) -> Path:
    import numpy as np

    np.savez(tmp_path / "f.npz", x=np.zeros((4, 64), np.float32), y=np.arange(4) % 2)
    return tmp_path / "f.npz"


def test_a_builder_reads_as_a_python_call_with_its_weights(forms: dict[str, Path]) -> None:
    text = f"m.nets:wide(num_classes=10, shape=(3, 32, 32), name='wide', p=0.5)@{forms['weights']}"
    built = ModelRef.parse(text)
    assert (built.form, built.location) == ("builder", "m.nets:wide")
    assert built.arguments == {"num_classes": 10, "shape": (3, 32, 32), "name": "wide", "p": 0.5}
    assert built.weights == str(forms["weights"].resolve())
    assert ModelRef.parse(str(built)) == built  # the text reads back
    assert ModelRef.parse("m.nets:wide").arguments == {}
    for bad, why in (
        ("m:f(10)", "keywords"),
        ("m:f(k=open('x'))", "not a Python literal"),
        ("m:f(**k)", "keywords"),
        ("m:f@missing.pt", "weights file not found"),
    ):
        with pytest.raises(ModelError, match=why):
            ModelRef.parse(bad)


def test_every_form_parses_from_its_text(forms: dict[str, Path], tmp_path: Path) -> None:
    from jsma.models import pretrained, save_checkpoint

    paper = ModelRef.parse("paper")
    assert (paper.form, paper.runs_code, str(paper)) == ("recipe", False, "paper")
    loaded = pretrained("paper")
    save_checkpoint(tmp_path / "model.safetensors", loaded.model, loaded.info)
    checkpoint = ModelRef.parse(tmp_path / "model.safetensors")
    assert checkpoint.form == "checkpoint"
    assert not checkpoint.runs_code
    assert ModelRef.parse(tmp_path) == checkpoint  # a `jsma defend` output directory
    assert ModelRef.parse(forms["torchscript"]).form == "torchscript"
    assert ModelRef.parse(forms["exported"]).runs_code
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="not a `jsma defend` output"):
        ModelRef.parse(tmp_path / "empty")
    _, provenance = checkpoint.load()
    assert provenance.reference == checkpoint
    assert provenance.fingerprint == ModelRef.parse("paper").load().provenance.fingerprint


def test_devices() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == torch.device(expected)
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ModelError, match="unknown device 'tpu'"):
        resolve_device("tpu")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_sourced_model_on_cuda_pickles_to_cuda(
    forms: dict[str, Path], user_data: Dataset
) -> None:
    x, _ = user_data.test.tensors()
    on_cpu = load_model(outside_source(str(forms["exported"])))
    on_gpu = load_model(outside_source(str(forms["exported"])), device="cuda")
    torch.testing.assert_close(on_gpu(x.cuda()).cpu(), on_cpu(x), rtol=1e-4, atol=1e-4)
    back = pickle.loads(pickle.dumps(on_gpu))
    assert next(back.parameters()).device.type == "cuda"


def _sourced(model: torch.nn.Module) -> SourcedModel:
    assert isinstance(model, SourcedModel)
    return model
