"""Local image tools: ESRGAN-family upscaling and inswapper-style face swap.

Nothing heavy is imported here: ``torch`` loads only when an upscale runs, and the
face tools only need OpenCV and onnxruntime. ``ToolsBackend`` (``engine.tools.backend``)
puts both behind the common ``engine.backend.Backend`` protocol.
"""
