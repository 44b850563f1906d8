"""An MLServer runtime that serves an ONNX file (exported by jsma) with ONNX Runtime, for
the tests of the inference-server oracle. It counts on the server's side: each input it
receives is appended (its SHA-256) to the file named by JSMA_SERVER_COUNT_FILE, made
durable before the answer goes back, so a test can check that no query was sent twice
and that the budget held, whatever the client did.

Runs inside the server's own environment (scripts/server-env), not jsma's.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import onnxruntime
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxModel(MLModel):
    async def load(self) -> bool:
        path = self.settings.parameters.uri
        self._session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._count_file = os.environ.get("JSMA_SERVER_COUNT_FILE")
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        inputs = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32)
        if self._count_file:
            shape = repr(inputs.shape[1:]).encode()
            lines = "".join(
                hashlib.sha256(shape + row.tobytes()).hexdigest() + "\n"
                for row in inputs.astype("<f4")
            )
            with open(self._count_file, "a") as handle:
                handle.write(lines)
                handle.flush()
                os.fsync(handle.fileno())
        (scores,) = self._session.run(None, {self._input: inputs})
        return InferenceResponse(
            model_name=self.name, outputs=[NumpyCodec.encode_output("scores", scores)]
        )
