"""Reliability diagrams of a calibrated run (``RunDir.read_calibration``).

Each bar is a confidence bin: its height the accuracy of the examples whose
top score fell there; a calibrated model's bars follow the diagonal.
"""

import io
import os
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ferjax import atomic

_BLUE = (0.12, 0.47, 0.71)  # The bars; their opacity: the bin's examples.


def reliability_figure(record: dict[str, Any], title: str = "") -> Figure:
  """Before and after temperature scaling, side by side; the bins' example
  counts as the bars' shade (explained in each panel's legend), ECE and NLL
  in each panel's title."""
  fig = Figure(figsize=(9, 4.2), layout="constrained")
  axes = fig.subplots(1, 2, sharey=True)
  panels = (("before", "softmax as trained", "ece", "nll"),
            ("after", f"T = {record['temperature']:.3f}", "ece_calibrated",
             "nll_calibrated"))
  for ax, (key, label, ece, nll) in zip(axes, panels):
    bins = record["reliability"][key]
    n = len(bins["count"])
    centres = (np.arange(n) + 0.5) / n
    count = np.asarray(bins["count"], np.float64)
    shade = 0.25 + 0.75 * count / max(count.max(), 1)
    ax.bar(centres, np.where(count > 0, bins["accuracy"], 0), 1 / n,
           color=[(*_BLUE, a) for a in shade], edgecolor="k", lw=0.5)
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="calibrated")
    used = count > 0
    ax.plot(centres[used], np.asarray(bins["confidence"])[used], "r.",
            label="mean confidence")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top score)",
           title=f"{label}: ECE {record[ece]:.4f}, NLL {record[nll]:.4f}")
    ax.grid(alpha=0.3)
    ax.legend(handles=[*ax.get_legend_handles_labels()[0], *(
        Patch(facecolor=(*_BLUE, alpha), edgecolor="k", lw=0.5, label=text)
        for alpha, text in (
            (1.0, f"accuracy, bin of {int(count.max())} examples (most)"),
            (0.25, "accuracy, bin of few examples")))],
              loc="upper left", fontsize="small")
  axes[0].set_ylabel("accuracy")
  fig.suptitle(title or (f"reliability on {record['split']} "
                         f"({record['num_examples']} examples, step "
                         f"{record['step']})"), fontsize="medium")
  return fig


def write_reliability_diagram(record: dict[str, Any],
                              path: str | os.PathLike,
                              title: str = "") -> None:
  """Writes ``reliability_figure`` as a PNG, atomically."""
  buffer = io.BytesIO()
  reliability_figure(record, title).savefig(buffer, format="png", dpi=100)
  atomic.write_bytes(path, buffer.getvalue())
