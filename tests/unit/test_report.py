"""`ferjax report` on hand-made run directories with known numbers."""

import contextlib
import csv
import io
import json
import pathlib
import statistics

import pytest

from ferjax.commands import report as report_command
from ferjax.experiment import report
from ferjax.experiment import report_plots
from ferjax.experiment import runs as runs_lib
from ferjax.run.metric_writer import MetricWriter
from ferjax.run.run_dir import RunDir, RunDirError
from helpers import make_run


ACCURACIES = {  # (lr, seed) -> test accuracy at each eval.
    (0.05, 0): [0.5, 0.7, 0.6],
    (0.05, 1): [0.4, 0.65, 0.66],
    (0.1, 0): [0.3, 0.8, 0.75],
    (0.1, 1): [0.2, 0.7, 0.72],
    (0.2, 0): [0.1, 0.2, 0.3],
}


def make_runs(tmp_path: pathlib.Path) -> list[pathlib.Path]:
  """A sweep tree plus another directory, with runs that must not count."""
  sweep_dir, other = tmp_path / "sweep", tmp_path / "other"
  for (lr, seed), accs in ACCURACIES.items():
    make_run(sweep_dir / f"lr={lr}" / f"seed={seed}", seed=seed, lr=lr,
             accuracies=accs)
  make_run(sweep_dir / "lr=0.05" / "seed=2", seed=2, lr=0.05,
           accuracies=[0.99], finished=False)
  make_run(other / "lr=0.05,seed=0.reproduce", seed=0, lr=0.05,
           accuracies=[0.1, 0.1, 0.1], command="reproduce")
  return [sweep_dir, other]


@pytest.fixture(scope="module")
def reported(tmp_path_factory) -> tuple[list[pathlib.Path], pathlib.Path, str]:
  """The runs, the report's directory and what ``ferjax report`` printed."""
  tmp_path = tmp_path_factory.mktemp("report")
  dirs, out = make_runs(tmp_path), tmp_path / "out"
  printed = io.StringIO()
  with contextlib.redirect_stdout(printed):
    assert report_command.main([*map(str, dirs), "--out", str(out)]) == 0
  return dirs, out, printed.getvalue()


def read_csv(path: pathlib.Path) -> list[dict[str, str]]:
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


def test_table_has_differing_fields_and_final_and_best(reported):
  _, out, printed = reported
  rows = {r["run"]: r for r in read_csv(out / "report.csv")}
  assert len(rows) == len(ACCURACIES) + 2
  header = list(next(iter(rows.values())))
  assert header[:5] == ["run", "seed", "optimizer.learning_rate", "status",
                        "step"]
  for (lr, seed), accs in ACCURACIES.items():
    row = rows[f"sweep/lr={lr}/seed={seed}"]
    assert (row["seed"], float(row["optimizer.learning_rate"])) == (
        str(seed), lr)
    assert row["status"] == "finished" and row["step"] == str(10 * len(accs))
    assert float(row["test/accuracy_final"]) == accs[-1]
    assert float(row["test/accuracy_best"]) == max(accs)
    assert float(row["test/macro_f1_best"]) == max(accs) / 2
  assert rows["sweep/lr=0.05/seed=2"]["status"] == "unfinished"
  assert "| sweep/lr=0.1/seed=1 | 1 | 0.1 | finished | 30 | 0.7200 |" in (
      printed)


def test_seed_groups_mean_and_sample_std(reported):
  _, out, printed = reported
  groups = {r["optimizer.learning_rate"]: r
            for r in read_csv(out / "report_seeds.csv")}
  assert set(groups) == {"0.05", "0.1"}  # 0.2 has one seed: no group.
  for lr in (0.05, 0.1):
    g = groups[str(lr)]
    # The unfinished seed 2 and the reproduction of seed 0 do not count.
    assert (g["n"], g["seeds"]) == ("2", "0, 1")
    for which, pick in (("final", lambda a: a[-1]), ("best", max)):
      values = [pick(ACCURACIES[lr, s]) for s in (0, 1)]
      assert float(g[f"test/accuracy_{which}_mean"]) == pytest.approx(
          statistics.mean(values))
      assert float(g[f"test/accuracy_{which}_std"]) == pytest.approx(
          statistics.stdev(values))  # ddof=1
  markdown = (out / "report.md").read_text()
  assert "ddof=1" in markdown
  final = [ACCURACIES[0.05, s][-1] for s in (0, 1)]
  cell = f"{statistics.mean(final):.4f} ± {statistics.stdev(final):.4f}"
  assert cell in markdown and cell in printed


def test_chosen_columns_in_their_order(tmp_path, capsys):
  dirs = make_runs(tmp_path / "runs")
  out = tmp_path / "out"
  assert report_command.main([*map(str, dirs), "--out", str(out), "--columns",
                      "test/macro_f1_final,test/accuracy_final"]) == 0
  printed = capsys.readouterr().out
  header = list(read_csv(out / "report_seeds.csv")[0])
  assert header[-4:] == [
      "test/macro_f1_final_mean", "test/macro_f1_final_std",
      "test/accuracy_final_mean", "test/accuracy_final_std"]
  assert list(read_csv(out / "report.csv")[0])[-2:] == [
      "test/macro_f1_final", "test/accuracy_final"]
  assert "_best" not in printed
  final = [ACCURACIES[0.1, s][-1] for s in (0, 1)]
  assert (f"| {statistics.mean(final) / 2:.4f} ± "
          f"{statistics.stdev(final) / 2:.4f} | {statistics.mean(final):.4f} "
          f"± {statistics.stdev(final):.4f} |") in printed


def test_unknown_column_names_the_known_ones(tmp_path, capsys):
  dirs = make_runs(tmp_path / "runs")
  assert report_command.main([*map(str, dirs), "--out", str(tmp_path / "out"),
                      "--columns", "test/accuracy_final,public_test/f1"]) == 2
  err = capsys.readouterr().err
  assert "--columns: unknown column(s) public_test/f1" in err
  assert "test/accuracy_best" in err and "Traceback" not in err
  assert not (tmp_path / "out").exists()


def test_plots_are_pngs(reported):
  _, out, _ = reported
  plots = out / "plots"
  names = {p.name for p in plots.iterdir()}
  assert {"learning_curves.png", "per_class_accuracy.png"} <= names
  assert len([n for n in names if n.startswith("confusion_")]) == 7
  for name in names:
    assert (plots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"(plots/{name})" in (out / "report.md").read_text()


def test_chosen_step_for_confusion_matrices(tmp_path):
  runs_dirs = make_runs(tmp_path / "runs")
  report.write_report(runs_dirs, tmp_path / "a", step=30)
  shown = {p.name for p in (tmp_path / "a" / "plots").glob("confusion_*")}
  assert len(shown) == 6  # Every run but the unfinished one reached step 30.
  assert "sweep/lr=0.05/seed=2: no eval confusion matrix at step 30" in (
      tmp_path / "a" / "report.md").read_text()
  report.write_report(runs_dirs, tmp_path / "b", eval_name="val")
  assert not list((tmp_path / "b" / "plots").glob("confusion_*"))


def test_no_runs_is_an_error(tmp_path, capsys):
  (tmp_path / "empty").mkdir()
  assert report_command.main([str(tmp_path / "empty")]) == 2
  assert "no run directories" in capsys.readouterr().err


def _overlaps(fig, legend, axes) -> list[str]:
  """Titles of axes whose drawn box intersects the legend's."""
  fig.canvas.draw()
  renderer = fig.canvas.get_renderer()
  box = legend.get_window_extent(renderer)
  return [ax.get_title() for ax in axes
          if box.overlaps(ax.get_window_extent(renderer))]


def test_learning_curves_band_per_seed_group_and_legend_outside(tmp_path):
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  runs = runs_lib.load_runs(make_runs(tmp_path))
  fields = runs_lib.varying_fields([r.config for r in runs])
  fig = report_plots.plot_learning_curves(runs, fields)
  FigureCanvasAgg(fig)
  test_ax = [ax for ax in fig.axes if ax.get_title() == "test accuracy"][0]
  labels = [line.get_label() for line in test_ax.lines
            if not line.get_label().startswith("_")]
  # One line per learning rate, the mean of its finished seeds (the
  # unfinished seed is drawn thin, the reproduction left out).
  # Each line is named by what its runs' names share.
  assert labels == ["sweep/lr=0.05 (n=2)", "sweep/lr=0.1 (n=2)",
                    "sweep/lr=0.2/seed=0"]
  line = test_ax.lines[[l.get_label() for l in test_ax.lines].index(
      "sweep/lr=0.1 (n=2)")]
  expected = [statistics.mean(ACCURACIES[0.1, s][i] for s in (0, 1))
              for i in range(3)]
  assert list(line.get_ydata()) == pytest.approx(expected)
  assert len(test_ax.collections) == 2  # ± std bands of the two groups
  assert _overlaps(fig, fig.legends[0], fig.axes) == []


def test_one_epoch_run_is_a_curve_per_step(tmp_path):
  make_run(tmp_path / "r", seed=0, lr=0.1, accuracies=[0.3, 0.4, 0.5, 0.6])
  runs = runs_lib.load_runs([tmp_path / "r"])
  fig = report_plots.plot_learning_curves(runs, [])
  train_ax = [ax for ax in fig.axes if ax.get_title() == "Training loss"][0]
  assert len(train_ax.lines[0].get_xdata()) == 4


def test_per_class_legend_beside_the_bars(tmp_path):
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  runs = runs_lib.load_runs(make_runs(tmp_path))
  fields = runs_lib.varying_fields([r.config for r in runs])
  selected = [(r, e) for r in runs if (e := report_plots.selected_event(r, None, None))]
  fig = report_plots.plot_per_class(selected, fields)
  FigureCanvasAgg(fig)
  assert _overlaps(fig, fig.legends[0], fig.axes) == []


FAMILIES = {  # name -> config fields: four recipes that differ everywhere.
    "lenet5": dict(model__name="lenet5", batch_size=128,
                   input__mean=[0.508268580717199], input__std=[0.25441]),
    "alexnet": dict(model__name="alexnet_bn", batch_size=64,
                    input__mean=[0.50826858071], input__std=[0.254413]),
    "vgg11_bn": dict(model__name="vgg", batch_size=64, input__mean=[0.5083],
                     input__std=[0.2544], optimizer__weight_decay=0.000123456),
    "googlenet": dict(model__name="googlenet_bn", batch_size=64,
                      input__mean=[0.5], input__std=[0.25]),
}
FAMILY_ACCURACY = {"lenet5": 0.3, "alexnet": 0.5, "vgg11_bn": 0.7,
                   "googlenet": 0.6}


def make_review(tmp_path: pathlib.Path, seeds: int = 1,
                suffix: str = "") -> pathlib.Path:
  """A sweep of named trials, one recipe per family, as the review's."""
  sweep_dir = tmp_path / "review"
  trials = []
  for family, fields in FAMILIES.items():
    for seed in range(seeds):
      name = f"{family}-seed{seed}{suffix}"
      acc = FAMILY_ACCURACY[family] + 0.02 * seed
      make_run(sweep_dir / name, seed=seed, lr=0.01 * (1 + len(family)),
               accuracies=[acc], **fields)
      trials.append({"name": name, "arg": f"family={family}",
                     "overrides": {"seed": str(seed)}, "status": "finished"})
  (sweep_dir / "sweep.json").write_text(json.dumps({"trials": trials}))
  return sweep_dir


def _drawn(fig):
  """Draws ``fig`` as a PNG is saved, with any matplotlib warning an error
  (constrained layout's 'axes sizes collapsed to zero' among them)."""
  import warnings
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  canvas = FigureCanvasAgg(fig)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    canvas.draw()
  return canvas.get_renderer()


def _assert_legend_clear(fig):
  """The legend lies inside the figure and on no axes' box or title."""
  renderer = _drawn(fig)
  legend = fig.legends[0].get_window_extent(renderer)
  page = fig.bbox
  assert (legend.x0 >= page.x0 and legend.y0 >= page.y0
          and legend.x1 <= page.x1 and legend.y1 <= page.y1), (legend, page)
  for ax in fig.axes:
    assert not legend.overlaps(ax.get_tightbbox(renderer)), ax.get_title()


def test_family_lines_are_named_by_their_runs(tmp_path):
  runs = runs_lib.load_runs([make_review(tmp_path)])
  fields = runs_lib.varying_fields([r.config for r in runs])
  fig = report_plots.plot_learning_curves(runs, fields)
  _assert_legend_clear(fig)
  names = [f"{family}-seed0" for family in sorted(FAMILIES)]
  for ax in fig.axes:
    labels = [l.get_label() for l in ax.lines if not l.get_label()[0] == "_"]
    assert labels == names, ax.get_title()
  assert fig.legends[0].texts and [
      t.get_text() for t in fig.legends[0].texts] == names
  selected = [(r, e) for r in runs
              if (e := report_plots.selected_event(r, None, None))]
  fig = report_plots.plot_per_class(selected, fields)
  _assert_legend_clear(fig)
  assert [t.get_text() for t in fig.legends[0].texts] == names


def test_seed_groups_named_by_family_with_spread(tmp_path):
  runs = runs_lib.load_runs([make_review(tmp_path, seeds=3)])
  fields = runs_lib.varying_fields([r.config for r in runs])
  families = sorted(FAMILIES)  # The runs' order: by directory name.
  assert [g.label for g in runs_lib.run_groups(runs, fields)] == families
  fig = report_plots.plot_comparison(runs, fields)
  _assert_legend_clear(fig)
  ax = fig.axes[0]
  assert [t.get_text() for t in ax.get_xticklabels()] == families
  from matplotlib.container import BarContainer
  accuracy_bars = [c for c in ax.containers if isinstance(c, BarContainer)][0]
  expected = [statistics.mean(FAMILY_ACCURACY[f] + 0.02 * s for s in range(3))
              for f in families]
  assert [b.get_height() for b in accuracy_bars] == pytest.approx(expected)
  assert [t.get_text() for t in fig.legends[0].texts] == [
      "accuracy", "macro F1"]
  # The error bars span ± the sample std over the three seeds: 0.02.
  caps = accuracy_bars.errorbar.lines[2][0].get_segments()
  assert [seg[1][1] - seg[0][1] for seg in caps] == pytest.approx(
      [2 * statistics.stdev([0.0, 0.02, 0.04])] * 4)


def test_long_run_names_never_clip_the_legend(tmp_path):
  runs = runs_lib.load_runs([make_review(tmp_path, suffix="-" + "x" * 150)])
  fields = runs_lib.varying_fields([r.config for r in runs])
  for fig in (report_plots.plot_learning_curves(runs, fields),
              report_plots.plot_comparison(runs, fields)):
    _assert_legend_clear(fig)


def test_shared_name():
  assert runs_lib._shared_name(["alexnet-seed0", "alexnet-seed1"]) == "alexnet"
  assert runs_lib._shared_name(["sweep/lr=0.1/seed=0", "sweep/lr=0.1/seed=1"]
                             ) == "sweep/lr=0.1"
  assert runs_lib._shared_name(
      ["seed=0,optimizer.learning_rate=0.05",
       "seed=1,optimizer.learning_rate=0.05"]) == (
           "optimizer.learning_rate=0.05")
  assert runs_lib._shared_name(["a/seed=1/b", "a/seed=2/b"]) == "a/b"
  assert runs_lib._shared_name(["a-b", "c"]) == ""


def test_review_table_shows_the_sweep_axes_rounded(tmp_path, capsys):
  sweep_dir = make_review(tmp_path, seeds=2)
  assert report_command.main([str(sweep_dir)]) == 0
  printed = capsys.readouterr().out
  header = printed.splitlines()[2]
  # A sweep's table: its axes (seed) only; computed fields nowhere.
  assert header.startswith("| run | seed | status | step | test/accuracy")
  assert "input.mean" not in (sweep_dir / "report.csv").read_text()
  assert "model.name" in next(iter(read_csv(sweep_dir / "report.csv")))
  assert "more config fields differ" in printed
  groups = read_csv(sweep_dir / "report_seeds.csv")
  assert [g["group"] for g in groups] == sorted(FAMILIES)
  assert {p.name for p in (sweep_dir / "plots").iterdir()} >= {
      "comparison.png", "learning_curves.png", "per_class_accuracy.png"}


def test_config_columns_chosen_like_metric_columns(tmp_path, capsys):
  sweep_dir = make_review(tmp_path)
  assert report_command.main([str(sweep_dir), "--columns",
                      "model.name,optimizer.weight_decay,"
                      "test/accuracy_final"]) == 0
  printed = capsys.readouterr().out
  assert "| run | model.name | optimizer.weight_decay | status | step | " \
         "test/accuracy_final |" in printed
  assert "| vgg11_bn-seed0 | vgg | 0.0001235 | finished | 10 | 0.7000 |" in (
      printed)
  rows = read_csv(sweep_dir / "report.csv")
  assert list(rows[0]) == ["run", "model.name", "optimizer.weight_decay",
                           "status", "step", "test/accuracy_final"]
  # The CSV keeps the exact value.
  assert {r["optimizer.weight_decay"] for r in rows} >= {"0.000123456"}


def test_one_point_curves_show_and_start_at_zero(tmp_path):
  make_run(tmp_path / "r", seed=0, lr=0.1, accuracies=[0.3])
  runs = runs_lib.load_runs([tmp_path / "r"])
  fig = report_plots.plot_learning_curves(runs, [])
  _drawn(fig)
  for ax in fig.axes:
    (line,) = ax.lines
    assert line.get_marker() == "o" and len(line.get_xdata()) == 1
    assert ax.get_xlabel() == "epoch" and ax.get_xlim()[0] == 0
    assert ax.get_xlim()[1] > line.get_xdata()[0] == 1.0
    assert ax.get_ylim()[0] == 0 < line.get_ydata()[0] < ax.get_ylim()[1]


def test_a_torn_last_line_is_left_out_with_a_note(tmp_path):
  """A finished run that lost its last 40 bytes: the final accuracy shown
  is the earlier eval's, and the notes say why."""
  make_run(tmp_path / "runs" / "a", seed=0, lr=0.1, accuracies=[0.5, 0.7])
  metrics = tmp_path / "runs" / "a" / "metrics.jsonl"
  metrics.write_bytes(metrics.read_bytes()[:-40])
  tables = report.write_report([tmp_path / "runs"], tmp_path / "out")
  assert "| 0.5000 |" in tables
  notes = (tmp_path / "out" / "report.md").read_text().split("## Notes")[1]
  assert "a: metrics.jsonl: line 4 is torn" in notes
  assert "final values are from before it" in notes


def test_a_damaged_line_before_the_last_is_reported(tmp_path):
  make_run(tmp_path / "runs" / "a", seed=0, lr=0.1, accuracies=[0.5, 0.7])
  make_run(tmp_path / "runs" / "b", seed=1, lr=0.1, accuracies=[0.5, 0.7])
  metrics = tmp_path / "runs" / "a" / "metrics.jsonl"
  lines = metrics.read_text().splitlines(keepends=True)
  lines[1] = lines[1][:30] + "\n"
  metrics.write_text("".join(lines))
  with pytest.raises(RunDirError, match=r"a/metrics\.jsonl: line 2 is not"):
    RunDir(metrics.parent).events()
  report.write_report([tmp_path / "runs"], tmp_path / "out")
  notes = (tmp_path / "out" / "report.md").read_text().split("## Notes")[1]
  assert "a: not reported, unreadable:" in notes and "line 2" in notes
  # Nor does a resumed run drop it: its trainer refuses to rewrite the file.
  writer = MetricWriter(metrics, tmp_path / "tb")
  with pytest.raises(ValueError, match=r"metrics\.jsonl: line 2 is not"):
    writer.truncate_after(10)
  writer.close()
  assert metrics.read_text() == "".join(lines)


def test_predicted_class_shares_and_calibration_are_reported(tmp_path):
  always_first = tmp_path / "runs" / "always_a"
  make_run(always_first, seed=0, lr=0.1, accuracies=[0.3])
  lines = (always_first / "metrics.jsonl").read_text().splitlines()
  last = json.loads(lines[-1])
  last["confusion_matrix"] = [[10, 0, 0], [10, 0, 0], [10, 0, 0]]
  (always_first / "metrics.jsonl").write_text(
      "\n".join([*lines[:-1], json.dumps(last)]) + "\n")
  make_run(tmp_path / "runs" / "other", seed=1, lr=0.1, accuracies=[0.6])
  bins = {"count": [0, 30], "confidence": [0.0, 0.9], "accuracy": [0, 0.3]}
  RunDir(always_first).write_calibration({
      "temperature": 2.5, "split": "val", "step": 10, "num_examples": 30,
      "nll": 1.5, "ece": 0.6, "nll_calibrated": 1.1, "ece_calibrated": 0.1,
      "reliability": {"before": bins, "after": bins}})
  out = tmp_path / "out"
  report.write_report([tmp_path / "runs"], out)
  tables = (out / "report.md").read_text()
  rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
          for line in tables.split("## Predicted classes")[1].split(
              "## Calibration")[0].splitlines()
          if line.startswith("| ") and "---" not in line}
  assert rows["always_a"] == ["test", "100.0%", "0.0%", "0.0%"]
  assert rows["(true share)"] == ["test", "33.3%", "33.3%", "33.3%"]
  assert rows["other"][1:] != ["100.0%", "0.0%", "0.0%"]
  assert "## Calibration" in tables
  assert "| always_a | 2.5000 | val | 10 | 1.5000 -> 1.1000 | 0.6000 -> " \
         "0.1000 |" in tables
  assert "plots/reliability_always_a.png" in tables
  assert (out / "plots" / "reliability_always_a.png").read_bytes()[:4] == \
      b"\x89PNG"
