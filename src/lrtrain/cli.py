"""The command line: the commands and their options. Each parses, calls `training` (or the module that
does its work) and hands the results to `render`; lrtrain.cli_support maps errors to exit codes and
holds the options and writers the commands share.

Heavy modules (NumPy, pydantic, Rich, torch) are imported inside the commands that need them,
so `lrtrain --help` and `lrtrain predict` start fast. Most of this module's length is the options'
declarations and help texts; what the commands do lives in the modules they call.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from lrtrain import __version__
from lrtrain.cli_support import (
    DEBUG,
    EXIT_CODES,
    Command,
    ConfigOption,
    DataOption,
    DelimiterOption,
    JsonOption,
    RunArgument,
    SetOption,
    complete_device,
    complete_engine,
    flushed,
    given_path,
    handled,
    line,
    output,
    read_config,
    usage_error,
    warn,
)
from lrtrain.errors import (
    ExitCode,
    OutputError,
    discard_stdout,
    one_process,
    report,
    tolerant_streams,
    writing_stdout,
)
from lrtrain.interrupts import Signals, silent

app = typer.Typer(
    name="lrtrain",
    help=f"Train, compare and serve linear-regression models.\n\n{EXIT_CODES}",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
config_app = typer.Typer(help="Show, check or describe the config.", no_args_is_help=True)
data_app = typer.Typer(help="Make data files to try lrtrain on.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(data_app, name="data")


def _version(value: bool) -> None:
    if value:  # not by render.write_line: importing Rich and NumPy would triple the time --version takes
        with writing_stdout():
            print(f"lrtrain {__version__}", flush=True)
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show a traceback (without local variables) on errors.")
    ] = False,
) -> None:
    """Train, compare and serve linear-regression models."""
    if debug:
        DEBUG["on"] = True
    world = os.environ.get("WORLD_SIZE", "").strip()
    if not one_process() and ctx.invoked_subcommand not in (None, "fit"):  # each process would run it whole, alone
        report(
            ExitCode.USAGE,
            f"error: `lrtrain {ctx.invoked_subcommand}` runs in one process, but WORLD_SIZE is {world} (torchrun): "
            f"only `lrtrain fit` trains across processes. Run `lrtrain {ctx.invoked_subcommand}` without torchrun.",
            json_output="--json" in sys.argv[1:],
        )
        raise typer.Exit(int(ExitCode.USAGE))


@app.command(cls=Command, epilog=EXIT_CODES)
@handled
def fit(
    config: ConfigOption = None,
    set_: SetOption = None,
    engine: Annotated[
        str | None,
        typer.Option(
            metavar="ENGINE",
            help="manual (NumPy), torch (nn.Linear + SGD) or exact (least squares). Default: train.engine (manual).",
            autocompletion=lambda incomplete: [e for e in complete_engine(incomplete) if ":" not in e[0]],
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            metavar="DEVICE",
            help="torch engine: cpu, cuda, cuda:N, mps or auto. Default: train.device (cpu).",
            autocompletion=complete_device,
        ),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            metavar="RUN",
            help="Continue a run stopped by Ctrl-C or SIGTERM, from its folder (its config.yaml and checkpoint); "
            "ends with the same weights as an uninterrupted run.",
            parser=given_path,
        ),
    ] = None,
    summary: Annotated[
        bool,
        typer.Option(
            "--summary", help="Also print the statistical summary (standard errors, t, p, intervals, R², F, AIC)."
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Train a model and write a run folder (config.yaml, model.json, metrics.csv) under runs/.

    Ctrl-C or SIGTERM stops at the end of the current epoch and saves a checkpoint that
    --resume continues (a second one before then stops there, saving nothing; in the last
    epoch, the whole run is saved). The exact engine's solve stops at once, saving nothing.
    After the run is saved, Ctrl-C stops the printing, names the run folder and exits 130.
    """
    from lrtrain import live, parallel, render, training
    from lrtrain.errors import ConfigError, DataError
    from lrtrain.runs import resume_config

    for option, value, example in (("--engine", engine, "exact"), ("--device", device, "cpu")):
        if value is not None and not value.strip():
            raise ConfigError(f"{option} is empty. Name one (e.g. {option} {example}), or leave the option out.")
    extra = [f"train.engine={engine}"] if engine else []
    extra += [f"train.device={device}"] if device else []
    if resume is not None:
        config = resume_config(resume, config)
    cfg = read_config(config, set_, extra)  # as compare does: Ctrl-C stops a read that waits (a pipe with no writer)
    data = getattr(cfg.data, "path", None)
    if resume is not None and data is not None and not Path(data).exists():  # not one to make anew: the same rows
        raise DataError(
            f"data file {data} does not exist: the run in {resume} was trained on it (data.path in its config.yaml), "
            "and a resume reads the same rows again (it checks their fingerprint). Restore the file there, or start "
            "a new run without --resume."
        )
    with Signals(distributed=parallel.world_size() > 1) as signals:  # from the data to the last line printed
        out = output(json_output, signals)
        main = parallel.is_main()  # under torchrun rank 0 alone shows the view and notes
        with live.FitView(cfg, out, live=main) as view:
            signals.say = view.note if main else silent
            result = training.fit(cfg, view, should_stop=signals.requested, resume=resume, with_summary=summary)
        saved = f"the run finished and is saved in {result.run_dir}" if result.run_dir else "nothing was saved"
        signals.trained(saved)
        if main:
            render.fit_summary(cfg, result, out)
            stats = result.summary if summary else None
            if result.shortfall is not None:
                warn(f"warning: {result.shortfall}")
            if isinstance(stats, str):
                warn(f"note: {stats}")
            elif stats is not None:
                epochs = f"{result.epochs} epoch{'s' if result.epochs != 1 else ''}"
                heading = f"{result.engine} weights after {epochs}, {result.rows} training rows"
                render.statistics(stats.to_dict(covariance=False), heading, out)


@app.command(cls=Command, epilog=EXIT_CODES)
@handled
def compare(
    engines: Annotated[
        list[str],
        typer.Argument(
            help="Engines to run: manual, torch, torch:cpu, torch:cuda, torch:cuda:N, torch:mps, exact.",
            metavar="ENGINE",
            autocompletion=complete_engine,
        ),
    ],
    config: ConfigOption = None,
    set_: SetOption = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            metavar="FILE.png",
            help="Also write the engines' loss curves over each other to this PNG.",
            parser=given_path,
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Train several engines on the same data, initial weights and batch order; exit 3 if they disagree.

    The tolerance is on max |Δw| / max(1, max |w|) between trained engines: 1e-4 for float32,
    1e-8 for float64 (compare.tolerance overrides it). The exact engine is the reference
    optimum and is not held to it.
    """
    from lrtrain import live, render, training
    from lrtrain.errors import EnginesDisagree

    cfg = read_config(config, set_)
    if plot is not None:
        from lrtrain import plot as plot_module

        plot = plot_module.check_output(plot, "compare.png")  # before hours of training, not after
    with Signals(stop_at_once=True) as signals:
        out = output(json_output, signals)
        with live.CompareView(engines, out) as view:
            result = training.compare(cfg, engines, view.watch)
        render.comparison(cfg, result, out)
    if plot is not None:
        curves = {
            label: [(log.epoch, log.loss) for log in r.history]
            for label, r in zip(result.labels, result.results, strict=True)
        }
        written = plot_module.plot_curves(plot, curves, f"{cfg.run_name()}: loss per epoch")
        warn(f"wrote {written}") if json_output else line(f"wrote {written}")
    if not result.agree:
        raise EnginesDisagree(
            f"engines disagree: the largest relative weight difference is {result.worst:.3g}, above the tolerance "
            f"{result.tolerance:g} for {cfg.model.dtype}. Compare fewer epochs"
            + (
                ", a smaller lr, or float64 (--set model.dtype=float64)"
                if cfg.model.dtype == "float32"
                else " or a smaller lr"
            )
            + " to see whether it is rounding or a real difference."
        )


def _values_or_data(ctx: typer.Context, param: typer.CallbackParam, values: list[str] | None) -> list[str] | None:
    """VALUE is required unless --data names a table. The parser handles the parameters given before those
    left out, so ctx.params holds --data here when it was given."""
    if not values and ctx.params.get("data") is None:
        # click's "Missing argument", from the click typer uses (its own copy in typer 0.19 and later)
        missing = sys.modules[typer.BadParameter.__module__].MissingParameter
        raise missing(ctx=ctx, param=param)
    return values


@app.command(cls=Command, context_settings={"ignore_unknown_options": True}, epilog=EXIT_CODES)
@handled
def predict(
    values: Annotated[
        list[str] | None,
        typer.Argument(
            help="Samples, one per argument; features separated by commas (e.g. 1.5,2). "
            "'-' reads samples from stdin, one per line. A model with categorical columns takes one value per "
            "column of its training table, in order, a level name for a categorical one (e.g. 3.5,red; "
            "'3.5,New York').",
            show_default=False,
            metavar="VALUE",
            callback=_values_or_data,
        ),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            "-m",
            metavar="PATH",
            help="model.json or a run folder. Default: the newest run under ./runs.",
            parser=given_path,
        ),
    ] = None,
    interval: Annotated[
        str | None,
        typer.Option(
            metavar="LEVEL",
            help="Also print the prediction interval at this level (e.g. 0.95 or 95%): three numbers per line, "
            "prediction, low, high (with --data: columns lower and upper). Uses the training statistics stored in "
            "the model.",
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            metavar="FILE",
            help="Predict every row of this table instead of VALUEs: CSV (.csv, .tsv, also .gz, .bz2, .zst) or "
            "Parquet, columns matched by name to the model's features. Prints CSV: the table plus a prediction "
            "column.",
            parser=given_path,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="OUT",
            help="With --data: write the CSV to this file (whole or not at all).",
            parser=given_path,
        ),
    ] = None,
    delimiter: DelimiterOption = None,
    json_output: JsonOption = False,
) -> None:
    """Print the model's prediction for each sample, one number per line and nothing else; with --data, the
    table as CSV with a prediction column added."""
    from lrtrain import model as model_module
    from lrtrain import samples
    from lrtrain.errors import InputError

    level = samples.parse_level(interval) if interval is not None else None
    if data is None:
        if output is not None:
            raise InputError(f"-o {output} writes the predictions of a table: give the table with --data FILE.")
        if delimiter is not None:
            raise InputError("--delimiter says how a table's fields are separated: give the table with --data FILE.")
        model_module.predict(values or [], model, json_output, sys.stdin, sys.stdout, sys.stderr, level)
        return
    if values:
        raise InputError(
            f"predict takes VALUEs or --data FILE, not both (got {' '.join(values)} and --data {data}). "
            "Put the samples in the table, or predict them in a second command."
        )
    if json_output:
        raise InputError("predict --data writes CSV; --json is for VALUEs. Leave --json out.")
    from lrtrain import scoring

    scoring.predict_file(model, data, output, level, warn, line, delimiter)


@app.command(cls=Command, epilog=EXIT_CODES)
@handled
def evaluate(
    run: RunArgument = None,
    data: DataOption = ...,  # type: ignore[assignment]
    delimiter: DelimiterOption = None,
    json_output: JsonOption = False,
) -> None:
    """MSE, RMSE, MAE and R² of a model on a table that holds its features and its target (columns by name).

    R² is as fit reports it: 1 - SSE/sum((y - mean y)^2) for a model with a bias, uncentered
    (1 - SSE/sum(y^2)) without one. The table is read in batches: any size fits in memory.
    """
    from lrtrain import model as model_module
    from lrtrain import render, scoring

    loaded = (
        model_module.load(run, "Name a run folder or its model.json as RUN")
        if run is not None
        else model_module.load_latest(Path("runs"), warn, "name a RUN")
    )
    result = scoring.evaluate(loaded, scoring.open_table(data, delimiter))
    render.evaluation(dataclasses.asdict(result), output(json_output))


@app.command(cls=Command, epilog=EXIT_CODES)
@handled
def summary(
    run: RunArgument = None,
    json_output: JsonOption = False,
) -> None:
    """Statistical summary of a model, as statsmodels' OLS shows it: coefficients with standard errors,
    t, P>|t| and 95% intervals; R², adjusted R², F and its p-value, residual standard error,
    log-likelihood, AIC, BIC and the condition number, for the rows it was trained on."""
    from lrtrain import model as model_module
    from lrtrain import render

    loaded = (
        model_module.load(run, "Name a run folder or its model.json as RUN")
        if run is not None
        else model_module.load_latest(Path("runs"), warn, "name a RUN")
    )
    stored = loaded.require_statistics("lrtrain summary")
    run_folder = loaded.path.name == "model.json" and loaded.path.parent != Path()  # else name the file
    render.statistics(stored, str(loaded.path.parent if run_folder else loaded.path), output(json_output))


@app.command(cls=Command, epilog=EXIT_CODES)
@handled
def plot(
    run: RunArgument = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="The PNG to write. Default: loss.png in the run folder.",
            parser=given_path,
        ),
    ] = None,
) -> None:
    """Write a PNG of the loss per epoch (train and validation) and, for one feature, the data and fitted line.

    Needs matplotlib: pip install 'lrtrain[plot]'.
    """
    from lrtrain import model as model_module
    from lrtrain import plot as plot_module
    from lrtrain import runs as runs_module

    plot_module.require()
    run = run if run is not None else model_module.find_latest(Path("runs"), warn, "name a RUN").parent
    run = run.parent if run.name == runs_module.MODEL_FILE else run
    drawn = plot_module.plot_run(run, output if output is not None else run / "loss.png")
    for warning in drawn.warnings:
        warn(f"warning: {warning}")
    line(f"wrote {drawn.path} ({' and '.join(drawn.panels)})")


@app.command(cls=Command, epilog=EXIT_CODES)
@handled
def runs(
    runs_dir: Annotated[
        Path,
        typer.Option(
            "--dir", metavar="DIR", help="The folder that holds the runs (output.dir of the fits).", parser=given_path
        ),
    ] = Path("runs"),
    json_output: JsonOption = False,
) -> None:
    """List the run folders, oldest first: name, status, engine, epochs, final loss, R², when."""
    from lrtrain import model, render
    from lrtrain.runs import list_runs

    render.runs(list_runs(runs_dir, model.load), str(runs_dir), output(json_output))


@app.command(cls=Command, epilog=EXIT_CODES)
@handled
def info(json_output: JsonOption = False) -> None:
    """Versions of lrtrain, Python, NumPy and torch, the BLAS and its threads, every device torch can use.

    Paste its output into a bug report.
    """
    from lrtrain import engine_torch, render, system

    torch = engine_torch.describe()  # first: torch may load a BLAS of its own, which the rest then lists
    render.info(system.describe(torch), output(json_output))


@config_app.command("show", cls=Command)
@handled
def config_show(config: ConfigOption = None, set_: SetOption = None) -> None:
    """Print the resolved config as YAML: every key, defaults filled in, each with a comment."""
    from lrtrain.config import to_yaml

    line(to_yaml(read_config(config, set_)).removesuffix("\n"))


@config_app.command("validate", cls=Command, epilog=EXIT_CODES)
@handled
def config_validate(config: ConfigOption = None, set_: SetOption = None) -> None:
    """Check the config and that its data loads; exit 0 if both are fine, 2 with the errors if not."""
    from lrtrain.prepare import load, prepare

    cfg = read_config(config, set_)
    prepared = prepare(load(cfg), cfg)
    line(
        f"ok: {config or 'built-in default config'} is valid; {prepared.raw.origin}: "
        f"{prepared.rows + prepared.val_rows} rows, {prepared.features} feature(s), target {prepared.raw.target!r}."
    )


@config_app.command("schema", cls=Command)
@handled
def config_schema() -> None:
    """Print the config's JSON Schema (for editor completion and validation)."""
    from lrtrain.config import schema

    line(json.dumps(schema(), indent=2))


@data_app.command("make", cls=Command, epilog=EXIT_CODES)
@handled
def data_make(
    path: Annotated[
        Path,
        typer.Argument(
            help="Output file: .csv, .parquet, .npy (target in the last column) or .npz (x, y).",
            metavar="PATH",
            parser=given_path,
        ),
    ],
    rows: Annotated[int, typer.Option(min=1, metavar="N", help="Number of rows, >= 1.")] = 1000,
    features: Annotated[int, typer.Option(min=1, metavar="D", help="Number of features, >= 1.")] = 1,
    weights: Annotated[
        str | None,
        typer.Option(
            metavar="W,...", help="True weights, comma-separated, one per feature. Default: drawn from N(0, 1)."
        ),
    ] = None,
    bias: Annotated[float, typer.Option(metavar="B", help="True bias.")] = 0.0,
    noise: Annotated[
        float, typer.Option(min=0.0, metavar="SIGMA", help="Standard deviation of Gaussian noise on y, >= 0.")
    ] = 0.1,
    seed: Annotated[int, typer.Option(min=0, max=2**63 - 1, metavar="N", help="Random seed, 0 to 2^63 - 1.")] = 0,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a synthetic data set y = x.w + bias + noise (streamed: any size fits in memory)."""
    from lrtrain.sources.writers import make

    make(path, rows, features, weights, bias, noise, seed, force)
    line(f"wrote {path}: {rows} rows, {features} feature(s), target y. Train on it with:")
    line(f"  lrtrain fit --set data.path={path}")  # the name says the format: data.source follows


def main() -> None:
    # fit and compare count signals and stop at a safe point (Signals); the other commands are short, or
    # stream to files through atomic writers: for them SIGTERM is Ctrl-C, Python's KeyboardInterrupt
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    tolerant_streams()
    try:
        code = app(prog_name="lrtrain", standalone_mode=False)
    except typer.TyperException as exc:  # the parser's usage errors: bad option, missing argument
        if "--json" in sys.argv[1:]:
            report(ExitCode.USAGE, str(exc), json_output=True, stderr=False)
        usage_error(exc)
        code = ExitCode.USAGE
    except typer.Abort:  # Ctrl-C before a command started
        code = ExitCode.INTERRUPTED
    except OutputError as exc:  # --version, outside any command
        report(exc.exit_code, f"error: {exc}", json_output=False)
        code = exc.exit_code
    except BrokenPipeError:
        discard_stdout()
        code = ExitCode.OK
    except OSError as exc:  # --help or --version onto a stdout that cannot be written (/dev/full, >&-)
        discard_stdout()
        report(ExitCode.TRAINING_FAILED, f"error: cannot write the results to stdout: {exc.strerror or exc}.", False)
        code = ExitCode.TRAINING_FAILED
    for signum in (signal.SIGINT, signal.SIGTERM):  # the command is over: a late signal changes nothing
        signal.signal(signum, signal.SIG_IGN)
    sys.exit(flushed(code if isinstance(code, int) else 0))
