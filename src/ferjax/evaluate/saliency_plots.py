"""The figure of ``evaluate.class_saliency``: each class's mean face, and its
mean saliency map over it, one column per class."""

import io
import os
from typing import Any

import cv2
import numpy as np
from matplotlib.figure import Figure

from ferjax.run import files

# The map's opacity over the mean face in the second row; the first row
# shows the face alone, so the map never hides it.
MAP_ALPHA = 0.4


def class_saliency_figure(result: dict[str, Any]) -> Figure:
  """Per class, above: the mean face, its name and example count; below:
  the mean map over it (jet, 0 to the largest class mean) with the contour
  of its top half."""
  names = result["class_names"]
  fig = Figure(figsize=(1.9 * len(names) + 0.6, 4.6), layout="constrained")
  axes = fig.subplots(2, len(names), squeeze=False)
  peak = np.nanmax(result["maps"]) if np.isfinite(result["maps"]).any() else 1
  for faces_ax, map_ax, name, face, heat, count in zip(
      axes[0], axes[1], names, result["mean_faces"], result["maps"],
      result["counts"]):
    faces_ax.set_axis_off()
    map_ax.set_axis_off()
    faces_ax.set_title(f"{name} (n={count})", fontsize="small")
    if not count:
      continue
    height, width = face.shape
    faces_ax.imshow(face, cmap="gray", vmin=0, vmax=255)
    map_ax.imshow(face, cmap="gray", vmin=0, vmax=255)
    resized = cv2.resize(heat.astype(np.float32), (width, height),
                         interpolation=cv2.INTER_LINEAR)
    image = map_ax.imshow(resized, cmap="jet", alpha=MAP_ALPHA, vmin=0,
                          vmax=peak or 1)
    if np.ptp(resized) > 0:
      map_ax.contour(resized, levels=[resized.min() + np.ptp(resized) / 2],
                     colors="white", linewidths=0.8)
  where = ("Grad-CAM at " + result["layer"] if result["method"] == "grad_cam"
           else "input-gradient saliency")
  fig.suptitle(f"mean face (above) and mean {where} of the true class "
               f"(below; white: its top half) on {result['split']} (step "
               f"{result['step']})", fontsize="medium")
  if any(result["counts"]):
    fig.colorbar(image, ax=axes[1].tolist(), shrink=0.8, label="mean map")
  return fig


def write_class_saliency(result: dict[str, Any],
                         path: str | os.PathLike) -> None:
  """Writes ``class_saliency_figure`` as a new PNG file, atomically; never
  over an existing file (``files.write_new``)."""
  buffer = io.BytesIO()
  class_saliency_figure(result).savefig(buffer, format="png", dpi=100)
  files.write_new(path, buffer.getvalue())
