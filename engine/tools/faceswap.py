"""Face swap with an inswapper-style ONNX model, the way insightface runs ``inswapper_128``.

1. The largest face in the source picture is aligned to 112x112 and embedded by an
   ArcFace recognizer (``w600k_r50.onnx``: (1,3,112,112) -> (1,512)); the embedding is
   L2-normalised, insightface's ``normed_embedding``.
2. inswapper wants that embedding mapped through its "emap" matrix, which the real file
   stores as its last graph initializer (512x512, used by no node): ``latent = e @ emap``,
   normalised again. A swapper without such an initializer gets the embedding as is.
3. Each target face is aligned to 128x128 (RGB / 255), the swapper returns the new face
   (RGB in 0..1), and it is pasted back through the inverse warp under a feathered mask
   (insightface's: the warped crop area, eroded by a tenth of its size and blurred).

The recognizer's input normalisation follows insightface too: (x - 127.5) / 127.5 in RGB,
unless the graph starts with its own Sub and Mul (old mxnet exports), then raw pixels.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from engine.errors import BackendError, JobCancelled, ModelUnavailable
from engine.tools.faces import Face, FaceDetector, HaarFaceDetector, aligned_crop

ProgressFn = Callable[[int, int], None]
StopFn = Callable[[], bool]


def onnx_providers(device: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device in ("auto", "cuda") or device.startswith("cuda:"):
        if "CUDAExecutionProvider" in available:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _session(path: Path, providers: list[str]):  # -> ort.InferenceSession
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # the unused emap initializer would log a warning on every load
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers)


def _load_graph(path: Path, model: str):  # -> onnx.ModelProto
    import onnx

    if not path.is_file():
        raise ModelUnavailable(model, f"the model file {path.name} is missing")
    try:
        return onnx.load(str(path))
    except Exception as e:  # protobuf DecodeError and friends
        raise ModelUnavailable(model, f"{path.name} is not a readable ONNX model") from e


def _static(dim: object, default: int) -> int:
    return dim if isinstance(dim, int) and dim > 0 else default


class ArcFaceRecognizer:
    """(1,3,S,S) aligned face -> (1,D) identity embedding."""

    def __init__(self, path: Path, providers: list[str], model: str) -> None:
        graph = _load_graph(path, model).graph
        starts = [(n.op_type, n.name) for n in graph.node[:8]]
        self_normalising = any(
            op == "Sub" or name.startswith(("Sub", "_minus")) for op, name in starts
        ) and any(op == "Mul" or name.startswith(("Mul", "_mul")) for op, name in starts)
        self.mean, self.std = (0.0, 1.0) if self_normalising else (127.5, 127.5)
        try:
            self.session = _session(path, providers)
        except Exception as e:
            raise ModelUnavailable(model, f"onnxruntime cannot run {path.name}") from e
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or len(outputs[0].shape) != 2:
            raise ModelUnavailable(
                model, f"{path.name} is not a face recognizer (wants one (1,3,112,112) input)"
            )
        self.input_name = inputs[0].name
        self.size = _static(inputs[0].shape[2], 112)
        self.dim = _static(outputs[0].shape[1], 512)

    def embed(self, image_bgr: np.ndarray, face: Face) -> np.ndarray:
        """The L2-normalised embedding of ``face`` (insightface's ``normed_embedding``)."""
        crop, _ = aligned_crop(image_bgr, face, self.size)
        blob = (crop[:, :, ::-1].astype(np.float32) - self.mean) / self.std
        blob = np.ascontiguousarray(blob.transpose(2, 0, 1)[None])
        emb = self.session.run(None, {self.input_name: blob})[0].reshape(-1).astype(np.float32)
        return emb / max(float(np.linalg.norm(emb)), 1e-12)


class InSwapper:
    """(1,3,128,128) target crop + (1,D) source latent -> (1,3,128,128) swapped crop."""

    def __init__(self, path: Path, providers: list[str], model: str) -> None:
        from onnx import numpy_helper

        graph = _load_graph(path, model).graph
        try:
            self.session = _session(path, providers)
        except Exception as e:
            raise ModelUnavailable(model, f"onnxruntime cannot run {path.name}") from e
        inputs = self.session.get_inputs()
        images = [i for i in inputs if len(i.shape) == 4]
        vectors = [i for i in inputs if len(i.shape) == 2]
        if len(inputs) != 2 or len(images) != 1 or len(vectors) != 1:
            raise ModelUnavailable(
                model, f"{path.name} is not a face swapper (wants a 128x128 face and an embedding)"
            )
        self.target_name, self.source_name = images[0].name, vectors[0].name
        self.size = _static(images[0].shape[2], 128)
        self.dim = _static(vectors[0].shape[1], 512)
        self.emap: np.ndarray | None = None
        if graph.initializer:
            last = numpy_helper.to_array(graph.initializer[-1])
            if last.shape == (self.dim, self.dim):
                self.emap = last.astype(np.float32)

    def latent(self, embedding: np.ndarray) -> np.ndarray:
        latent = embedding.reshape(1, -1).astype(np.float32)
        if self.emap is not None:
            latent = latent @ self.emap
        return latent / max(float(np.linalg.norm(latent)), 1e-12)

    def swap_crop(self, crop_bgr: np.ndarray, latent: np.ndarray) -> np.ndarray:
        blob = np.ascontiguousarray(
            (crop_bgr[:, :, ::-1].astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        )
        pred = self.session.run(None, {self.target_name: blob, self.source_name: latent})[0]
        rgb = np.clip(pred[0].transpose(1, 2, 0) * 255.0, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(rgb[:, :, ::-1])


def paste_back(image_bgr: np.ndarray, face_bgr: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Blend the aligned ``face_bgr`` into ``image_bgr`` (in place and returned) through the
    inverse of ``matrix``, under a feathered mask. Only the face's bounding area is touched."""
    size = face_bgr.shape[0]
    inv = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64)
    mapped = corners @ inv[:, :2].T + inv[:, 2]
    h, w = image_bgr.shape[:2]
    x0, y0 = (int(max(0, np.floor(v))) for v in mapped.min(0))
    x1, y1 = int(min(w, np.ceil(mapped[:, 0].max()) + 1)), int(min(h, np.ceil(mapped[:, 1].max()) + 1))
    if x1 <= x0 or y1 <= y0:
        return image_bgr
    roi_inv = inv.copy()
    roi_inv[:, 2] -= (x0, y0)
    rw, rh = x1 - x0, y1 - y0
    fake = cv2.warpAffine(face_bgr, roi_inv, (rw, rh), borderValue=0.0).astype(np.float32)
    white = np.full((size, size), 255.0, np.float32)
    mask = cv2.warpAffine(white, roi_inv, (rw, rh), borderValue=0.0)
    mask[mask > 20] = 255
    ys, xs = np.nonzero(mask == 255)
    if len(ys) == 0:
        return image_bgr
    mask_size = int(np.sqrt((ys.max() - ys.min()) * (xs.max() - xs.min())))
    k = max(mask_size // 10, 10)
    # Outside the area counts as 0, as in insightface's whole-picture mask (the default
    # border would keep the area's cut edge, pasting the warp's black rim).
    mask = cv2.erode(mask, np.ones((k, k), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    k = max(mask_size // 20, 5)
    alpha = cv2.GaussianBlur(mask, (2 * k + 1, 2 * k + 1), 0)[:, :, None] / 255.0
    roi = image_bgr[y0:y1, x0:x1].astype(np.float32)
    image_bgr[y0:y1, x0:x1] = np.clip(alpha * fake + (1.0 - alpha) * roi + 0.5, 0, 255).astype(np.uint8)
    return image_bgr


@dataclass(frozen=True)
class _Models:
    recognizer: ArcFaceRecognizer
    swapper: InSwapper


class FaceSwapper:
    """A recognizer + swapper pair, loaded on first use and cached."""

    def __init__(
        self,
        recognizer_path: Path,
        swapper_path: Path,
        device: str = "auto",
        *,
        detector: FaceDetector | None = None,
    ) -> None:
        self.recognizer_path = Path(recognizer_path)
        self.swapper_path = Path(swapper_path)
        self.device = device
        self.detector: FaceDetector = detector or HaarFaceDetector()
        self._models: _Models | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.swapper_path.stem

    def load(self) -> _Models:
        with self._lock:
            if self._models is None:
                providers = onnx_providers(self.device)
                self._models = _Models(
                    ArcFaceRecognizer(self.recognizer_path, providers, self.recognizer_path.stem),
                    InSwapper(self.swapper_path, providers, self.name),
                )
            return self._models

    def swap(
        self,
        source: Image.Image,
        target: Image.Image,
        *,
        all_faces: bool = True,
        on_progress: ProgressFn | None = None,
        should_stop: StopFn | None = None,
    ) -> Image.Image:
        """``target`` with every face (or only the largest) replaced by the largest face in ``source``.

        Raises BackendError("error-no-face", which="source"|"target") and JobCancelled.
        """

        def step(done: int) -> None:
            if should_stop is not None and should_stop():
                raise JobCancelled()
            if on_progress is not None and done:
                on_progress(done, 3)

        step(0)
        models = self.load()
        src = _to_bgr(source)
        src_faces = self.detector.detect(src)
        if not src_faces:
            raise BackendError("error-no-face", backend="tools", which="source")
        latent = models.swapper.latent(models.recognizer.embed(src, src_faces[0]))
        step(1)
        out = _to_bgr(target)
        faces = self.detector.detect(out)
        if not faces:
            raise BackendError("error-no-face", backend="tools", which="target")
        step(2)
        for face in faces if all_faces else faces[:1]:
            if should_stop is not None and should_stop():
                raise JobCancelled()
            crop, matrix = aligned_crop(out, face, models.swapper.size)
            paste_back(out, models.swapper.swap_crop(crop, latent), matrix)
        step(3)
        result = Image.fromarray(np.ascontiguousarray(out[:, :, ::-1]), "RGB")
        if target.mode in ("RGBA", "LA") or "transparency" in target.info:
            result.putalpha(target.convert("RGBA").getchannel("A"))
        return result


def _to_bgr(image: Image.Image) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
