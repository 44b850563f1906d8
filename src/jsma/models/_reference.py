"""Which model: `ModelRef` names one in any form a user can give, `ModelProvenance`
says what is known of one once loaded. Every command and library entry that takes a
model takes a `ModelRef` (or the text that parses into one), and loads it here.

The forms: a jsma recipe (`paper`, `default`: the packaged or cached LeNet), a jsma
checkpoint (safetensors and JSON: data), a `jsma defend` output directory (its
defended model), a `torch.export` program (`.pt2`, checked before torch reads it), a
TorchScript file, and a builder `package.module:callable(key=value, ...)@weights`
(your code, run because you named it). The last three are code: jsma loads them only
when the user names them in this very command or call, never because a stored record
(a campaign's manifest) does.
"""

from __future__ import annotations

import ast
import hashlib
import math
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
from torch import nn

from jsma.data._dataset import Dataset
from jsma.data._sources import default_cache_dir
from jsma.errors import ModelError
from jsma.models._checkpoint import LoadedModel, load_checkpoint
from jsma.models._evaluation import check_model_fits
from jsma.models._external import SourcedModel, file_form, load_outside, resolve_device
from jsma.models._training import cached_model, cached_model_path, get_recipe, pretrained
from jsma.paper import CLOSEST
from jsma.settings import RECIPE_NAMES

__all__ = ["ModelLike", "ModelProvenance", "ModelRef", "model_fingerprint"]

ModelForm = Literal["recipe", "checkpoint", "exported", "torchscript", "builder"]
OUTSIDE_FORMS = ("exported", "torchscript", "builder")  # code: loaded only when named
# A defended model inside a `jsma defend` output directory, in the order looked for.
_DEFENDED = ("model.safetensors", "student.safetensors")
_BUILDER = re.compile(
    r"(?P<callable>[A-Za-z_][\w.]*:[A-Za-z_]\w*)(?P<call>\(.*\))?(?:@(?P<weights>[^()]+))?",
    re.DOTALL,
)


@dataclass(frozen=True, kw_only=True)
class ModelRef:
    """A model, named: its `form`, and the recipe's name, the file (`location`, absolute)
    or the builder (`package.module:callable`, with its keyword `arguments` and its
    `weights` file); for a model from outside jsma, the input normalisation (`mean`,
    `std`: one value per channel or feature, or one for all) put in front of it, so the
    attack works in the data's own bounds.

    Example:
        >>> ref = ModelRef.parse("paper")  # the paper's LeNet, shipped with jsma
        >>> model, provenance = ref.load()
        >>> ModelRef.parse("torchvision.models:resnet18(num_classes=10)@w.safetensors",
        ...                mean=(0.5,), std=(0.25,))  # doctest: +SKIP
    """

    form: ModelForm
    location: str
    weights: str | None = None
    arguments: Mapping[str, Any] = field(default_factory=dict)
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std):
            raise ModelError(
                f"--normalize gives {len(self.mean)} means and --std {len(self.std)} values; "
                "give as many of each"
            )
        if any(not 0 < s < math.inf for s in self.std) or not all(map(math.isfinite, self.mean)):
            raise ModelError(
                f"--normalize and --std take finite values, --std positive ones; got mean "
                f"{list(self.mean)}, std {list(self.std)}"
            )
        if self.mean and self.form not in OUTSIDE_FORMS:
            raise ModelError(
                f"--normalize goes with a model from outside jsma; {self} takes the data as is"
            )
        if self.form == "builder" and _BUILDER.fullmatch(self.location) is None:
            raise ModelError(f"a builder is package.module:callable, got {self.location!r}")
        if self.form != "builder" and (self.weights is not None or self.arguments):
            raise ModelError("weights and builder arguments go with a builder")

    @classmethod
    def parse(
        cls,
        text: str | os.PathLike[str] | ModelRef,
        *,
        mean: Sequence[float] = (),
        std: Sequence[float] = (),
    ) -> ModelRef:
        """The model `text` names: a recipe (`paper`, `default`), a `jsma defend` output
        directory, a file (a jsma checkpoint, `.pt2` or TorchScript, told by its content,
        never unpickled) or a builder `package.module:callable(key=value, ...)@weights`
        (keyword arguments as Python literals; weights safetensors, or a state dict that
        loads without unpickling objects). `mean` and `std` normalise its inputs."""
        if isinstance(text, ModelRef):
            return text
        means, stds = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        text = str(text)
        if text in RECIPE_NAMES:
            return cls(form="recipe", location=text, mean=means, std=stds)
        path = Path(text)
        if path.is_dir():
            found = next((path / name for name in _DEFENDED if (path / name).is_file()), None)
            if found is None:
                raise ModelError(
                    f"{path}: a directory, but not a `jsma defend` output (no "
                    f"{' or '.join(_DEFENDED)} in it)"
                )
            path = found
        if path.suffix == ".onnx":
            raise ModelError(
                f"{path}: an ONNX model answers queries but gives no gradients; attack it "
                "as a black box (jsma blackbox ... --oracle FILE.onnx)"
            )
        if path.exists():
            form = file_form(path)
            return cls(form=form, location=str(path.resolve()), mean=means, std=stds)
        if (match := _BUILDER.fullmatch(text)) is None:
            recipes = ", ".join(RECIPE_NAMES)
            raise ModelError(
                f"--model {text!r}: not a recipe ({recipes}), a file or directory that exists, "
                "or a builder package.module:callable(key=value, ...)@weights"
            )
        weights = match["weights"]
        if weights is not None:
            if not Path(weights).is_file():
                raise ModelError(f"{weights}: weights file not found (--model {text})")
            weights = str(Path(weights).resolve())
        return cls(
            form="builder", location=match["callable"], weights=weights,
            arguments=_call_arguments(match["call"] or "()", text), mean=means, std=stds,
        )  # fmt: skip

    @staticmethod
    def is_reference(text: str) -> bool:
        """Whether `text` has the form of a reference (a recipe's name, a path that
        exists, a builder's call), read from the text alone: nothing is opened."""
        return text in RECIPE_NAMES or Path(text).exists() or bool(_BUILDER.fullmatch(text))

    @property
    def runs_code(self) -> bool:
        """Whether loading it runs code of its own (a program, TorchScript, a builder):
        loaded only when the user names it, never from a stored record."""
        return self.form in OUTSIDE_FORMS

    @property
    def architecture(self) -> str:
        """A short name: the builder's, the recipe's LeNet, else the file's."""
        if self.form == "builder":
            return self.location.rpartition(":")[2]
        return "lenet" if self.form == "recipe" else Path(self.location).name

    def files(self) -> list[str]:
        """The files this model is read from."""
        if self.form == "builder":
            return [self.weights] if self.weights else []
        return [] if self.form == "recipe" else [self.location]

    def __str__(self) -> str:
        """The text `parse` reads back into this reference (without the normalisation)."""
        if self.form != "builder":
            return self.location
        call = ", ".join(f"{key}={value!r}" for key, value in self.arguments.items())
        text = f"{self.location}({call})" if call else self.location
        return f"{text}@{self.weights}" if self.weights else text

    def options(self) -> str:
        """The command-line options that name this model again (`--model ...`)."""
        words = ["--model", str(self)]
        if self.mean:
            words += ["--normalize", *map(str, self.mean), "--std", *map(str, self.std)]
        return shlex.join(words)

    def describe(self) -> str:
        """In words: which model this is."""
        if self.form == "builder":
            arguments = ", ".join(f"{k}={v!r}" for k, v in self.arguments.items())
            weights = f" with weights {self.weights}" if self.weights else " (its own weights)"
            text = f"{self.location}({arguments}){weights}"
        else:
            kind = {
                "recipe": "the LeNet of recipe", "checkpoint": "the jsma checkpoint",
                "exported": "the exported program", "torchscript": "the TorchScript file",
            }[self.form]  # fmt: skip
            text = f"{kind} {self.location}"
        if self.mean:
            text += f", inputs normalised by mean {list(self.mean)} and std {list(self.std)}"
        return text

    def load(
        self,
        device: str | torch.device = "cpu",
        *,
        data: Dataset | None = None,
        cache_dir: Path | None = None,
        progress: bool = False,
    ) -> LoadedRef:
        """The model, in eval mode on `device`, and where it came from.

        With `data`, the model is checked against it (one score per class, batches,
        finite values) and a recipe's LeNet is the one cached for that data (trained
        now, and cached in `cache_dir`, when neither the cache nor the package has it);
        without, a recipe's LeNet is the cached or the packaged MNIST one.
        """
        target = resolve_device(device)
        if self.runs_code:
            model: nn.Module = load_outside(self, target)
            provenance = ModelProvenance.of(model)
        else:
            loaded, provenance = self.jsma_checkpoint(
                data=data, cache_dir=cache_dir, progress=progress
            )
            model = loaded.model
        model = model.to(target).eval()
        if data is not None:
            check_model_fits(model, data, name=f"--model {self}")
        return LoadedRef(model, provenance)

    def jsma_checkpoint(
        self, *, data: Dataset | None = None, cache_dir: Path | None = None, progress: bool = False
    ) -> tuple[LoadedModel, ModelProvenance]:
        """A jsma model (a recipe's or a checkpoint's, on the CPU) with what its checkpoint
        says (its training recipe, for the commands that train it again), and where it
        came from; `load` says what `data` and `cache_dir` do."""
        if self.form == "recipe":
            loaded = _recipe_model(self.location, data, cache_dir, progress)
            return loaded, checkpoint_provenance(loaded, recipe=self.location)
        if self.form == "checkpoint":
            loaded = load_checkpoint(Path(self.location))
            return loaded, checkpoint_provenance(loaded, checkpoint=self.location)
        raise ModelError(
            f"--model {self}: this needs one of jsma's own models (paper, default, a jsma "
            "checkpoint or a defense's output), whose training recipe it reads"
        )


class LoadedRef(NamedTuple):
    """A loaded model and where it came from (unpacks as `model, provenance`)."""

    model: nn.Module
    provenance: ModelProvenance


ModelLike = nn.Module | ModelRef | str | os.PathLike[str]
"""What a library entry that takes a model takes: a module, or what names one."""


def as_model(
    model: ModelLike,
    provenance: ModelProvenance | None = None,
    *,
    data: Dataset | None = None,
    cache_dir: Path | None = None,
) -> tuple[nn.Module, ModelProvenance | None]:
    """A module as it is, with `provenance` as given (its fingerprint is computed where
    it is used, once), or the model a reference names, loaded on the CPU, checked
    against `data`, with its provenance."""
    if isinstance(model, nn.Module):
        return model, provenance
    if provenance is not None:
        raise ModelError("a provenance goes with a module; a reference says its own")
    return ModelRef.parse(model).load(data=data, cache_dir=cache_dir)


def _call_arguments(call: str, text: str) -> dict[str, Any]:
    """`(key=value, ...)` as keyword arguments, each value a Python literal."""
    try:
        tree = ast.parse(f"f{call}", mode="eval").body
    except SyntaxError:
        tree = None
    if not isinstance(tree, ast.Call) or tree.args or any(k.arg is None for k in tree.keywords):
        raise ModelError(
            f"--model {text!r}: a builder's arguments are keywords, (key=value, ...), each "
            "value a Python literal"
        )
    arguments = {}
    for keyword in tree.keywords:
        try:
            arguments[str(keyword.arg)] = ast.literal_eval(keyword.value)
        except ValueError:
            raise ModelError(
                f"--model {text!r}: {keyword.arg}= is not a Python literal (a number, text in "
                "quotes, True, None, a tuple...)"
            ) from None
    return arguments


def _recipe_model(
    recipe: str, data: Dataset | None, cache_dir: Path | None, progress: bool
) -> LoadedModel:
    cache = cache_dir if cache_dir is not None else default_cache_dir()
    if data is not None:
        return cached_model(data, cache, recipe, progress=progress)
    cached = cached_model_path(cache, get_recipe(recipe).name)
    return load_checkpoint(cached) if cached.is_file() else pretrained(recipe)


def checkpoint_provenance(
    loaded: LoadedModel, *, recipe: str | None = None, checkpoint: str | None = None
) -> ModelProvenance:
    """Where a jsma model came from (the recipe of the cache, or the checkpoint file),
    with what its checkpoint says."""
    training = loaded.info.recipe.get("name")
    return ModelProvenance.of(
        loaded.model,
        architecture=loaded.info.spec.architecture,
        recipe=recipe,
        checkpoint=checkpoint,
        training=None if training is None else str(training),
        accuracies=dict(loaded.info.accuracies),
        defense=dict(loaded.info.defense),
    )


# --- what is known of a loaded model -----------------------------------------------

Origin = Literal["recipe", "checkpoint", "source", "module"]


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's parameters and buffers by name; a model loaded from outside jsma is
    named as its network is (with its normalisation, if any), so that the same weights
    have one fingerprint whether given as a module, a builder, a program or TorchScript."""
    if not isinstance(model, SourcedModel):
        return dict(model.state_dict())
    state = dict(model.network.state_dict())
    if model.normalization is not None:
        state |= {f"normalization.{k}": v for k, v in model.normalization.state_dict().items()}
    return state


def model_fingerprint(model: nn.Module) -> str:
    """SHA-256 of the model's parameters and buffers: names, dtypes, shapes, values."""
    digest = hashlib.sha256()
    for name, tensor in sorted(_weights(model).items()):
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)};".encode())
        # reshape: a 0-dim tensor (batch norm's step count) has no byte view of its own.
        digest.update(
            value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b""
        )
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelProvenance:
    """How a model was obtained and what is known of it.

    `fingerprint` (of its weights) is what resuming a campaign checks; the rest
    describes: the jsma `recipe` of the model cache it came from, or the
    `checkpoint` file; its `architecture`; the recipe it was `trained` with; its
    `accuracies` per split; how a defended model was made (`defense`); and `notes`,
    anything else its maker said (free form). A model from outside jsma (an exported
    program, TorchScript, a builder and weights) has its `source`, which names it again.
    """

    fingerprint: str
    architecture: str = "model"
    recipe: str | None = None
    checkpoint: str | None = None
    training: str | None = None
    accuracies: dict[str, float] = field(default_factory=dict)
    defense: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    source: ModelRef | None = None

    @classmethod
    def of(cls, model: nn.Module, **facts: Any) -> ModelProvenance:
        """The provenance of `model` (its fingerprint computed here) with `facts`; the
        architecture defaults to the module's class name."""
        if isinstance(model, SourcedModel):
            facts.setdefault("source", model.source)
            facts.setdefault("architecture", model.source.architecture)
        facts.setdefault("architecture", type(model).__name__.lower())
        return cls(fingerprint=model_fingerprint(model), **facts)

    @property
    def origin(self) -> Origin:
        if self.recipe is not None:
            return "recipe"
        if self.checkpoint is not None:
            return "checkpoint"
        return "source" if self.source is not None else "module"

    @property
    def reference(self) -> ModelRef | None:
        """The reference that loads this model again (None for a module given as is)."""
        if self.recipe is not None:
            return ModelRef(form="recipe", location=self.recipe)
        if self.checkpoint is not None:
            return ModelRef(form="checkpoint", location=self.checkpoint)
        return self.source

    @property
    def is_paper_setting(self) -> bool:
        """The LeNet of the recipe closest to the paper's figures (`jsma.paper.CLOSEST`),
        as `jsma replicate` trains (or ships) it by default."""
        return self.recipe == CLOSEST.recipe and self.architecture == "lenet"

    def describe(self) -> str:
        """In words, for the report: which model this is."""
        if self.origin == "recipe":
            return f"the {self.architecture} of recipe '{self.recipe}'"
        if self.origin == "checkpoint":
            return f"the {self.architecture} of checkpoint {self.checkpoint}"
        if self.source is not None:
            return self.source.describe()
        return f"a {self.architecture} given as a module (fingerprint {self.fingerprint[:12]})"

    @classmethod
    def from_description(cls, fingerprint: str, about: Mapping[str, Any]) -> ModelProvenance:
        """The provenance a free-form description (manifests of format 2 and 3, that is
        jsma 0.1.0 and 0.2.0) gives: known keys become fields, the others notes."""
        about = dict(about)

        def text(key: str) -> str | None:
            value = about.pop(key, None)
            return None if value is None else str(value)

        accuracies = about.pop("accuracies", None) or {}
        defense = about.pop("defense", None) or {}
        return cls(
            fingerprint=fingerprint,
            architecture=text("architecture") or "model",
            recipe=text("recipe"),
            checkpoint=text("checkpoint"),
            training=text("training"),
            accuracies={str(k): float(v) for k, v in dict(accuracies).items()},
            defense=dict(defense),
            notes=about,
        )
