"""Hand-crafted face descriptors as pure ``jax.numpy`` functions.

Everything here is a constant function of the image: no parameters, no
randomness, jit- and vmap-able, batched over NHWC float32 images. The models
in ``ferjax.models.fusion`` call it on device after augmentation.
"""

from ferjax.features.cells import cell_means
from ferjax.features.gabor import gabor_bank
from ferjax.features.gabor import gabor_kernel
from ferjax.features.gabor import gabor_magnitudes
from ferjax.features.lbp import LBP_METHODS
from ferjax.features.lbp import cell_histograms
from ferjax.features.lbp import lbp_codes
from ferjax.features.lbp import num_codes

__all__ = ["LBP_METHODS", "cell_histograms", "cell_means", "gabor_bank",
           "gabor_kernel", "gabor_magnitudes", "lbp_codes", "num_codes"]
