"""Old import paths of modules made private in jsma 0.3, kept for one minor version.

`import jsma.campaign.manifest` still gives the module (now
`jsma.campaign._manifest`) with a `DeprecationWarning`; import the names from the
package instead (`from jsma.campaign import Manifest`). Removed in jsma 0.4.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import ModuleType

__all__ = ["install"]

MOVED: dict[str, str] = {
    "jsma.attacks.compat": "jsma.attacks._compat",
    "jsma.attacks.crafting": "jsma.attacks._crafting",
    "jsma.attacks.derivatives": "jsma.attacks._derivatives",
    "jsma.attacks.saliency": "jsma.attacks._saliency",
    "jsma.attacks.results": "jsma.attacks._results",
    "jsma.campaign.campaign": "jsma.campaign._campaign",
    "jsma.campaign.engines": "jsma.campaign._engines",
    "jsma.campaign.manifest": "jsma.campaign._manifest",
    "jsma.campaign.runner": "jsma.campaign._runner",
    "jsma.campaign.samples": "jsma.campaign._samples",
    "jsma.campaign.spec": "jsma.campaign._spec",
    "jsma.campaign.store": "jsma.campaign._store",
    "jsma.campaign.unit": "jsma.campaign._unit",
    "jsma.data.dataset": "jsma.data._dataset",
    "jsma.data.sources": "jsma.data._sources",
    "jsma.defenses.detection": "jsma.defenses._detection",
    "jsma.defenses.evaluation": "jsma.defenses._evaluation",
    "jsma.defenses.figures": "jsma.defenses._figures",
    "jsma.defenses.runs": "jsma.defenses._runs",
    "jsma.defenses.training": "jsma.defenses._training",
    "jsma.gan.checkpoint": "jsma.gan._checkpoint",
    "jsma.gan.networks": "jsma.gan._networks",
    "jsma.gan.quality": "jsma.gan._quality",
    "jsma.gan.runs": "jsma.gan._runs",
    "jsma.gan.training": "jsma.gan._training",
    "jsma.metrics.core": "jsma.metrics._core",
    "jsma.models.checkpoint": "jsma.models._checkpoint",
    "jsma.models.evaluation": "jsma.models._evaluation",
    "jsma.models.networks": "jsma.models._networks",
    "jsma.models.provenance": "jsma.models._reference",
    "jsma.models.registry": "jsma.models._registry",
    "jsma.models.training": "jsma.models._training",
    "jsma.report.figures": "jsma.report._figures",
    "jsma.report.summary": "jsma.report._summary",
    "jsma.report.writer": "jsma.report._writer",
    "jsma.study.analysis": "jsma.study._analysis",
    "jsma.study.design": "jsma.study._design",
    "jsma.study.figures": "jsma.study._figures",
    "jsma.study.store": "jsma.study._store",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(
        self, name: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name not in MOVED:
            return None
        return importlib.util.spec_from_loader(name, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = MOVED[spec.name]
        package = spec.name.rsplit(".", 1)[0]
        warnings.warn(
            f"{spec.name} is private since jsma 0.3 ({new}); import from {package} "
            "instead. The old path goes in jsma 0.4.",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(new)

    def exec_module(self, module: ModuleType) -> None:
        """The module is the moved one, already executed."""


def install() -> None:
    """Put the alias finder on `sys.meta_path` (once)."""
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.append(_Alias())
