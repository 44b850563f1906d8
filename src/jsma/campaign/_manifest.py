"""The campaign manifest: what a campaign attacks, with what, checked on every open.

`campaign.json` is plain JSON for people and other tools. jsma reads it into a
frozen `Manifest` and trusts it only after these checks, each failing with a
`CampaignError` that says what differs:

- every field is present and of its type;
- the spec matches the spec digest stamped on every unit file;
- the unit list is the one the spec plans over the stored split sizes;
- the whole content matches the manifest's own digest (an edit by hand).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from jsma._records import decode, encode, loads_json, record_differences
from jsma._version import __version__
from jsma.campaign._spec import CampaignSpec, WorkUnit
from jsma.campaign._status import MANIFEST_NAME, CleanAccuracy, manifest_digest
from jsma.campaign.location import Folder
from jsma.data._reference import DataRef
from jsma.errors import CampaignError
from jsma.models._reference import ModelProvenance

__all__ = ["DataRecord", "Manifest"]

logger = logging.getLogger(__name__)

# 2: 0.1.0; 3: 0.2.0, `unit_digests`, the spec digests a unit file may carry (a campaign
# extended to more samples keeps the units it had); 4: the header's kind, the model's
# provenance typed (a free-form description before); 5: the model's `source` (a model
# from outside jsma) and the data's `location` and `class_names` (other data than MNIST);
# 6: the attack's `saliency` and `search_domain`, and unit files with `trajectory_moved`
# (a jsma that reads only up to 5 would take them for damaged and redo them).
_FORMAT, _KIND = 6, "campaign"
_READABLE = (2, 3, 4, 5, 6)
_FIELDS = frozenset(
    ("spec", "spec_digest", "model", "data", "units", "attacks_total", "versions", "created")
) | {"digest"}


# jsma 0.2.0's name for the model's description, kept for code that imported it.
@dataclass(frozen=True)
class DataRecord:
    """The attacked data: fingerprint, origin, shape, bounds and split sizes; where to
    read it again (`location`, for `jsma.data.load_data`; None before format 5: MNIST)
    and its class names, if it has them."""

    fingerprint: str
    source: str
    num_classes: int
    input_shape: tuple[int, ...]
    bounds: tuple[float, float]
    split_sizes: Mapping[str, int]
    location: str | None = None
    class_names: tuple[str, ...] | None = None

    @property
    def reference(self) -> DataRef:
        """The reference that reads this data again (MNIST where no location is stored)."""
        if self.location in (None, "mnist"):
            return DataRef.parse("mnist")
        return DataRef.parse(self.location, bounds=self.bounds)


@dataclass(frozen=True)
class Manifest:
    """A campaign's identity: spec, model, data, and the units they plan."""

    spec: CampaignSpec
    model: ModelProvenance
    data: DataRecord
    versions: Mapping[str, str] = field(default_factory=dict)
    created: str = ""
    # Earlier specs' digests whose unit files still hold (before `extended`): empty for
    # a campaign never extended.
    earlier_digests: tuple[str, ...] = ()
    clean: CleanAccuracy | None = None

    @classmethod
    def new(
        cls,
        spec: CampaignSpec,
        model: ModelProvenance,
        data: DataRecord,
        clean: CleanAccuracy | None = None,
    ) -> Manifest:
        created = datetime.datetime.now(datetime.UTC).isoformat()
        return cls(spec, model, data, _versions(), created, clean=clean)

    def extended(self, samples: int | None, clean: CleanAccuracy | None = None) -> Manifest:
        """This campaign with more samples of each split (None: all): the units it had
        stay valid, the new ones are planned after them; `clean`, the model's accuracy on
        them all."""
        spec = dataclasses.replace(self.spec, samples=samples)
        earlier = (self.spec.digest(), *self.earlier_digests)
        return dataclasses.replace(
            self, spec=spec, versions=_versions(), earlier_digests=earlier, clean=clean
        )

    @property
    def units(self) -> list[WorkUnit]:
        return self.spec.plan(self.data.split_sizes)

    @property
    def attacks_per_unit(self) -> dict[str, int]:
        per_sample = self.spec.attacks_per_sample(self.data.num_classes)
        return {unit.name: (unit.stop - unit.start) * per_sample for unit in self.units}

    @property
    def attacks_total(self) -> int:
        return sum(self.attacks_per_unit.values())

    def to_json(self) -> dict[str, Any]:
        attacks = self.attacks_per_unit
        # fmt: off
        content = {
            "format": _FORMAT,
            "kind": _KIND,
            "spec": self.spec.to_json(),
            "spec_digest": self.spec.digest(),
            "model": encode(self.model),
            "data": encode(self.data),
            # Derived from the spec and the split sizes; written for other tools, checked on read.
            "units": [
                {"name": u.name, "split": u.split, "start": u.start, "stop": u.stop,
                 "attacks": attacks[u.name]}
                for u in self.units
            ],
            "attacks_total": self.attacks_total,
            "versions": dict(self.versions),
            "created": self.created,
            "unit_digests": [self.spec.digest(), *self.earlier_digests],
            # Optional: a reader that does not know it (jsma 0.3) ignores it.
            **({} if self.clean is None else {"clean_accuracy": encode(self.clean)}),
        }
        # fmt: on
        return {**content, "digest": manifest_digest(content)}

    def write(self, folder: Folder) -> None:
        folder.write(MANIFEST_NAME, json.dumps(self.to_json(), indent=2).encode())

    @classmethod
    def read(cls, folder: Folder) -> Manifest | None:
        """The checked manifest of `folder`, or None when there is no campaign there."""
        path = f"{folder}/{MANIFEST_NAME}"
        try:
            data = folder.read(MANIFEST_NAME)
            if data is None:
                return None
            content = loads_json(data.decode("utf-8"))
        except (OSError, ValueError) as error:
            raise CampaignError(f"{path}: unreadable campaign manifest ({error})") from error
        if not isinstance(content, dict):
            raise CampaignError(f"{path}: a campaign manifest is a JSON object")
        if content.get("format") == _FORMAT and content.get("kind") != _KIND:
            raise CampaignError(f"{path}: not a campaign manifest (kind {content.get('kind')!r})")
        if content.get("format") not in _READABLE:
            raise CampaignError(
                f"{path}: manifest format {content.get('format')!r}; this jsma reads formats "
                f"{', '.join(map(str, _READABLE))} (campaigns made before them have no digest: "
                "rerun them)"
            )
        missing = sorted(_FIELDS - content.keys())
        if missing:
            raise CampaignError(f"{path}: damaged campaign manifest (missing field {missing[0]!r})")
        try:
            manifest = cls._from_json(content)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            what = f"missing field {error}" if isinstance(error, KeyError) else str(error)
            raise CampaignError(f"{path}: damaged campaign manifest ({what})") from error
        manifest._check(content, path)
        return manifest

    @classmethod
    def _from_json(cls, content: dict[str, Any]) -> Manifest:
        if content["format"] >= 4:
            model = decode(ModelProvenance, content["model"], "model")
        else:  # a free-form description beside the fingerprint
            about = dict(_typed(content["model"], dict, "model"))
            fingerprint = _typed(about.pop("fingerprint"), str, "model.fingerprint")
            model = ModelProvenance.from_description(fingerprint, about)
        return cls(
            spec=CampaignSpec.from_json(_typed(content["spec"], dict, "spec")),
            model=model,
            data=decode(DataRecord, content["data"], "data"),
            versions=_typed(content["versions"], dict, "versions"),
            created=_typed(content["created"], str, "created"),
            earlier_digests=tuple(
                _typed(d, str, "unit_digests")
                for d in _typed(content.get("unit_digests", []), list, "unit_digests")[1:]
            ),
            clean=None
            if content.get("clean_accuracy") is None
            else decode(CleanAccuracy, content["clean_accuracy"], "clean_accuracy"),
        )

    def _check(self, content: dict[str, Any], path: str) -> None:
        """Everything the stored text claims must be what its parts imply."""
        if content["spec_digest"] != self.spec.digest():
            raise CampaignError(
                f"{path}: the spec was edited: it no longer matches the digest "
                f"{content['spec_digest']!r} its units were made with (now {self.spec.digest()!r})"
            )
        digests = content.get("unit_digests", [self.spec.digest()])
        if not isinstance(digests, list) or digests[:1] != [self.spec.digest()]:
            raise CampaignError(f"{path}: unit_digests must begin with the spec's digest")
        listed = content["units"] if isinstance(content["units"], list) else []
        stored = [u.get("name") if isinstance(u, dict) else u for u in listed]
        planned = [u.name for u in self.units]
        if stored != planned:
            missing = sorted(set(planned) - set(map(str, stored)))
            extra = sorted(set(map(str, stored)) - set(planned))
            raise CampaignError(
                f"{path}: the unit list is not the spec's plan ({len(stored)} listed, "
                f"{len(planned)} planned; missing {missing[:3]}, unexpected {extra[:3]})"
            )
        if content.get("digest") != manifest_digest(
            {k: v for k, v in content.items() if k != "digest"}
        ):
            implied = self.to_json()
            derived = [k for k in ("units", "attacks_total") if content[k] != implied[k]]
            detail = f": {', '.join(derived)} no longer what the spec implies" if derived else ""
            raise CampaignError(
                f"{path}: the manifest was edited after it was written (its content no longer "
                f"matches its digest{detail}); restore it, or start a new directory"
            )


def spec_differences(stored: CampaignSpec, asked: CampaignSpec) -> list[str]:
    """`field: stored X, asked Y` for each field where two specs differ."""
    return record_differences(stored.to_json(), asked.to_json())


def _typed(value: Any, kind: type | tuple[type, ...], name: str) -> Any:
    # bool is an int to Python, never to a manifest.
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError(f"{name} has the wrong type: {value!r}")
    return value


def _versions() -> dict[str, str]:
    return {"jsma": __version__, "torch": torch.__version__, "python": platform.python_version()}
