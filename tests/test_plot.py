"""PNG plots of real run folders: panels, atomic writes, and errors that say how to fix them."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

from lrtrain import plot
from lrtrain.errors import ConfigError

from .conftest import cli, files_under, run_installed

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, which must come first."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_MAGIC, head
    assert head[12:16] == b"IHDR"
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def fit_run(workdir: Path, *args: str) -> Path:
    """Train with `lrtrain fit ARGS` in-process and return the one new run folder."""
    before = set((workdir / "runs").glob("*")) if (workdir / "runs").exists() else set()
    result = cli("fit", *args)
    assert result.exit_code == 0, result.output
    (run,) = set((workdir / "runs").glob("*")) - before
    return run


def test_one_feature_run_gets_the_loss_and_the_fitted_line(workdir: Path) -> None:
    run = fit_run(workdir)
    out = workdir / "plots" / "run.png"
    drawn = plot.plot_run(run, out)
    assert drawn == plot.RunPlot(out, ("loss", "fit"), [])
    width, height = png_size(out)
    assert (width, height) == (round(13 * plot.DPI), round(4.5 * plot.DPI))
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]


def test_several_features_with_validation_get_the_loss_panel_only(workdir: Path) -> None:
    run = fit_run(
        workdir,
        *("--set", "data.source=synthetic", "--set", "data.features=3", "--set", "data.rows=200"),
        *("--set", "data.validation=0.25", "--set", "train.epochs=30"),
    )
    out = workdir / "loss.png"
    drawn = plot.plot_run(run, out)
    assert drawn.panels == ("loss",)
    assert drawn.warnings == []
    assert png_size(out) == (round(8 * plot.DPI), round(4.5 * plot.DPI))


def test_a_big_one_feature_run_is_subsampled_and_an_exact_fit_of_loss_zero_is_drawn(workdir: Path) -> None:
    big = fit_run(workdir, "--set", "data.source=synthetic", "--set", "data.rows=20000", "--set", "train.epochs=5")
    assert plot.plot_run(big, workdir / "big.png").panels == ("loss", "fit")
    exact = fit_run(workdir, "--engine", "exact")  # y = 2x: the loss is 0 or close, one "epoch"
    drawn = plot.plot_run(exact, workdir / "exact.png")
    assert drawn.panels == ("loss", "fit")
    assert drawn.warnings == []  # no log-scale warning either


def test_a_checkpointed_run_without_model_json_gets_the_loss(workdir: Path) -> None:
    run = fit_run(workdir)
    (run / "model.json").unlink()
    drawn = plot.plot_run(run, workdir / "loss.png")
    assert drawn.panels == ("loss",)
    assert drawn.warnings == []


def test_data_gone_since_training_still_writes_the_loss_and_warns(workdir: Path) -> None:
    data = workdir / "data.csv"
    data.write_text("size,price\n" + "".join(f"{i},{3 * i + 1}\n" for i in range(20)))
    run = fit_run(workdir, "--set", "data.source=csv", "--set", "data.path=data.csv", "--set", "data.standardize=true")
    data.unlink()
    out = workdir / "loss.png"
    drawn = plot.plot_run(run, out)
    assert drawn.panels == ("loss",)
    (warning,) = drawn.warnings
    assert str(data) in warning
    assert "loss only" in warning
    assert png_size(out)[0] == round(8 * plot.DPI)


@pytest.mark.parametrize("name", ["loss.jpg", "loss", "loss.PNG.svg"])
def test_only_png_is_written(workdir: Path, name: str) -> None:
    run = fit_run(workdir)
    before = files_under(workdir)
    with pytest.raises(ConfigError, match=r"PNG only.*\.png"):
        plot.plot_run(run, workdir / name)
    with pytest.raises(ConfigError, match="PNG only"):
        plot.plot_curves(workdir / name, {"manual": [(1, 1.0), (2, 0.5)]}, "compare")
    assert files_under(workdir) == before


def test_a_missing_run_folder_is_refused_and_nothing_written(workdir: Path) -> None:
    with pytest.raises(ConfigError, match=r"runs/nope does not exist.*lrtrain fit"):
        plot.plot_run(Path("runs/nope"), workdir / "loss.png")
    assert files_under(workdir) == set()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "holds no metrics.csv"),
        ("epoch,loss,val_loss,lr\n", "holds no epochs"),
        ("epoch,loss,val_loss\n1,abc,\n", "is damaged"),
        ("when,what\n1,2\n", "is damaged .its first line is not the header"),
        ("epoch,loss,val_loss,lr\n1,0.5,,0.1\n2,0.4", r"line 3 has 2 fields, the header 4"),  # cut short
        ("epoch,loss,val_loss,lr\n1,0.5,,0.1\n3,0.4,,0.1\n", "line 3 is epoch '3', not 2: epochs are missing"),
        ("epoch,loss,val_loss,lr\n1,0.5,,0.1\n2,nan,,0.1\n", "line 3: the loss is nan, not a finite number"),
        ("epoch,loss,val_loss,lr\n1,1e400,,0.1\n", "line 2: the loss is 1e400"),
        ("epoch,loss,val_loss,lr\n1,0.5,-5,0.1\n", "line 2: the val_loss is -5"),
        ("epoch,loss,val_loss,lr\n1,0.5,,0.1,9\n", "line 2 has 5 fields"),
    ],
)
def test_a_missing_or_damaged_metrics_csv_is_refused(workdir: Path, text: str | None, message: str) -> None:
    run = workdir / "runs" / "broken"
    run.mkdir(parents=True)
    if text is not None:
        (run / "metrics.csv").write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        plot.plot_run(run, workdir / "loss.png")
    assert "lrtrain fit" in str(caught.value)
    assert not (workdir / "loss.png").exists()


def test_without_matplotlib_the_error_says_how_to_install_it(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = fit_run(workdir)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ConfigError, match=r"pip install 'lrtrain\[plot\]'") as caught:
        plot.require()
    assert sys.executable in str(caught.value)
    with pytest.raises(ConfigError, match="matplotlib"):
        plot.plot_run(run, workdir / "loss.png")
    assert not (workdir / "loss.png").exists()


def test_compare_curves_with_a_one_point_optimum_and_zero_loss(workdir: Path) -> None:
    curves = {
        "manual": [(e, 10.0 * 0.8**e) for e in range(1, 51)],
        "torch:cpu": [(e, 10.0 * 0.8**e + 1e-3) for e in range(1, 51)],
        "exact": [(1, 0.0)],  # an exact fit: a log axis draws it at the floor, and says so
    }
    out = plot.plot_curves(workdir / "compare.png", curves, "lrtrain compare: default ($ in name)")
    assert out == workdir / "compare.png"
    assert png_size(out) == (round(8 * plot.DPI), round(4.5 * plot.DPI))


def test_a_failed_write_leaves_the_old_file(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.figure import Figure

    out = workdir / "loss.png"
    out.write_bytes(b"old")

    def broken(self: Figure, handle: object, **kwargs: object) -> None:
        handle.write(PNG_MAGIC)  # type: ignore[attr-defined]
        raise RuntimeError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        plot.plot_curves(out, {"manual": [(1, 1.0), (2, 0.5)]}, "compare")
    assert out.read_bytes() == b"old"
    assert files_under(workdir) == {"loss.png"}


def test_model_json_is_read_with_the_size_limit_of_every_model_read(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each read of model.json is bounded: one replaced by a huge file after it was checked is not read whole."""
    run = fit_run(workdir)
    monkeypatch.setenv("LRTRAIN_MAX_MODEL_MB", "0.01")
    real = plot.model_module.load

    def load_then_replaced(path: Path) -> plot.model_module.Model:
        loaded = real(path)
        path.write_text('{"engine": "manual", "pad": "' + "x" * 20_000 + '"}', encoding="utf-8")  # a writer, now
        return loaded

    monkeypatch.setattr(plot.model_module, "load", load_then_replaced)
    drawn = plot.plot_run(run, workdir / "loss.png")
    assert drawn.panels == ("loss",)
    (warning,) = drawn.warnings
    assert "model.json is larger than 0.01 MB" in warning
    assert "LRTRAIN_MAX_MODEL_MB" in warning


def test_a_run_whose_config_is_a_pipe_is_plotted_with_a_warning_not_waited_on(workdir: Path) -> None:
    import os

    assert cli("fit", "--set", "train.epochs=20").exit_code == 0
    run = next((workdir / "runs").iterdir())
    (run / "config.yaml").unlink()
    os.mkfifo(run / "config.yaml")
    result = run_installed("plot", str(run), "-o", "loss.png", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "config.yaml could not be read" in result.stderr
    assert "not a file" in result.stderr
    assert (workdir / "loss.png").read_bytes().startswith(b"\x89PNG")
