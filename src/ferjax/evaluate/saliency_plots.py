"""The figure of ``evaluate.class_saliency``: each class's mean face under its
mean saliency map, one panel per class."""

import io
import os
from typing import Any

import cv2
import numpy as np
from matplotlib.figure import Figure

from ferjax.run import files


def class_saliency_figure(result: dict[str, Any]) -> Figure:
  """One panel per class: the mean face, the mean map over it (jet, 0 to
  the largest class mean), the class and its example count."""
  names = result["class_names"]
  fig = Figure(figsize=(1.9 * len(names) + 0.6, 2.6), layout="constrained")
  axes = fig.subplots(1, len(names), squeeze=False)[0]
  peak = np.nanmax(result["maps"]) if np.isfinite(result["maps"]).any() else 1
  for ax, name, face, heat, count in zip(
      axes, names, result["mean_faces"], result["maps"], result["counts"]):
    ax.set_axis_off()
    ax.set_title(f"{name} (n={count})", fontsize="small")
    if not count:
      continue
    height, width = face.shape
    ax.imshow(face, cmap="gray", vmin=0, vmax=255)
    image = ax.imshow(cv2.resize(heat.astype(np.float32), (width, height),
                                 interpolation=cv2.INTER_LINEAR),
                      cmap="jet", alpha=0.45, vmin=0, vmax=peak or 1)
  where = ("Grad-CAM at " + result["layer"] if result["method"] == "grad_cam"
           else "input-gradient saliency")
  fig.suptitle(f"mean {where} of the true class on {result['split']} "
               f"(step {result['step']})", fontsize="medium")
  if any(result["counts"]):
    fig.colorbar(image, ax=axes.tolist(), shrink=0.8, label="mean map")
  return fig


def write_class_saliency(result: dict[str, Any],
                         path: str | os.PathLike) -> None:
  """Writes ``class_saliency_figure`` as a new PNG file, atomically; never
  over an existing file (``files.write_new``)."""
  buffer = io.BytesIO()
  class_saliency_figure(result).savefig(buffer, format="png", dpi=100)
  files.write_new(path, buffer.getvalue())
