"""Finding faces and cutting aligned face crops, with OpenCV only.

Detection uses OpenCV's Haar cascade (shipped inside ``opencv-python-headless`` 4.x;
5.x dropped it). A Haar box has no landmarks, so the five points the ArcFace alignment
needs (eyes, nose tip, mouth corners) are placed at the usual proportions of a frontal
face inside the box, then corrected for roll and scale when the eye cascade finds both
eyes. That is cruder than insightface's SCRFD landmarks but needs no extra model; any
detector that returns ``Face`` objects can be passed in instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

# insightface's ArcFace template: the five landmarks in a 112x112 aligned crop.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)

# Where those landmarks sit inside a Haar frontal-face box, as fractions of its side.
_BOX_LANDMARKS = np.array(
    [[0.33, 0.40], [0.67, 0.40], [0.50, 0.60], [0.36, 0.78], [0.64, 0.78]], dtype=np.float32
)

Box = tuple[int, int, int, int]  # x, y, width, height


@dataclass(frozen=True)
class Face:
    box: Box
    # (5, 2) float32, image coordinates: left eye, right eye, nose tip, mouth left, mouth right.
    landmarks: np.ndarray

    @property
    def area(self) -> int:
        return self.box[2] * self.box[3]


class FaceDetector(Protocol):
    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        """Faces in a BGR uint8 picture, largest first."""
        ...


def _box(values: Sequence[int] | np.ndarray) -> Box:
    x, y, w, h = (int(v) for v in values)
    return x, y, w, h


def landmarks_from_box(box: Box) -> np.ndarray:
    x, y, w, h = box
    return (_BOX_LANDMARKS * np.array([w, h], np.float32) + np.array([x, y], np.float32)).astype(np.float32)


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity (rotation, uniform scale, shift) mapping ``src`` onto ``dst`` in the
    least-squares sense (Umeyama 1991), the same fit as insightface's ``estimate_norm``."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    sc, dc = src - mu_s, dst - mu_d
    cov = dc.T @ sc / len(src)
    u, d, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rot = u @ sign @ vt
    var = (sc**2).sum() / len(src)
    scale = (d * np.diag(sign)).sum() / var if var > 0 else 1.0
    m = np.zeros((2, 3), np.float64)
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def alignment_matrix(landmarks: np.ndarray, size: int) -> np.ndarray:
    """The warp from the picture to a ``size``-pixel aligned crop, as insightface builds it
    (112: the ArcFace template; 128: the same template shifted 8 px right)."""
    if size % 112 == 0:
        dst = ARCFACE_TEMPLATE * (size / 112.0)
    else:
        ratio = size / 128.0
        dst = ARCFACE_TEMPLATE * ratio
        dst = dst + np.array([8.0 * ratio, 0.0], np.float32)
    return umeyama(landmarks, dst)


def aligned_crop(image_bgr: np.ndarray, face: Face, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(crop, matrix): the face warped to a ``size`` square, and the picture->crop matrix."""
    m = alignment_matrix(face.landmarks, size)
    crop = cv2.warpAffine(image_bgr, m, (size, size), borderValue=0.0)
    return crop, m


class HaarFaceDetector:
    """Frontal faces with OpenCV's bundled Haar cascades. Thread-safe (one lock per detector:
    ``CascadeClassifier`` objects are not safe to share between threads)."""

    def __init__(self, *, min_neighbors: int = 5, scale_factor: float = 1.1, min_face: int = 24) -> None:
        base = cv2.data.haarcascades  # type: ignore[attr-defined]
        self._faces = cv2.CascadeClassifier(base + "haarcascade_frontalface_default.xml")
        self._eyes = cv2.CascadeClassifier(base + "haarcascade_eye.xml")
        if self._faces.empty():
            raise RuntimeError("OpenCV's Haar face cascade is missing (opencv-python-headless must be <5)")
        self.min_neighbors = min_neighbors
        self.scale_factor = scale_factor
        self.min_face = min_face
        self._lock = threading.Lock()

    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
        gray = cv2.equalizeHist(gray)
        side = min(gray.shape[:2])
        min_size = max(self.min_face, side // 20)
        with self._lock:
            boxes = self._faces.detectMultiScale(
                gray,
                scaleFactor=self.scale_factor,
                minNeighbors=self.min_neighbors,
                minSize=(min_size, min_size),
            )
            faces = [Face(_box(b), self._landmarks(gray, _box(b))) for b in boxes]
        return sorted(faces, key=lambda f: f.area, reverse=True)

    def _landmarks(self, gray: np.ndarray, box: Box) -> np.ndarray:
        """Box-proportion landmarks, moved onto the eyes when both are found."""
        guess = landmarks_from_box(box)
        x, y, w, h = box
        upper = gray[y : y + int(h * 0.6), x : x + w]
        if self._eyes.empty() or upper.size == 0:
            return guess
        eyes = self._eyes.detectMultiScale(
            upper, scaleFactor=1.1, minNeighbors=4, minSize=(max(8, w // 10),) * 2
        )
        if len(eyes) != 2:
            return guess
        centres = sorted(
            ((x + ex + ew / 2.0, y + ey + eh / 2.0) for ex, ey, ew, eh in eyes), key=lambda p: p[0]
        )
        found = np.array(centres, np.float32)
        m = umeyama(guess[:2], found)
        scale = float(np.hypot(m[0, 0], m[1, 0]))
        angle = float(np.degrees(np.arctan2(m[1, 0], m[0, 0])))
        # Two blobs far from where eyes belong are more likely eyebrows or glasses.
        if not (0.75 <= scale <= 1.33 and abs(angle) <= 30):
            return guess
        return (guess @ m[:, :2].T + m[:, 2]).astype(np.float32)


class BoxFaceDetector:
    """Faces from any function returning boxes (x, y, w, h), landmarks placed by proportion."""

    def __init__(self, find_boxes: Callable[[np.ndarray], Sequence[Box]]) -> None:
        self._find_boxes = find_boxes

    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        faces = [Face(_box(b), landmarks_from_box(_box(b))) for b in self._find_boxes(image_bgr)]
        return sorted(faces, key=lambda f: f.area, reverse=True)
