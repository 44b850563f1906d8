"""The JSMA family side by side: what each saliency and search domain costs and gives.

On the `paper` LeNet and the first --samples test samples, each towards its 9 other
classes (theta = +1, or --theta), attacks the whole batch with every setting in
turn, --repeats times interleaved (so machine noise hits all alike), and prints
per setting: success, mean distortion of the successes, derivative passes per
attack, the median milliseconds per attack and per pass, and the per-pass ratio
to the paper's saliency (the cost of a step; how many steps a setting needs is its
own result):

    .venv/bin/python benchmarks/bench_family.py --output probabilities --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from jsma.attacks import JSMA, AttackSettings
from jsma.data import load_mnist
from jsma.models import pretrained
from jsma.settings import OUTPUTS, Saliency, SearchDomain

SETTINGS: tuple[tuple[Saliency, SearchDomain], ...] = (
    ("jsma", "unsaturated"),
    ("wjsma", "unsaturated"),
    ("tjsma", "unsaturated"),
    ("jsma", "all"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100, help="test samples (x 9 targets)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--theta", type=float, default=1.0)
    parser.add_argument("--output", choices=OUTPUTS, default="logits")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data = load_mnist()
    model = pretrained("paper").model
    images, labels = data.test.tensors(slice(0, args.samples))
    classes = data.num_classes
    offsets = torch.arange(1, classes)
    targets = ((labels[:, None] + offsets[None, :]) % classes).flatten()
    x, sources = images.repeat_interleave(classes - 1, 0), labels.repeat_interleave(classes - 1)

    attacks = {
        setting: JSMA(
            **AttackSettings(
                theta=args.theta, output=args.output, saliency=setting[0], search_domain=setting[1]
            ).to_json()
        )
        for setting in SETTINGS
    }
    seconds: dict[tuple[Saliency, SearchDomain], list[float]] = {
        setting: [] for setting in SETTINGS
    }
    results = {}
    attacks[SETTINGS[0]](model, x[:9], targets[:9], sources=sources[:9])  # warm up
    for _ in range(args.repeats):
        for setting, configured in attacks.items():
            started = time.perf_counter()
            results[setting] = configured(model, x, targets, sources=sources)
            seconds[setting].append(time.perf_counter() - started)

    print(
        f"paper model, {len(x)} attacks (batch {len(x)}), theta {args.theta:+g}, on the "
        f"{args.output}, {torch.get_num_threads()} threads, median of {args.repeats}"
    )
    print(
        f"{'saliency':>9} {'domain':>12} {'success':>8} {'dist. succ.':>11} {'passes':>7} "
        f"{'ms/attack':>9} {'ms/pass':>8} {'per pass vs jsma':>16}"
    )
    base = None
    for setting in SETTINGS:
        result = results[setting]
        median = statistics.median(seconds[setting])
        # One derivative pass per iteration, and one more to see the last step succeed.
        passes = float((result.iterations + 1).double().mean())
        per_pass = median * 1e3 / (len(x) * passes)
        base = base or per_pass
        success = result.success
        print(
            f"{setting[0]:>9} {setting[1]:>12} {float(success.double().mean()):>8.2%} "
            f"{float(result.distortion[success].mean()):>10.2f}% {passes:>7.1f} "
            f"{median * 1e3 / len(x):>9.2f} {per_pass:>8.3f} {per_pass / base:>16.2f}"
        )


if __name__ == "__main__":
    main()
