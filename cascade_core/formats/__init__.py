"""Model files in the layouts users already have, converted once on load to the released names.

- `detect`: what a safetensors file holds, from its tensor names (one network or a ComfyUI bundle);
- `unet`: Stage C / B attention and mapper names of ComfyUI and diffusers → the released ones;
- `comfyui`: the prefixes of ComfyUI's single-file checkpoints and its CLIP text names;
- `diffusers_layout`: diffusers' network folders, their config.json and sharded weights;
- `networks`: one network's tensors → a `NetworkFile` (the renaming plan and the config that fits);
- `released_layout`: the released file names and `cascade.json` folders;
- `sources`: where each part of a model comes from; `plan`: the renaming plans and their lean load.
"""
