"""Oracles: a model run without gradients, an ONNX file, a function, each read the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from jsma.blackbox import FunctionOracle, ModelOracle, OnnxOracle, OracleAnswer, OracleRef
from jsma.errors import ModelError, OracleError
from jsma.models import ModelRef
from tests.blackbox import oracle_functions
from tests.blackbox.conftest import CLASSES, queries, small_model


def test_scores_and_labels_are_read_from_raw_outputs() -> None:
    scores = np.array([[0.1, 0.9], [2.0, -1.0]], dtype=np.float64)
    answer = OracleAnswer.from_outputs(scores, 2, oracle="o")
    assert answer.labels.tolist() == [1, 0]
    assert answer.scores is not None
    assert answer.scores.dtype == np.float32
    assert answer.answered.all()
    assert OracleAnswer.from_outputs(np.array([[3], [1]]), 2, oracle="o").labels.tolist() == [3, 1]
    assert OracleAnswer.from_outputs(torch.tensor([4, 2]), 2, oracle="o").scores is None
    with pytest.raises(OracleError, match=r"o answered float64 values of shape \(3, 2\) for 2"):
        OracleAnswer.from_outputs(np.zeros((3, 2)), 2, oracle="o")
    with pytest.raises(OracleError, match="NaN or infinite"):
        OracleAnswer.from_outputs(np.array([[np.nan, 1.0]]), 1, oracle="o")


def test_a_model_oracle_answers_in_batches_without_gradients(model_oracle: ModelOracle) -> None:
    inputs = queries(37)
    answer = model_oracle.answer(inputs)
    with torch.no_grad():
        expected = small_model()(torch.from_numpy(inputs))
    assert answer.scores is not None
    assert answer.scores.shape == (37, CLASSES)
    np.testing.assert_allclose(answer.scores, expected.numpy(), atol=1e-5)
    assert answer.labels.tolist() == expected.argmax(1).tolist()
    with pytest.raises(OracleError, match="NaN or infinite"):
        model_oracle.answer(np.full((1, 1, 16, 16), np.inf, dtype=np.float32))


def test_an_onnx_oracle_gives_the_models_scores(onnx_file: Path) -> None:
    inputs = queries(40)
    oracle = OracleRef.parse(onnx_file).open(max_batch=7)
    assert isinstance(oracle, OnnxOracle)
    assert oracle.max_batch == 7
    answer = oracle.answer(inputs)
    expected = ModelOracle(small_model(), identity="m").answer(inputs)
    assert answer.labels.tolist() == expected.labels.tolist()
    np.testing.assert_allclose(answer.scores, expected.scores, atol=1e-5)  # type: ignore[arg-type]
    assert oracle.identity.startswith("onnx:")
    assert len(oracle.identity) == 5 + 64
    # Flat vectors of the same size are given the model's layout.
    assert oracle.answer(inputs.reshape(40, -1)).labels.tolist() == expected.labels.tolist()
    with pytest.raises(OracleError, match=r"takes inputs of shape \[None, 1, 16, 16\]"):
        oracle.answer(queries(2).reshape(2, -1)[:, :100])


def test_an_onnx_file_is_an_oracle_never_a_white_box_model(tmp_path: Path, onnx_file: Path) -> None:
    with pytest.raises(ModelError, match="gives no gradients; attack it as a black box"):
        ModelRef.parse(onnx_file)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(OracleError, match=r"garbage\.onnx: ONNX Runtime cannot load it"):
        OracleRef.parse(garbage).open()
    with pytest.raises(OracleError, match=r"absent\.onnx: ONNX model not found"):
        OracleRef.parse(tmp_path / "absent.onnx")


def test_a_function_oracle_is_named_and_called_in_batches() -> None:
    ref = OracleRef.parse("fn:tests.blackbox.oracle_functions:first_pixel_labels")
    assert ref.form == "function"
    assert ref.needs_naming
    assert str(OracleRef.parse(str(ref))) == str(ref)
    oracle = ref.open(max_batch=10)
    assert isinstance(oracle, FunctionOracle)
    oracle_functions.CALLS.clear()
    inputs = queries(25)
    answer = oracle.answer(inputs)
    assert oracle_functions.CALLS == [10, 10, 5]
    assert answer.scores is None
    assert answer.labels.tolist() == (inputs.reshape(25, -1)[:, 0] > 0.5).astype(int).tolist()
    with pytest.raises(OracleError, match=r"answered float64 values of shape \(3, 2, 2\)"):
        OracleRef.parse("fn:tests.blackbox.oracle_functions:wrong_shape").open().answer(queries(3))
    with pytest.raises(OracleError, match="is not callable"):
        OracleRef.parse("fn:tests.blackbox.oracle_functions:NOT_CALLABLE").open()
    with pytest.raises(OracleError, match="cannot import it"):
        OracleRef.parse("fn:tests.blackbox.no_such_module:f").open()


def test_oracle_references_parse_every_form_and_say_which_need_naming(onnx_file: Path) -> None:
    paper = OracleRef.parse("paper")
    assert paper.form == "model"
    assert paper.model is not None
    assert not paper.needs_naming
    onnx = OracleRef.parse(str(onnx_file))
    assert onnx.form == "onnx"
    assert not onnx.needs_naming
    assert str(onnx) == str(onnx_file)
    url = OracleRef.parse("https://models.example.com/v2/models/lenet/")
    assert url.form == "http"
    assert url.needs_naming
    assert str(url) == "https://models.example.com/v2/models/lenet"
    builder = OracleRef.parse("tests.blackbox.conftest:small_model")
    assert builder.form == "model"
    assert builder.needs_naming
    for bad in ("fn:nocolon", "fn:a.b:c:d"):
        with pytest.raises(Exception, match=r"fn:package\.module:name"):
            OracleRef.parse(bad)
    oracle = paper.open()
    assert isinstance(oracle, ModelOracle)
    assert oracle.identity.startswith("model:")


def test_normalisation_goes_with_an_outside_model_only(onnx_file: Path) -> None:
    ref = OracleRef.parse("tests.blackbox.conftest:small_model", mean=(0.5,), std=(0.25,))
    assert ref.model is not None
    assert ref.model.mean == (0.5,)
    for other in (str(onnx_file), "http://127.0.0.1:1/v2/models/m", "fn:a.b:c"):
        with pytest.raises(Exception, match="--normalize and --std go with a model jsma loads"):
            OracleRef.parse(other, mean=(0.5,), std=(0.25,))
