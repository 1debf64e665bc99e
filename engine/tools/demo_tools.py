"""Tiny random weights for the image tools, written under the real files' names.

Tests and ``python -m bot demo-model`` use them: the real loading code runs on them
(the same .pth layout as Real-ESRGAN's release, the same ONNX signatures as insightface's
w600k_r50 and inswapper_128), in well under a second, with no download. The upscaler is
wired to be a smooth x4 resize plus faint noise, so a demo upscale still looks like the
picture; the swapper tints the face by the source's embedding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.tools.backend import ToolModels, default_tool_models

DEMO_NUM_FEAT = 32
DEMO_NUM_GROW = 32  # spandrel recognises ESRGAN weights only with 32 grow channels
DEMO_NUM_BLOCK = 2


def build_demo_upscaler(path: Path, *, seed: int = 0, scale: int = 4) -> Path:
    """An RRDBNet checkpoint ({"params_ema": state_dict}, as Real-ESRGAN ships) at ``path``."""
    import torch

    from engine.tools.rrdb import RRDBNet

    gen = torch.Generator().manual_seed(seed)
    net = RRDBNet(
        3, 3, scale=scale, num_feat=DEMO_NUM_FEAT, num_block=DEMO_NUM_BLOCK, num_grow_ch=DEMO_NUM_GROW
    )
    unshuffle = net.unshuffle**2
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            else:
                fan_in = p.shape[1] * p.shape[2] * p.shape[3]
                p.copy_(torch.randn(p.shape, generator=gen) * (0.1 / fan_in**0.5))
        # Channels 0..2 carry the picture straight through; the rest is faint noise.
        centre = torch.zeros(3, 3)
        centre[1, 1] = 1.0
        blur = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16.0
        for c in range(3):
            net.conv_first.weight[c].zero_()
            # After pixel-unshuffle, channel c's first sub-pixel sits at c * factor^2.
            net.conv_first.weight[c, c * unshuffle] = centre
            for conv, kernel in ((net.conv_up1, blur), (net.conv_up2, blur), (net.conv_hr, centre)):
                conv.weight[c].zero_()
                conv.weight[c, c] = kernel
            net.conv_last.weight[c].mul_(0.1)
            net.conv_last.weight[c, c] = centre
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"params_ema": net.state_dict()}, path)
    return path


def build_demo_recognizer(path: Path, *, seed: int = 0, dim: int = 512) -> Path:
    """(1,3,112,112) -> (1,dim): average-pool to 8x8, flatten, one dense layer."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weight = (rng.standard_normal((3 * 8 * 8, dim)) / np.sqrt(3 * 8 * 8)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("AveragePool", ["input.1"], ["pooled"], kernel_shape=[14, 14], strides=[14, 14]),
            helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
            helper.make_node("Gemm", ["flat", "fc_weight", "fc_bias"], ["embedding"]),
        ],
        "demo_arcface",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, 112, 112])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, dim])],
        initializer=[
            numpy_helper.from_array(weight, "fc_weight"),
            numpy_helper.from_array(np.zeros(dim, np.float32), "fc_bias"),
        ],
    )
    _save_onnx(graph, path)
    return path


def build_demo_swapper(path: Path, *, seed: int = 0, dim: int = 512, with_emap: bool = True) -> Path:
    """(target (1,3,128,128), source (1,dim)) -> output (1,3,128,128) in 0..1.

    out = clip(target + oval * (0.5 * sigmoid(source @ W) - 0.5 * target + conv3x3(target)), 0, 1):
    a tint by identity inside a face-shaped oval, the crop's edges kept as they were. With
    ``with_emap`` the last initializer is a (dim, dim) matrix no node uses, as in the real
    inswapper_128.onnx.
    """
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed + 1)
    inits = [
        numpy_helper.from_array((rng.standard_normal((dim, 3)) * 4.0).astype(np.float32), "colour_weight"),
        numpy_helper.from_array(np.zeros(3, np.float32), "colour_bias"),
        numpy_helper.from_array(np.array([1, 3, 1, 1], np.int64), "colour_shape"),
        numpy_helper.from_array(
            (rng.standard_normal((3, 3, 3, 3)) * 0.05).astype(np.float32), "texture_weight"
        ),
        numpy_helper.from_array(_oval(128), "oval"),
        numpy_helper.from_array(np.array(0.5, np.float32), "half"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
    ]
    if with_emap:
        q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        inits.append(numpy_helper.from_array(q.astype(np.float32), "emap"))
    nodes = [
        helper.make_node("Gemm", ["source", "colour_weight", "colour_bias"], ["colour_logits"]),
        helper.make_node("Sigmoid", ["colour_logits"], ["colour_flat"]),
        helper.make_node("Reshape", ["colour_flat", "colour_shape"], ["colour"]),
        helper.make_node("Mul", ["colour", "half"], ["colour_half"]),
        helper.make_node("Mul", ["target", "half"], ["target_half"]),
        helper.make_node("Conv", ["target", "texture_weight"], ["texture"], pads=[1, 1, 1, 1]),
        helper.make_node("Sub", ["colour_half", "target_half"], ["shift"]),
        helper.make_node("Add", ["shift", "texture"], ["delta"]),
        helper.make_node("Mul", ["delta", "oval"], ["inside"]),
        helper.make_node("Add", ["target", "inside"], ["raw"]),
        helper.make_node("Clip", ["raw", "zero", "one"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "demo_inswapper",
        [
            helper.make_tensor_value_info("target", TensorProto.FLOAT, [1, 3, 128, 128]),
            helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, dim]),
        ],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 128, 128])],
        initializer=inits,
    )
    _save_onnx(graph, path)
    return path


def _oval(size: int) -> np.ndarray:
    """(1,1,size,size): 1 inside an upright oval where the face sits in an aligned crop,
    fading to 0 over a few pixels."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    r = np.sqrt(((xx - 0.5) / 0.34) ** 2 + ((yy - 0.55) / 0.42) ** 2)
    return np.clip((1.0 - r) * 8.0, 0.0, 1.0).astype(np.float32)[None, None]


def _save_onnx(graph, path: Path) -> None:  # graph: onnx.GraphProto
    import onnx
    from onnx import helper

    # IR 8 / opset 17: loadable by every onnxruntime from 1.14 on.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def build_demo_tools(dest_dir: Path, seed: int = 0) -> ToolModels:
    """All three tool models at their conventional places under ``dest_dir``."""
    models = default_tool_models(Path(dest_dir))
    build_demo_upscaler(models.upscaler, seed=seed)
    build_demo_recognizer(models.face_recognizer, seed=seed)
    build_demo_swapper(models.face_swapper, seed=seed)
    return models
