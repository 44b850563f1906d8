"""`Campaign`: the one noun for a campaign. Create, run, open, resume, and read its
status, results and samples, or export them; all through this class."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jsma.campaign._engines import Engine, InProcess
from jsma.campaign._manifest import MANIFEST_NAME, Manifest
from jsma.campaign._runner import opened, prepared, run_units
from jsma.campaign._spec import CampaignSpec
from jsma.campaign._status import CampaignStatus
from jsma.campaign._store import remove_stale_temporaries
from jsma.campaign._stored import StoredCampaign
from jsma.campaign.location import Folder, LocalFolder, folder_at
from jsma.data._dataset import Dataset
from jsma.errors import CampaignError
from jsma.models._reference import ModelLike, as_model

if TYPE_CHECKING:
    from jsma.models._reference import ModelProvenance

__all__ = ["Campaign", "CampaignRef"]

logger = logging.getLogger(__name__)


class Campaign(StoredCampaign):
    """A campaign in a directory or a bucket: every sample of its splits attacked
    towards its targets, one unit file at a time, resumably.

    Example:
        >>> spec = CampaignSpec(splits=("test",), samples=100)  # doctest: +SKIP
        >>> status = Campaign.run("runs/lenet", spec, model, load_mnist())  # doctest: +SKIP
        >>> campaign = Campaign.open("runs/lenet")  # doctest: +SKIP
        >>> campaign.status().complete, campaign.arrays().success.mean()  # doctest: +SKIP
        >>> samples = campaign.samples(load_mnist())  # doctest: +SKIP
    """

    @classmethod
    def open(cls, where: CampaignLike) -> Campaign:
        """The campaign at `where` (a path, a storage URI such as `s3://bucket/prefix`,
        a `Folder`, or a `Campaign`, returned as it is); a `CampaignError` if none."""
        if isinstance(where, Campaign):
            return where
        folder = folder_at(where)
        try:
            folder.check()
        except CampaignError:
            raise CampaignError(f"{folder}: not a directory, so not a campaign") from None
        manifest = Manifest.read(folder)
        if manifest is None:
            raise CampaignError(f"{folder}: no campaign here (no {MANIFEST_NAME})")
        return cls(folder, manifest)

    @classmethod
    def create(
        cls,
        where: str | os.PathLike[str] | Folder,
        spec: CampaignSpec,
        model: ModelLike,
        dataset: Dataset,
        *,
        provenance: ModelProvenance | None = None,
    ) -> Campaign:
        """The campaign of `spec` against `model` on `dataset` at `where`, its manifest
        written and no unit run (`run` runs them). A campaign already there must be
        this one, or the same with fewer samples (it is extended); else a
        `CampaignError` names what differs."""
        model, provenance = as_model(model, provenance, data=dataset)
        folder, asked = prepared(where, spec, model, dataset, provenance)
        with folder.lock():
            stored = opened(folder, asked)
        return cls(stored.folder, stored.manifest)

    @classmethod
    def run(
        cls,
        where: str | os.PathLike[str] | Folder,
        spec: CampaignSpec,
        model: ModelLike,
        dataset: Dataset,
        *,
        provenance: ModelProvenance | None = None,
        progress: bool = False,
        engine: Engine | None = None,
        refuse_near_chance: bool = False,
    ) -> CampaignStatus:
        """Run (or resume) the campaign of `spec` at `where`; its status at the end.

        `where` is a local path, a storage URI (`s3://bucket/prefix`, `gs://...`,
        `file:///...`) that `pyarrow.fs` opens, or a `Folder`. A new campaign gets a
        manifest; one already there must match the spec, the model and the data (or
        differ only by more samples), else a `CampaignError` says what differs. Units
        whose files are present and sound are skipped; the others are (re)done by
        `engine` (default: one after another in this process; `local_engine(N)` for
        N processes); the rows do not depend on the engine. `provenance` says where
        `model` came from (`jsma.models.ModelRef.load` gives it; default: the module
        alone); `model` may also be what names one (`"paper"`, a `jsma.models.ModelRef`,
        a file), loaded on the CPU with its provenance. The model's accuracy on the
        attacked samples is stored in the manifest; `refuse_near_chance`: a
        `CampaignError` before anything is written when it is near chance
        (`CleanAccuracy.near_chance`).
        """
        model, provenance = as_model(model, provenance, data=dataset)
        folder, asked = prepared(
            where, spec, model, dataset, provenance, refuse_near_chance=refuse_near_chance
        )
        with folder.lock():
            campaign = opened(folder, asked)
            if removed := remove_stale_temporaries(folder):
                logger.info("%s: removed %d temporary files of killed runs", folder, removed)
            return run_units(campaign, model, dataset, engine or InProcess(), progress=progress)

    def resume(
        self,
        model: ModelLike,
        dataset: Dataset,
        *,
        provenance: ModelProvenance | None = None,
        progress: bool = False,
        engine: Engine | None = None,
        refuse_near_chance: bool = False,
    ) -> CampaignStatus:
        """`run` this campaign's own spec again: the units not yet done."""
        return Campaign.run(
            self.folder, self.manifest.spec, model, dataset, provenance=provenance,
            progress=progress, engine=engine, refuse_near_chance=refuse_near_chance,
        )  # fmt: skip


CampaignLike = Campaign | str | os.PathLike[str] | Folder
"""What the functions that read a campaign take: the object, or where it is."""


@dataclass(frozen=True)
class CampaignRef:
    """A campaign as another record names it: where it is (an absolute path or a storage
    URI, never a path relative to where a command ran) and which it is (the digest of
    its settings, which an extension to more samples keeps among its earlier ones).
    Records of jsma 0.2 named a path alone: `digest` is empty, the path as they wrote it."""

    location: str
    digest: str = ""

    @classmethod
    def of(cls, campaign: CampaignLike) -> CampaignRef:
        """The reference to `campaign` (opened to read its digest)."""
        opened = Campaign.open(campaign)
        folder = opened.folder
        location = str(folder.path.resolve()) if isinstance(folder, LocalFolder) else str(folder)
        return cls(location=location, digest=opened.manifest.spec.digest())

    def open(self) -> Campaign:
        """The campaign; a `CampaignError` if the one found there is another."""
        campaign = Campaign.open(self.location)
        manifest = campaign.manifest
        if self.digest and self.digest not in (manifest.spec.digest(), *manifest.earlier_digests):
            raise CampaignError(
                f"{self.location}: not the campaign this record measured (its settings "
                "differ: was it run again with others?)"
            )
        return campaign
