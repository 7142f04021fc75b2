"""Named parts of FaceMesh's 468 points (MediaPipe's indices).

The contours are MediaPipe's ``FACEMESH_CONTOURS`` (face_mesh_connections.py
of mediapipe 0.10.21, Apache-2.0) written as polylines. "Right" and "left"
are the subject's: a frontal face's right eye is on the image's left.
"""

# The face's outline, closed.
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397,
             365, 379, 378, 400, 377, 152, 148, 176, 149, 150, 136, 172, 58,
             132, 93, 234, 127, 162, 21, 54, 103, 67, 109, 10)
LIPS = ((61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291),   # outer lower
        (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291),     # outer upper
        (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308),    # inner lower
        (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308))    # inner upper
RIGHT_EYE = ((33, 7, 163, 144, 145, 153, 154, 155, 133),
             (33, 246, 161, 160, 159, 158, 157, 173, 133))
LEFT_EYE = ((263, 249, 390, 373, 374, 380, 381, 382, 362),
            (263, 466, 388, 387, 386, 385, 384, 398, 362))
RIGHT_EYEBROW = ((46, 53, 52, 65, 55), (70, 63, 105, 66, 107))
LEFT_EYEBROW = ((276, 283, 282, 295, 285), (300, 293, 334, 296, 336))
# What `ferjax predict --landmarks` draws.
CONTOURS = (FACE_OVAL, *LIPS, *RIGHT_EYE, *LEFT_EYE, *RIGHT_EYEBROW,
            *LEFT_EYEBROW)

# Single points the geometric measures use.
RIGHT_EYE_OUTER, RIGHT_EYE_INNER = 33, 133
LEFT_EYE_OUTER, LEFT_EYE_INNER = 263, 362
RIGHT_UPPER_LID, RIGHT_LOWER_LID = 159, 145
LEFT_UPPER_LID, LEFT_LOWER_LID = 386, 374
RIGHT_BROW_INNER, RIGHT_BROW_OUTER = 107, 70  # Upper edge of the brow.
LEFT_BROW_INNER, LEFT_BROW_OUTER = 336, 300
RIGHT_ALA, LEFT_ALA = 48, 278  # The nostrils' wings.
SUBNASALE = 2  # Where the nose meets the upper lip.
UPPER_LIP_TOP, LOWER_LIP_BOTTOM = 0, 17
UPPER_LIP_INNER, LOWER_LIP_INNER = 13, 14
RIGHT_MOUTH_CORNER, LEFT_MOUTH_CORNER = 61, 291
RIGHT_LOWER_LIP_SIDE, LEFT_LOWER_LIP_SIDE = 91, 321  # Beside the corners.
NOSE_TIP, CHIN = 1, 152
