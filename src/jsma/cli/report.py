"""`jsma report`: the HTML report, figures and JSON summary of stored campaigns."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from jsma.cli._common import campaign_data
from jsma.cli._options import Commands, campaign_location, data_options, output_directory
from jsma.settings import L0_COUNTS

if TYPE_CHECKING:
    pass

__all__ = ["register"]


def register(commands: Commands) -> None:
    """Add the `report` command to the parser."""
    parser = commands.add_parser(
        "report", help="HTML report, figures and JSON summary of stored campaigns"
    )
    parser.add_argument(
        "campaigns", type=campaign_location, nargs="+", metavar="CAMPAIGN",
        help="campaign directories or storage URIs (s3://bucket/prefix, ...); a `jsma "
        "blackbox` directory here is read as --blackbox",
    )  # fmt: skip
    parser.add_argument(
        "--out",
        type=output_directory,
        help="output directory (default: CAMPAIGN/report of the first)",
    )
    parser.add_argument(
        "--no-samples", action="store_true", help="leave out the grid of samples (needs no data)"
    )
    parser.add_argument(
        "--toy", type=Path, metavar="DIR",
        help="add the toy AND network section that `jsma toy --out DIR` stored",
    )  # fmt: skip
    parser.add_argument(
        "--defenses", type=Path, nargs="+", default=[], metavar="DIR",
        help="add the results of `jsma defend` stored in these directories",
    )  # fmt: skip
    parser.add_argument(
        "--gan", type=Path, metavar="DIR",
        help="add the generated digits that `jsma gan train --out DIR` stored",
    )  # fmt: skip
    parser.add_argument(
        "--transfer", type=Path, metavar="DIR",
        help="add the transfer matrix that `jsma transfer --out DIR` stored",
    )  # fmt: skip
    parser.add_argument(
        "--blackbox", type=Path, nargs="+", default=[], metavar="DIR",
        help="add the substitutes, transfer rates and Sparse-RS runs `jsma blackbox` stored",
    )  # fmt: skip
    parser.add_argument(
        "--study", type=Path, metavar="STUDY",
        help="add the perception study's analysis (`jsma study analyze STUDY` first)",
    )  # fmt: skip
    parser.add_argument(
        "--l0", choices=L0_COUNTS, default="features",
        help="what distortion counts: changed features (the paper's elements, default) or "
        "pixels of images (a pixel once across its channels)",
    )  # fmt: skip
    data_options(parser)
    parser.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    from jsma.blackbox._runs import is_blackbox_run
    from jsma.campaign.location import LocalFolder, folder_at
    from jsma.errors import ConfigurationError
    from jsma.report import write_report

    blackbox = [*args.blackbox]
    campaigns = []
    for where in args.campaigns:
        if isinstance(where, str | Path) and Path(where).is_dir() and is_blackbox_run(Path(where)):
            blackbox.append(Path(where))
        else:
            campaigns.append(where)
    data = None if args.no_samples or not campaigns else campaign_data(args, campaigns[0])
    out = args.out
    if out is None:
        first = folder_at(campaigns[0] if campaigns else blackbox[0])
        if not isinstance(first, LocalFolder):
            raise ConfigurationError(f"{first}: a campaign in object storage needs --out DIR")
        out = first.path / "report"
    files = write_report(
        campaigns, out, data, toy=args.toy, defenses=args.defenses, study=args.study,
        gan=args.gan, transfer=args.transfer, blackbox=blackbox, l0=args.l0,
    )  # fmt: skip
    print(f"report:  {files.html}")
    print(f"summary: {files.summary}")
    print(f"figures: {len(files.figures)} PNG files in {files.html.parent / 'figures'}")
    return 0
