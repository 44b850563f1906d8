"""`jsma study create`: a human perception study's stimuli, chosen from campaigns."""

from __future__ import annotations

import argparse
import math
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from jsma.cli._common import (
    attacked_model,
    cache_dir,
    campaign_data,
    dataset,
    model_reference,
    needs_extra,
    stored_model_refused,
)
from jsma.cli._options import (
    Commands,
    data_options,
    model_options,
    output_directory,
    port_number,
    positive_int,
)
from jsma.errors import JSMAError

if TYPE_CHECKING:
    from torch import nn

    from jsma.data import Dataset
    from jsma.study._analysis import Rate

__all__ = ["register"]


def register(commands: Commands) -> None:
    """Add the `study` commands to the parser."""
    study = commands.add_parser(
        "study",
        help="the human perception study: create, settings, serve, simulate, analyze",
    )
    sub = study.add_subparsers(dest="study_command", required=True, metavar="COMMAND")
    create = sub.add_parser(
        "create", help="choose balanced stimuli from campaigns; store images and design"
    )
    create.add_argument(
        "campaigns", type=Path, nargs="+", metavar="CAMPAIGN",
        help="campaign directories of one model and data (increasing, decreasing or both)",
    )  # fmt: skip
    create.add_argument(
        "--out",
        type=output_directory,
        required=True,
        metavar="STUDY",
        help="a new (or empty) directory",
    )
    create.add_argument(
        "--per-condition", type=positive_int, default=40,
        help="stimuli per condition: benign, increasing, decreasing",
    )  # fmt: skip
    create.add_argument(
        "--allow-short", action="store_true",
        help="accept a condition with fewer stimuli than --per-condition (else an error)",
    )  # fmt: skip
    create.add_argument("--seed", type=int, default=0, help="seed of the stimuli's choice")
    create.add_argument(
        "--completion-url",
        help="where participants go at the end, an http(s) address (a Prolific completion link)",
    )
    _consent_options(create)
    data_options(create)
    model_options(
        create, default="the campaigns' model when it is jsma's own (a recipe or a jsma checkpoint)"
    )
    create.set_defaults(handler=_create)

    settings = sub.add_parser(
        "settings", help="show or change what the consent page says (length, contact, ...)"
    )
    settings.add_argument("study", type=Path, metavar="STUDY", help="the study directory")
    _consent_options(settings)
    settings.set_defaults(handler=_settings)

    serve = sub.add_parser("serve", help="serve a study to participants (web pages)")
    serve.add_argument("study", type=Path, metavar="STUDY", help="the study directory")
    serve.add_argument(
        "--host", default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; put a TLS "
        "reverse proxy in front to serve the internet)",
    )  # fmt: skip
    serve.add_argument("--port", type=port_number, default=8000, help="TCP port, 0 to 65535")
    serve.add_argument("--trials", type=positive_int, default=40, help="trials per participant")
    serve.add_argument(
        "--admin-token", help="the admin pages' token (default: a new random one, printed)"
    )
    serve.set_defaults(handler=_serve)

    simulate = sub.add_parser(
        "simulate", help="machine observers take the study through its pages (never people)"
    )
    simulate.add_argument("study", type=Path, metavar="STUDY", help="the study directory")
    simulate.add_argument(
        "--participants", type=positive_int, default=50, help="machine observers to send through"
    )
    simulate.add_argument(
        "--concurrency", type=positive_int, default=50, help="observers at a time"
    )
    simulate.add_argument(
        "--observer", default="oracle", metavar="oracle|knn|MODEL",
        help="oracle (the true source), knn (nearest training image) or a model in any form "
        "--model takes (paper, a jsma checkpoint, .pt2, TorchScript, package.module:builder)",
    )  # fmt: skip
    simulate.add_argument("--url", help="a running server (default: start one on 127.0.0.1)")
    simulate.add_argument("--trials", type=positive_int, default=40, help="trials per participant")
    data_options(simulate)
    model_options(simulate, title="the observer's model (with --observer MODEL)", option=None)
    simulate.set_defaults(handler=_simulate)

    analyze = sub.add_parser("analyze", help="the answers: tables, analysis.json, a figure")
    analyze.add_argument("study", type=Path, metavar="STUDY", help="the study directory")
    analyze.add_argument(
        "--out", type=output_directory, help="output directory (default: STUDY/analysis)"
    )
    analyze.set_defaults(handler=_analyze)


_CONSENT_FIELDS = {
    "minutes": "how long the study takes, in minutes",
    "contact": "who runs the study and how to reach them",
    "ethics": "the ethics approval (board, reference)",
    "payment": "what participants are paid",
    "withdrawal": "how to withdraw, and what happens to the answers then",
}


def _consent_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "consent page", "what participants are told; each must be filled in before going live"
    )
    for name, about in _CONSENT_FIELDS.items():
        group.add_argument(
            f"--{name}", type=positive_int if name == "minutes" else str, metavar="MINUTES" if
            name == "minutes" else "TEXT", help=about,
        )  # fmt: skip


def _consent_changes(args: argparse.Namespace) -> dict[str, object]:
    given = {name: getattr(args, name) for name in _CONSENT_FIELDS}
    return {name: value for name, value in given.items() if value is not None}


def _print_consent(study: Path) -> None:
    from jsma.study import read_consent

    consent = read_consent(study)
    for name in _CONSENT_FIELDS:
        value = getattr(consent, name)
        print(f"{name + ':':<12}{'NOT FILLED IN' if value is None else value}")
    if missing := consent.missing():
        options = " ".join(f"--{name} ..." for name in missing)
        print(f"fill in before going live: jsma study settings {study} {options}")


def _settings(args: argparse.Namespace) -> int:
    from jsma.study import update_consent

    if changes := _consent_changes(args):
        update_consent(args.study, **changes)
    _print_consent(args.study)
    return 0


def _create(args: argparse.Namespace) -> int:
    from jsma.campaign import Campaign
    from jsma.study import ConsentText, create_study
    from jsma.study._design import describe

    data = campaign_data(args, args.campaigns[0])
    stored = Campaign.open(args.campaigns[0]).manifest.model
    model: nn.Module | None = None
    # The network's prediction on the benign originals needs the model: jsma's own
    # models are data (safetensors), but a model from outside is code, loaded only when
    # the user names it here.
    reference = stored.reference if args.model is None else model_reference(args, data)
    if args.model is not None:
        model, provenance = attacked_model(args, data, reference)
        if provenance.fingerprint != stored.fingerprint:
            raise JSMAError(
                f"--model {args.model} is not the model {args.campaigns[0]} attacked "
                f"({stored.describe()})"
            )
    elif reference is not None and reference.runs_code:
        print(
            f"warning: {stored_model_refused(args.campaigns[0], stored)} (here with "
            "--model ...); without it the network's predictions on benign images are left "
            "empty",
            file=sys.stderr,
        )
    elif reference is not None:
        model, _ = reference.load(data=data, cache_dir=cache_dir(args))
    stimuli = create_study(
        args.campaigns, data, args.out, per_condition=args.per_condition, seed=args.seed,
        model=model, completion_url=args.completion_url,
        consent=ConsentText(**_consent_changes(args)),  # type: ignore[arg-type]
        allow_short=args.allow_short,
    )  # fmt: skip
    counts = ", ".join(f"{condition} {count}" for condition, count in describe(stimuli).items())
    print(f"study:   {args.out}")
    print(f"stimuli: {counts}")
    _print_consent(args.out)
    return 0


def _serve(args: argparse.Namespace) -> int:
    import secrets
    from urllib.parse import quote

    with needs_extra("study", "jsma study serve"):
        import uvicorn

        from jsma.study.server import create_app
    from jsma.study import read_consent

    token = args.admin_token or secrets.token_urlsafe(24)
    app = create_app(args.study, admin_token=token, trials_per_participant=args.trials)
    if missing := read_consent(args.study).missing():
        print(f"warning: the consent page lacks {', '.join(missing)}: "
              f"jsma study settings {args.study} --{missing[0]} ...", file=sys.stderr)  # fmt: skip
    base = f"http://{args.host}:{args.port}"
    print(f"participants: {base}/?PROLIFIC_PID=<id>   (or {base}/ for an anonymous id)")
    print(f"admin:        {base}/admin?token={quote(token, safe='')}", flush=True)
    # Open connections get a second to finish on Ctrl-C or SIGTERM: every answer is
    # stored before it is acknowledged, so nothing waits on them.
    config = uvicorn.Config(
        app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=1
    )
    # uvicorn stops on SIGINT and SIGTERM, then raises the signal again for the handler
    # it found: this one, so that a stop is a line and exit code 0, not a traceback.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: None)
    uvicorn.Server(config).run()
    print("study server stopped; every acknowledged answer is stored")
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from jsma.study import analyze, write_analysis

    analysis = analyze(args.study)
    out = args.out or args.study / "analysis"
    path = write_analysis(analysis, out)
    for kind, kept in analysis.participants.items():
        print(f"{kind}: {kept} participants kept, {analysis.excluded[kind]} excluded "
              "(failed an attention check)")  # fmt: skip
    width = max([len("observer"), *(len(line.kind) for line in analysis.lines)])
    header = f"{'observer':>{width}} {'condition':>11} {'bucket':>7} {'answers':>8} "
    print(header + f"{analysis.subject:>21} {'source':>21} {'target':>21} {'net: target':>12}")
    for line in analysis.lines:
        cells = [line.judged_digit, line.saw_source, line.saw_target, line.network_target]
        shares = " ".join(f"{_rate_cell(rate):>21}" for rate in cells[:3])
        network = "-" if cells[3].n == 0 else f"{cells[3].share:.1%}"
        print(
            f"{line.kind:>{width}} {line.condition:>11} {line.bucket:>7} {line.answers:>8} "
            f"{shares} {network:>12}"
        )
    print("share [Wilson 95%: answers as independent] (cluster bootstrap 95%: participants "
          "and stimuli resampled; the one to quote)")  # fmt: skip
    for key, value in analysis.kappa.items():
        if math.isnan(value):
            print(f"Fleiss' kappa {key}: not defined (no stimulus was rated twice, or every "
                  "answer fell in one category)")  # fmt: skip
        else:
            print(f"Fleiss' kappa {key}: {value:.3f}")
    print(f"analysis: {path}")
    print(f"figure:   {path.parent / 'analysis.png'}")
    return 0


def _rate_cell(rate: Rate) -> str:
    """`75.0% [71-79] (62-86)`: the share, its Wilson and its cluster bootstrap interval."""
    if rate.n == 0:
        return "-"

    def interval(low: float, high: float) -> str:
        return "?" if math.isnan(low) else f"{low * 100:.0f}-{high * 100:.0f}"

    wilson, cluster = interval(rate.low, rate.high), interval(rate.cluster_low, rate.cluster_high)
    return f"{rate.share:.1%} [{wilson}] ({cluster})"


def _study_data(args: argparse.Namespace) -> Dataset:
    """The data the options name, else the data of the study's campaigns."""
    from jsma.study import read_stimuli

    if args.data is not None:
        return dataset(args)
    campaigns = sorted({s.campaign for s in read_stimuli(args.study) if s.campaign})
    for campaign in campaigns:
        if (Path(campaign) / "campaign.json").is_file():
            return campaign_data(args, campaign)
    raise JSMAError(
        f"{args.study}: its campaigns ({', '.join(campaigns) or 'none'}) are not here to say "
        "which data it shows; give --data"
    )


def _simulate(args: argparse.Namespace) -> int:
    with needs_extra("study", "jsma study simulate"):
        from jsma.study.simulate import (
            Observer,
            knn_observer,
            model_observer,
            oracle_observer,
            simulate,
        )

    observe: Observer
    if args.observer == "oracle":
        kind, observe = "oracle", oracle_observer
    else:
        data = _study_data(args)
        if args.observer == "knn":
            images, labels = data.train.tensors()
            low, high = data.bounds
            scaled = ((images - low) / (high - low)).numpy()
            # The pictures of a grayscale study are (height, width): so are its neighbours.
            kind = "knn"
            observe = knn_observer(scaled[:, 0] if scaled.shape[1] == 1 else scaled, labels.numpy())
        else:
            network, provenance = attacked_model(
                args, data, model_reference(args, data, args.observer)
            )
            kind = f"model-{provenance.architecture}"
            observe = model_observer(network, bounds=data.bounds)
    result = simulate(
        args.study, kind, observe=observe, participants=args.participants,
        concurrency=args.concurrency, url=args.url, trials_per_participant=args.trials,
    )  # fmt: skip
    print(f"observers:  {result.participants} x {kind} (machine observers, never people)")
    print(f"answers:    {result.answers_sent} sent, {result.answers_stored} stored, "
          f"{result.duplicates} duplicates")  # fmt: skip
    print(f"latency:    p50 {result.p50_ms:.1f} ms, p95 {result.p95_ms:.1f} ms")
    print(f"throughput: {result.answers_per_second:.1f} answers/s")
    return 0
