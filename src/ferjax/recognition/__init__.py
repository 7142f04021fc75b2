"""From photos to expression labels: detection, alignment, classification."""
