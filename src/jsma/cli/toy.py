"""`jsma toy`: the paper's AND network, its forward derivative and a crafted input."""

from __future__ import annotations

import argparse
from pathlib import Path

from jsma.cli._options import Commands, output_directory

__all__ = ["register"]


def register(commands: Commands) -> None:
    """Add the `toy` command to the parser."""
    parser = commands.add_parser(
        "toy", help="the paper's toy AND network, its forward derivative and a crafted input"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the toy network's training")
    parser.add_argument(
        "--start", type=float, nargs=2, default=[0.3, 0.4], metavar=("X1", "X2"),
        help="input to craft from (default 0.3 0.4, which the network maps to 0)",
    )  # fmt: skip
    parser.add_argument("--theta", type=float, default=0.05, help="change per step")
    parser.add_argument(
        "--out", type=output_directory, default=Path("toy"),
        help="directory for toy.json and the figure toy-and.png (default: ./toy); "
        "`jsma report --toy DIR` shows them",
    )  # fmt: skip
    parser.set_defaults(handler=_toy)


def _toy(args: argparse.Namespace) -> int:
    from jsma._io import ensure_writable
    from jsma.toy import run_toy
    from jsma.toy._toy import TOY_FIGURE, TOY_FILE

    ensure_writable(args.out)
    toy = run_toy(args.out, seed=args.seed, start=tuple(args.start), theta=args.theta)
    names = ("(0, 0)", "(0, 1)", "(1, 0)", "(1, 1)")
    print("AND network (2 inputs, 2 sigmoid hidden units, 1 sigmoid output)")
    for name, value in zip(names, toy.corner_outputs, strict=True):
        print(f"  F{name} = {value:.4f}")
    print(f"  correct on a 101 x 101 grid (boundary band left out): {toy.grid_accuracy:.2%}")
    if toy.grid_accuracy < 0.95:
        print("  warning: this seed did not learn AND well; try another --seed")
    crafting = toy.crafting
    print(f"crafted from ({args.start[0]:g}, {args.start[1]:g}), F = {crafting.outputs[0]:.4f}:")
    for step, (feature, point, output) in enumerate(
        zip(crafting.features, crafting.points[1:], crafting.outputs[1:], strict=True), start=1
    ):
        print(
            f"  step {step}: raise x{feature + 1} -> ({point[0]:.2f}, {point[1]:.2f}), "
            f"F = {output:.4f}"
        )
    print("  output flipped to 1" if crafting.flipped else "  output not flipped")
    print(f"results: {args.out / TOY_FILE}")
    print(f"figure:  {args.out / TOY_FIGURE}")
    return 0
