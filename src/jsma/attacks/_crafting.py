"""Crafting adversarial samples: Algorithm 1 (single features) and Algorithm 2
(pairs of features, the paper's DNN variant), batched.

Every sample of a batch stops on its own; finished samples leave the working
batch, so they cost nothing more.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from jsma.attacks._checks import (
    Bound,
    bound,
    check_binary,
    check_input,
    check_labels,
    check_mask,
    check_settings,
    checked_bounds,
    checked_targets,
)
from jsma.attacks._derivatives import (
    Output,
    TargetDerivatives,
    check_finite,
    check_logits,
    target_derivatives,
)
from jsma.attacks._pair_search import PairChoice, select_pair
from jsma.attacks._results import AttackResult, SampleResult, StopReason
from jsma.attacks._steps import choose
from jsma.context import frozen_eval
from jsma.errors import ConfigurationError, ModelError
from jsma.settings import (
    DEFAULT_THETA,
    PAPER_MAX_DISTORTION,
    Direction,
    Saliency,
    SearchDomain,
    Variant,
    direction_of,
)

__all__ = ["JSMA", "AttackResult", "AttackSettings", "SampleResult", "StopReason"]

logger = logging.getLogger(__name__)


class PairSearch(Protocol):
    """Picks each sample's pair: (batch, M) alpha, beta and domain in, a `PairChoice` out."""

    def __call__(
        self, alpha: torch.Tensor, beta: torch.Tensor, domain: torch.Tensor, *, increasing: bool
    ) -> PairChoice: ...


@dataclass(frozen=True, kw_only=True)
class AttackSettings:
    """JSMA's hyper-parameters, the one description of them: what `JSMA` is configured
    with, and what a campaign stores (the bounds come from the campaign's data).

    `theta`: change per step (> 0 raises features with the map S+, < 0 lowers
    them with S-); `max_distortion`: the budget Upsilon, a fraction of the
    features; `variant`: features per step (`pairs`, the paper's choice for
    DNNs, or `single`); `output`: what is differentiated (`logits` or the softmax
    `probabilities`); `saliency`: how the derivatives are scored (`jsma`, the
    paper's; `wjsma` and `tjsma`, Combey et al. 2020, see `JSMA`);
    `search_domain`: where the search starts (`unsaturated`, or `all`, the
    paper's Algorithm 2 literally, see `JSMA`); `binary`: the features are
    binary, each at one of its bounds, and a change flips it (see `JSMA`).
    """

    theta: float = DEFAULT_THETA
    max_distortion: float = PAPER_MAX_DISTORTION
    variant: Variant = "pairs"
    output: Output = "logits"
    saliency: Saliency = "jsma"
    search_domain: SearchDomain = "unsaturated"
    binary: bool = False

    def __post_init__(self) -> None:
        check_settings(
            self.theta, self.max_distortion, self.variant, self.output, self.saliency,
            self.search_domain,
        )  # fmt: skip

    @property
    def increasing(self) -> bool:
        return self.theta > 0

    @property
    def direction(self) -> Direction:
        return direction_of(self.theta, self.variant)

    @property
    def features_per_step(self) -> int:
        return 1 if self.variant == "single" else 2

    def max_iterations(self, num_features: int) -> int:
        """floor(M * max_distortion / k): the paper's iteration cap (Algorithm 2)."""
        return math.floor(num_features * self.max_distortion / self.features_per_step + 1e-9)

    def attack(self, bounds: tuple[Bound, Bound] = (0.0, 1.0)) -> JSMA:
        """The attack with these settings, clipping features to `bounds`."""
        return JSMA(**self.to_json(), clip_min=bounds[0], clip_max=bounds[1])

    def to_json(self) -> dict[str, Any]:
        return {
            "theta": self.theta,
            "max_distortion": self.max_distortion,
            "variant": self.variant,
            "output": self.output,
            "saliency": self.saliency,
            "search_domain": self.search_domain,
            "binary": self.binary,
        }


@dataclass(frozen=True, kw_only=True, eq=False)
class JSMA(AttackSettings):
    """The Jacobian-based Saliency Map Attack, configured once, called per batch.

    Papernot et al., EuroS&P 2016: Algorithm 2 with the pair search of
    Algorithm 3 (`variant="pairs"`, the paper's choice for DNNs) or Algorithm 1
    with one feature per step (`variant="single"`). Each step changes the
    chosen features by `theta` (clipped to the bounds): theta > 0 uses the
    increasing map S+, theta < 0 the decreasing map S-. A sample stops when it
    reaches its target, after floor(M * max_distortion / k) steps of k
    features (M = number of input features, every element of the input), when
    its search domain is exhausted, or when nothing is admissible.

    The search domain Gamma starts as the features not yet at their bound in
    the direction of theta (`search_domain="unsaturated"`, as cleverhans), or
    as every feature (`"all"`, the paper's Algorithm 2 as written: a feature
    already at its bound can be picked; it stays as it is, leaves Gamma and
    still costs its iteration). A feature leaves Gamma once it reaches its bound.

    Saliency (Combey et al., "Probabilistic Jacobian-based Saliency Maps
    Attacks", 2020, and their code, github.com/probabilistic-jsmas): with
    alpha_i = dF_t/dx_i, p = softmax(Z(X*)) held constant at each step,
    - `jsma`: beta_i = sum over j != t of dF_j/dx_i (the paper's);
    - `wjsma`: beta_i = sum over j != t of p_j dF_j/dx_i, so classes the
      model already doubts count for little;
    - `tjsma`: the WJSMA terms, each multiplied by the feature's room to move,
      r_i = clip_max_i - x_i when increasing and x_i - clip_min_i when
      decreasing (the authors' code uses 1 - x_i in both directions; their
      experiments increase on [0, 1], where the two agree).
    The maps, the pair conditions and the search are then the paper's. Like
    the authors' code, F is the logits by default; `output="probabilities"`
    takes every derivative of the softmax instead. Untargeted, the source
    plays the target's part with the roles swapped (the weighted others up).

    `variant="maximal"` is M-JSMA (Wiyatno and Xu, "Maximal Jacobian-based
    Saliency Map Attack", 2018), untargeted: each step weighs every class t
    and both directions. For t other than the source s, a pair that raises
    F_t (increasing: alpha_t > 0, beta_t < 0; decreasing: alpha_t < 0,
    beta_t > 0); for s, one that lowers it (the roles of alpha_s and beta_s
    swapped). The pair, class and direction of the highest score -alpha *
    beta win (ties: the smallest class, increasing first, the smallest pair),
    its two features move by theta in that direction, and each feature is
    changed at most once. It needs the full Jacobian (one backward pass over
    `classes` copies of the batch) and `classes` pair searches per direction.
    Combey et al.'s public code (github.com/probabilistic-jsmas) has the same
    rule; `saliency="wjsma"`/`"tjsma"` weight it as above (their maximal WJSMA).

    Constraints beyond the bounds: a call's `mask` keeps the features it
    marks False out of the search (features a malware detector's input must
    keep, pixels outside a patch); `binary=True` is the setting of Grosse et
    al. 2017 (malware detectors on binary features): every feature must be at
    one of its bounds and |theta| must span them, so a change flips a feature
    (theta > 0 adds, theta < 0 removes) and the result stays binary.

    The hyper-parameters are those of `AttackSettings`; `clip_min` and
    `clip_max` bound every feature (numbers, or tensors broadcast to the input).
    Distance measure: L0, the share of features changed (`distortion`, in %).
    Shapes: x (batch, *input_shape) within [clip_min, clip_max]; targets
    (batch,) class indices, or None for an untargeted attack (push the source
    class down and the others up, until the prediction leaves the source).
    The model must return (batch, classes) logits; `output="probabilities"`
    differentiates their softmax instead.

    Example:
        >>> attack = JSMA(theta=1.0, max_distortion=0.145)
        >>> result = attack(model, images, targets)  # doctest: +SKIP
        >>> result.success_rate, result[0].distortion  # doctest: +SKIP
    """

    clip_min: Bound = 0.0
    clip_max: Bound = 1.0

    @property
    def settings(self) -> AttackSettings:
        """The hyper-parameters alone, without the bounds."""
        return AttackSettings(**self.to_json())

    def derivatives(
        self,
        model: nn.Module,
        x: torch.Tensor,
        goals: torch.Tensor,
        *,
        untargeted: bool = False,
    ) -> TargetDerivatives:
        """The alpha and beta this attack's saliency scores at x, flattened to (batch,
        features), and the model's outputs.

        `goals` are the targets, or the sources when `untargeted` (then the roles
        swap: the source must go down, the others up).
        """
        lower, upper = bound(self.clip_min, "clip_min", x), bound(self.clip_max, "clip_max", x)
        return self._derivatives(model, x, goals, lower, upper, untargeted=untargeted)

    def _derivatives(
        self,
        model: nn.Module,
        x: torch.Tensor,
        goals: torch.Tensor,
        lower: torch.Tensor,
        upper: torch.Tensor,
        *,
        untargeted: bool,
    ) -> TargetDerivatives:
        alpha, beta, outputs = target_derivatives(
            model, x, goals, output=self.output, weighted=self.saliency != "jsma"
        )
        alpha, beta = alpha.flatten(1), beta.flatten(1)
        if untargeted:
            alpha, beta = beta, alpha
        if self.saliency == "tjsma":
            flat = x.detach().flatten(1)
            room = upper - flat if self.increasing else flat - lower
            alpha, beta = alpha * room, beta * room
        return TargetDerivatives(alpha, beta, outputs)

    def __call__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        sources: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        progress: bool = False,
        pair_search: PairSearch = select_pair,
    ) -> AttackResult:
        """Attack the batch `x` towards `targets` (None: untargeted).

        `sources` are the classes the samples start from (for example their
        true labels); by default, the model's predictions on `x`. A sample
        whose prediction already equals its target succeeds with no change.
        `mask`: bool, shaped like one input (shared) or like `x` (per sample),
        True where a feature may change; None: every feature may.
        `progress` shows a bar of finished samples. `pair_search` picks each
        step's pair (exact either way: `select_pair`, or the paper's brute
        force `jsma.attacks.reference.select_pair_brute_force` to check it).
        """
        check_input(model, x, self.features_per_step)
        lower, upper = checked_bounds(x, self.clip_min, self.clip_max)
        flat = x.detach().flatten(1)
        if self.binary:
            check_binary(flat, lower, upper, self.theta)
        allowed = None if mask is None else check_mask(mask, x)
        with frozen_eval(model):
            with torch.no_grad():
                # A copy: a model that writes into its input must not change the caller's x.
                logits = check_logits(model(x.detach().clone()), x.shape[0], x.dtype)
            check_finite("outputs", logits)
            batch, classes = logits.shape
            if sources is None:
                sources = logits.argmax(dim=1)
            sources = check_labels(sources, "sources", batch, classes)
            if targets is not None and self.variant == "maximal":
                raise ConfigurationError(
                    "the maximal variant (M-JSMA) is untargeted: give no targets (targets=None; "
                    "on the command line, no --target)"
                )
            if targets is not None:
                targets = checked_targets(targets, sources, classes)
            return self._craft(
                model, x, targets, sources, lower, upper,
                allowed=allowed, progress=progress, search=pair_search,
            )  # fmt: skip

    def _craft(
        self,
        model: nn.Module,
        x: torch.Tensor,
        targets: torch.Tensor | None,
        sources: torch.Tensor,
        lower: torch.Tensor,
        upper: torch.Tensor,
        *,
        allowed: torch.Tensor | None,
        progress: bool,
        search: PairSearch,
    ) -> AttackResult:
        device, shape = x.device, x.shape[1:]
        original = x.detach().flatten(1)
        batch, features = original.shape
        per_step = self.features_per_step
        max_iterations = self.max_iterations(features)
        goal = sources if targets is None else targets

        adversarial = original.clone()
        iterations = torch.zeros(batch, dtype=torch.long, device=device)
        stop_reasons = torch.full((batch,), -1, dtype=torch.long, device=device)
        probabilities = torch.zeros(batch, dtype=original.dtype, device=device)
        predictions = torch.zeros(batch, dtype=torch.long, device=device)
        trajectory_features = torch.full(
            (batch, max_iterations * per_step), -1, dtype=torch.long, device=device
        )
        trajectory_values = torch.zeros(
            (batch, max_iterations * per_step), dtype=original.dtype, device=device
        )
        trajectory_moved = torch.zeros(
            (batch, max_iterations * per_step), dtype=torch.bool, device=device
        )

        # The working batch: rows of the samples still running.
        active = torch.arange(batch, device=device)
        current = original.clone()
        # Gamma: every feature (the paper's), or those not yet saturated in the
        # direction of theta (cleverhans').
        # M-JSMA: the features not yet changed (which way each may move, the step decides).
        if self.search_domain == "all" or self.variant == "maximal":
            domain = torch.ones_like(current, dtype=torch.bool)
        else:
            domain = current < upper if self.increasing else current > lower
        if allowed is not None:
            domain &= allowed
        steps = torch.arange(per_step, device=device)
        known: TargetDerivatives | None = None
        stale = torch.ones(batch, dtype=torch.bool, device=device)
        bar = tqdm(total=batch, disable=not progress, unit="attack", desc="JSMA")
        try:
            while len(active):
                try:
                    chosen, found, change, outputs, known = choose(
                        self,
                        self._derivatives,
                        model,
                        current.view(-1, *shape),
                        goal[active],
                        lower,
                        upper,
                        domain,
                        untargeted=targets is None,
                        search=search,
                        known=known,
                        stale=stale,
                    )
                except ModelError as error:  # name the rows of the caller's batch
                    raise error.at(tuple(active.tolist())) from None
                probs = outputs if self.output == "probabilities" else outputs.softmax(dim=1)
                confidence, predicted = probs.max(dim=1)
                if targets is None:
                    reached = predicted != goal[active]
                else:
                    reached = predicted == goal[active]

                reason = torch.full_like(active, -1)
                reason[~found] = StopReason.NO_ADMISSIBLE
                reason[domain.sum(dim=1) < per_step] = StopReason.DOMAIN_EXHAUSTED
                reason[iterations[active] >= max_iterations] = StopReason.BUDGET
                reason[reached] = StopReason.SUCCESS
                done = reason >= 0
                finished = active[done]
                adversarial[finished] = current[done]
                stop_reasons[finished] = reason[done]
                predictions[finished] = predicted[done]
                probabilities[finished] = confidence[done]
                bar.update(len(finished))

                keep = ~done
                active, current, domain, chosen, change = (
                    active[keep],
                    current[keep],
                    domain[keep],
                    chosen[keep],
                    change[keep],
                )
                if known is not None:
                    known = TargetDerivatives(*(t[keep] for t in known))
                if not len(active):
                    break
                # Algorithm 2, line "modify the chosen features by theta", within bounds.
                old_values = current.gather(1, chosen)
                new_values = (old_values + change).clamp(lower[chosen], upper[chosen])
                current.scatter_(1, chosen, new_values)
                if self.variant == "maximal":
                    leaves = torch.ones_like(chosen, dtype=torch.bool)  # changed once at most
                elif self.increasing:
                    leaves = new_values >= upper[chosen]
                else:
                    leaves = new_values <= lower[chosen]
                domain.scatter_(1, chosen, domain.gather(1, chosen) & ~leaves)
                slots = iterations[active, None] * per_step + steps
                trajectory_features[active[:, None], slots] = chosen
                trajectory_values[active[:, None], slots] = new_values
                moved = new_values != old_values
                trajectory_moved[active[:, None], slots] = moved
                stale = moved.any(dim=1)
                iterations[active] += 1
        finally:
            bar.close()

        changed = adversarial != original
        features_changed = changed.sum(dim=1)
        return AttackResult(
            adversarial=adversarial.view(batch, *shape),
            sources=sources,
            targets=targets,
            success=stop_reasons == StopReason.SUCCESS,
            iterations=iterations,
            features_changed=features_changed,
            distortion=features_changed.to(original.dtype) * (100.0 / features),
            l2=(adversarial - original).norm(dim=1),
            predictions=predictions,
            probabilities=probabilities,
            stop_reasons=stop_reasons,
            trajectory_features=trajectory_features,
            trajectory_values=trajectory_values,
            trajectory_moved=trajectory_moved,
        )
