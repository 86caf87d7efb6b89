"""Socket types and transformer-option keys that several node modules share, declared once.

A leaf module: node modules import it, it imports nothing of the pack, so a node module whose
optional dependencies are missing never takes these declarations with it.
"""

from __future__ import annotations

from comfy_api.latest import io

# The output of Stereo Null-Text Inversion, read by the Stereo KSampler.
StereoInversionType = io.Custom("STEREO_INVERSION")
# A loaded monocular depth network, read by Estimate Disparity and the one-pass sampler.
DisparityModelType = io.Custom("DISPARITY_MODEL")
# A display target (stereo_ops.stereo_geometry.DisplayTarget): made by Stereo Display Target, read
# wherever divergence and convergence are set, which it then derives from its parallax budget.
StereoDisplayType = io.Custom("STEREO_DISPLAY")

# Transformer options through which a stereo sampler tells attention patches what it is running:
# a joint batch of N stereo pairs, or one eye's half of a split evaluation. Attention sharing acts
# only when one is present, so a plain sampler run is never paired up.
STEREO_PAIRS_OPTION = "stereo_pairs"
STEREO_PASS_OPTION = "stereo_pass"
# Set on a model by a patch that needs both eyes in one batch (bidirectional attention).
STEREO_JOINT_OPTION = "stereo_joint_batch"
