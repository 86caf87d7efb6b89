"""ComfyUI-StereoDiffusion: stereo pairs from any image diffusion checkpoint, training-free.

ComfyUI loads this folder as a custom node pack through the V3 entry point below.
"""

WEB_DIRECTORY = "./js"


async def comfy_entrypoint():
    from .nodes import StereoDiffusionExtension

    return StereoDiffusionExtension()


__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]
