"""Gabor kernels with OpenCV's semantics, applied as one FFT convolution.

``gabor_kernel`` equals ``cv2.getGaborKernel(ksize, sigma, theta, lambd,
gamma, psi)``: ``exp(-(x'^2 + gamma^2 y'^2) / (2 sigma^2)) *
cos(2 pi x' / lambd + psi)`` with ``x' = x cos(theta) + y sin(theta)`` and
``y' = -x sin(theta) + y cos(theta)``, sampled at integer ``x`` in
``[-(w // 2), w // 2]`` (so an even size gives one more tap, as OpenCV does)
and stored point-reflected, ``kernel[ymax - y, xmax - x]``. Kernels are
computed in float64 with NumPy when the bank is built, so they are
constants of the compiled program, never parameters.
"""

import math
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np


def gabor_kernel(ksize: tuple[int, int], sigma: float, theta: float,
                 lambd: float, gamma: float, psi: float = math.pi / 2
                 ) -> np.ndarray:
  """``cv2.getGaborKernel`` for a positive ``ksize=(width, height)``."""
  width, height = ksize
  if width <= 0 or height <= 0:
    raise ValueError(f"Gabor ksize: expected positive (width, height), got "
                     f"{ksize!r}")
  if sigma <= 0 or lambd <= 0 or gamma <= 0:
    raise ValueError(f"Gabor kernel: expected sigma, lambd and gamma > 0, got "
                     f"{sigma!r}, {lambd!r}, {gamma!r}")
  xmax, ymax = width // 2, height // 2
  sigma_x, sigma_y = sigma, sigma / gamma
  c, s = math.cos(theta), math.sin(theta)
  y, x = np.mgrid[-ymax:ymax + 1, -xmax:xmax + 1].astype(np.float64)
  xr = x * c + y * s
  yr = -x * s + y * c
  v = np.exp(-0.5 / sigma_x**2 * xr * xr - 0.5 / sigma_y**2 * yr * yr) * np.cos(
      2 * math.pi / lambd * xr + psi)
  return v[::-1, ::-1].copy()


def gabor_bank(*, ksize: int, sigmas: Sequence[float],
               wavelengths: Sequence[float], orientations: int,
               gamma: float) -> np.ndarray:
  """(k, k, 1, 2F) HWIO kernels: even then odd phase of F filters.

  Filter ``f`` is scale ``f // orientations`` (``sigmas[i]`` with
  ``wavelengths[i]``) at angle ``pi * (f % orientations) / orientations``;
  channel ``2f`` has ``psi=0`` (even) and ``2f+1`` ``psi=pi/2`` (odd).
  """
  if len(sigmas) != len(wavelengths) or not sigmas:
    raise ValueError(f"Gabor bank: expected as many wavelengths as sigmas "
                     f"(at least one), got {list(sigmas)} and "
                     f"{list(wavelengths)}")
  if orientations < 1:
    raise ValueError(f"Gabor orientations: expected an integer >= 1, got "
                     f"{orientations!r}")
  kernels = []
  for sigma, lambd in zip(sigmas, wavelengths):
    for k in range(orientations):
      theta = math.pi * k / orientations
      for psi in (0.0, math.pi / 2):
        kernels.append(gabor_kernel((ksize, ksize), sigma, theta, lambd,
                                    gamma, psi))
  return np.stack(kernels, axis=-1)[:, :, None, :].astype(np.float32)


def fft_size(n: int) -> int:
  """The smallest length >= ``n`` with no prime factor above 7.

  FFTs of such lengths are fast; a large prime factor is several times
  slower.
  """
  while True:
    rest = n
    for p in (2, 3, 5, 7):
      while rest % p == 0:
        rest //= p
    if rest == 1:
      return n
    n += 1


def gabor_magnitudes(gray: jnp.ndarray, bank: np.ndarray) -> jnp.ndarray:
  """(batch, H, W, F) magnitudes ``sqrt(even^2 + odd^2)`` of a bank.

  The SAME correlation of ``cv2.filter2D`` with zero borders, computed as a
  convolution by FFT rather than ``lax.conv``: XLA:CPU runs a convolution
  with one input channel and 9x9 kernels at a few GFLOP/s, so the default
  bank cost more than LeNet-5's whole train step; the FFT is about 3x
  faster (``benchmarks/README.md``). Each even/odd pair is one complex
  kernel ``even + i*odd``: as the image is real, the real and imaginary
  parts of its response are the two responses, so one forward FFT of the
  image and one inverse per filter give every pair. Padding to at least
  ``H + k - 1`` makes the circular convolution the linear one; in float32
  the result differs from the direct sum by rounding (about 1e-7 of the
  response's scale).
  """
  if gray.ndim != 3:
    raise ValueError(f"gabor_magnitudes: expected (batch, height, width), got "
                     f"shape {gray.shape}")
  bank = np.asarray(bank)
  _, height, width = gray.shape
  kh, kw = bank.shape[:2]
  size = (fft_size(height + kh - 1), fft_size(width + kw - 1))
  # Correlation is convolution with the point-reflected kernel; the kernel's
  # anchor is cv2.filter2D's default, its centre (k // 2).
  pairs = (bank[::-1, ::-1, 0, 0::2].astype(np.float64)
           + 1j * bank[::-1, ::-1, 0, 1::2].astype(np.float64))
  kernels = np.fft.fft2(pairs, s=size, axes=(0, 1)).astype(np.complex64)
  image = jnp.fft.fft2(gray.astype(jnp.float32), s=size)
  responses = jnp.fft.ifft2(image[..., None] * kernels, axes=(1, 2))
  top, left = kh - 1 - kh // 2, kw - 1 - kw // 2
  return jnp.abs(responses[:, top:top + height, left:left + width])
