"""One way to give a freshly built network deterministic random weights that behave."""

from __future__ import annotations

import torch


def _scale_like(name: str, p: torch.Tensor) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    return p.ndim == 1 and (leaf == "weight" or leaf.startswith("gamma"))


def fill_random(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Fill every parameter of `module` from a generator seeded with `seed`, in parameter order:

    - matrices and kernels: normal with std 1/sqrt(fan-in), so activations keep their scale
      through the depth of the network;
    - norm weights and layer scales (vectors named `weight` or `gamma…`): 1 + 0.1 * normal, so
      residual streams stay alive and a swapped pair of them shows;
    - everything else (biases, scalars): 0.02 * normal.

    Host models are built without initialising their weights; the tests' models and checkpoint
    files all come through here. Returns `module`."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if p.ndim >= 2:
                p.copy_(noise / max(1, p[0].numel()) ** 0.5)
            elif _scale_like(name, p):
                p.copy_(1.0 + 0.1 * noise)
            else:
                p.copy_(0.02 * noise)
    return module
