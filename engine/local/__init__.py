"""The local engine: Hugging Face diffusers on this machine's GPU (or CPU).

``registry`` imports without torch (a vendor-only deployment lists no local models);
``backend`` and ``pipelines`` import torch and diffusers when used.
"""
