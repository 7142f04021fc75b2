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

# MIRROR[i]: the point that takes point i's place when the face is mirrored
# left-right (its partner on the other side; the midline's 28 points are
# their own). Derived from FER2013's 8,192 first training faces (those
# FaceMesh scored over 0.5): their eye-levelled mean shape, mirrored, matched
# to itself by the assignment of least total distance (every pair within
# 0.02 inter-ocular distances). tests/unit/test_action_units.py checks it is
# an involution that pairs the eyes, brows and face oval of ``CONTOURS``.
MIRROR = (
    0, 1, 2, 248, 4, 5, 6, 249, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
    250, 251, 252, 253, 254, 255, 256, 257, 258, 259, 260, 261, 262, 263, 264,
    265, 266, 267, 268, 269, 270, 271, 272, 273, 274, 275, 276, 277, 278, 279,
    280, 281, 282, 283, 284, 285, 286, 287, 288, 289, 290, 291, 292, 293, 294,
    295, 296, 297, 298, 299, 300, 301, 302, 303, 304, 305, 306, 307, 308, 309,
    310, 311, 312, 313, 314, 315, 316, 317, 318, 319, 320, 321, 322, 323, 94,
    324, 325, 326, 327, 328, 329, 330, 331, 332, 333, 334, 335, 336, 337, 338,
    339, 340, 341, 342, 343, 344, 345, 346, 347, 348, 349, 350, 351, 352, 353,
    354, 355, 356, 357, 358, 359, 360, 361, 362, 363, 364, 365, 366, 367, 368,
    369, 370, 371, 372, 373, 374, 375, 376, 377, 378, 379, 151, 152, 380, 381,
    382, 383, 384, 385, 386, 387, 388, 389, 390, 164, 391, 392, 393, 168, 394,
    395, 396, 397, 398, 399, 175, 400, 401, 402, 403, 404, 405, 406, 407, 408,
    409, 410, 411, 412, 413, 414, 415, 416, 417, 418, 195, 419, 197, 420, 199,
    200, 421, 422, 423, 424, 425, 426, 427, 428, 429, 430, 431, 432, 433, 434,
    435, 436, 437, 438, 439, 440, 441, 442, 443, 444, 445, 446, 447, 448, 449,
    450, 451, 452, 453, 454, 455, 456, 457, 458, 459, 460, 461, 462, 463, 464,
    465, 466, 467, 3, 7, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
    33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70,
    71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89,
    90, 91, 92, 93, 95, 96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107,
    108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122,
    123, 124, 125, 126, 127, 128, 129, 130, 131, 132, 133, 134, 135, 136, 137,
    138, 139, 140, 141, 142, 143, 144, 145, 146, 147, 148, 149, 150, 153, 154,
    155, 156, 157, 158, 159, 160, 161, 162, 163, 165, 166, 167, 169, 170, 171,
    172, 173, 174, 176, 177, 178, 179, 180, 181, 182, 183, 184, 185, 186, 187,
    188, 189, 190, 191, 192, 193, 194, 196, 198, 201, 202, 203, 204, 205, 206,
    207, 208, 209, 210, 211, 212, 213, 214, 215, 216, 217, 218, 219, 220, 221,
    222, 223, 224, 225, 226, 227, 228, 229, 230, 231, 232, 233, 234, 235, 236,
    237, 238, 239, 240, 241, 242, 243, 244, 245, 246, 247)
