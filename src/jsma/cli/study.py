"""`jsma study create`: a human perception study's stimuli, chosen from campaigns."""

from __future__ import annotations

import argparse
from pathlib import Path

from jsma.cli._common import Commands, cache_dir, data_options, dataset

__all__ = ["register"]


def register(commands: Commands) -> None:
    """Add the `study` commands to the parser."""
    study = commands.add_parser("study", help="the human perception study: create, serve, analyze")
    sub = study.add_subparsers(dest="study_command", required=True, metavar="COMMAND")
    create = sub.add_parser(
        "create", help="choose balanced stimuli from campaigns; store images and design"
    )
    create.add_argument("campaigns", type=Path, nargs="+", metavar="CAMPAIGN")
    create.add_argument("--out", type=Path, required=True, metavar="STUDY", help="new directory")
    create.add_argument(
        "--per-condition", type=int, default=40,
        help="stimuli per condition: benign, increasing, decreasing (default 40)",
    )  # fmt: skip
    create.add_argument("--seed", type=int, default=0)
    create.add_argument(
        "--completion-url", help="where participants go at the end (a Prolific completion link)"
    )
    data_options(create)
    create.set_defaults(handler=_create)

    serve = sub.add_parser("serve", help="serve a study to participants (web pages)")
    serve.add_argument("study", type=Path, metavar="STUDY")
    serve.add_argument(
        "--host", default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; put a TLS "
        "reverse proxy in front to serve the internet)",
    )  # fmt: skip
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--trials", type=int, default=40, help="trials per participant")
    serve.add_argument(
        "--admin-token", help="the admin pages' token (default: a new random one, printed)"
    )
    serve.set_defaults(handler=_serve)

    simulate = sub.add_parser(
        "simulate", help="machine observers take the study through its pages (never people)"
    )
    simulate.add_argument("study", type=Path, metavar="STUDY")
    simulate.add_argument("--participants", type=int, default=50)
    simulate.add_argument("--concurrency", type=int, default=50)
    simulate.add_argument(
        "--observer", default="oracle", metavar="oracle|knn|CHECKPOINT",
        help="oracle (the true source), knn (nearest training image) or a model checkpoint",
    )  # fmt: skip
    simulate.add_argument("--url", help="a running server (default: start one on 127.0.0.1)")
    simulate.add_argument("--trials", type=int, default=40, help="trials per participant")
    data_options(simulate)
    simulate.set_defaults(handler=_simulate)

    analyze = sub.add_parser("analyze", help="the answers: tables, analysis.json, a figure")
    analyze.add_argument("study", type=Path, metavar="STUDY")
    analyze.add_argument("--out", type=Path, help="output directory (default: STUDY/analysis)")
    analyze.set_defaults(handler=_analyze)


def _create(args: argparse.Namespace) -> int:
    from jsma.campaign import open_campaign
    from jsma.models import resolve_model
    from jsma.study import create_study, describe

    data = dataset(args)
    stored = open_campaign(args.campaigns[0]).model
    model = None
    if stored.checkpoint or stored.recipe:
        checkpoint = Path(stored.checkpoint) if stored.checkpoint else None
        loaded, _ = resolve_model(
            data, cache_dir(args), checkpoint=checkpoint, recipe=stored.recipe or "default"
        )
        model = loaded.model
    stimuli = create_study(
        args.campaigns, data, args.out, per_condition=args.per_condition, seed=args.seed,
        model=model, completion_url=args.completion_url,
    )  # fmt: skip
    counts = ", ".join(f"{condition} {count}" for condition, count in describe(stimuli).items())
    print(f"study:   {args.out}")
    print(f"stimuli: {counts}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import secrets

    try:
        import uvicorn

        from jsma.study.server import create_app
    except ImportError as error:
        from jsma.errors import MissingDependencyError

        raise MissingDependencyError(
            f"jsma study serve needs the `study` extra ({error.name} is missing): "
            "pip install -c constraints.txt -e '.[study]'"
        ) from None
    token = args.admin_token or secrets.token_urlsafe(24)
    app = create_app(args.study, admin_token=token, trials_per_participant=args.trials)
    base = f"http://{args.host}:{args.port}"
    print(f"participants: {base}/?PROLIFIC_PID=<id>   (or {base}/ for an anonymous id)")
    print(f"admin:        {base}/admin?token={token}")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from jsma.study.analysis import analyze, write_analysis

    analysis = analyze(args.study)
    out = args.out or args.study / "analysis"
    path = write_analysis(analysis, out)
    for kind, kept in analysis.participants.items():
        print(f"{kind}: {kept} participants kept, {analysis.excluded[kind]} excluded "
              "(failed an attention check)")  # fmt: skip
    width = max([len("observer"), *(len(line.kind) for line in analysis.lines)])
    header = f"{'observer':>{width}} {'condition':>11} {'bucket':>7} {'answers':>8} "
    print(header + f"{'digit':>7} {'source':>7} {'target':>7} {'net: target':>12}")
    for line in analysis.lines:
        cells = [line.judged_digit, line.saw_source, line.saw_target, line.network_target]
        shares = " ".join(
            f"{'-':>7}" if rate.n == 0 else f"{rate.share:>7.1%}" for rate in cells[:3]
        )
        network = "-" if cells[3].n == 0 else f"{cells[3].share:.1%}"
        print(
            f"{line.kind:>{width}} {line.condition:>11} {line.bucket:>7} {line.answers:>8} "
            f"{shares} {network:>12}"
        )
    for key, value in analysis.kappa.items():
        print(f"Fleiss' kappa {key}: {value:.3f}")
    print(f"analysis: {path}")
    print(f"figure:   {path.parent / 'analysis.png'}")
    return 0


def _simulate(args: argparse.Namespace) -> int:
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
    elif args.observer == "knn":
        data = dataset(args)
        images, labels = data.train.tensors()
        kind, observe = "knn", knn_observer(images[:, 0].numpy(), labels.numpy())
    else:
        from jsma.models import load_checkpoint

        path = Path(args.observer)
        kind, observe = f"model-{path.stem}", model_observer(load_checkpoint(path).model)
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
