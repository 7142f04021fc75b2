"""Dense facial key points and the geometric measures made from them.

``facemesh``: MediaPipe's FaceMesh (468 3-D points) as a Flax module with
its converted weights; ``action_units``: FACS-like measures and the
Procrustes-aligned descriptor computed from a mesh. A new geometric measure
goes into ``action_units`` (a function and one entry of its table).
"""
