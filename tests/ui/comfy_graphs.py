"""ComfyUI graphs as its SaveImage stores them, for the tests: Stable Cascade's text-to-image example
(two KSamplers joined by StableCascade_StageB_Conditioning) in the API (`prompt`) and editor (`workflow`)
formats, and a one-sampler SDXL graph."""
import copy

POSITIVE = "evening sunset scenery blue sky nature, glass bottle with a fizzy ice cold freezing rainbow liquid in it"


def _link(node, slot=0):
    return [node, slot]


CASCADE_PROMPT = {
    "3": {"class_type": "KSampler", "_meta": {"title": "KSampler"},
          "inputs": {"seed": 314307448448003, "steps": 20, "cfg": 4, "sampler_name": "euler_ancestral",
                     "scheduler": "simple", "denoise": 1, "model": _link("41"), "positive": _link("6"),
                     "negative": _link("7"), "latent_image": _link("34")}},
    "6": {"class_type": "CLIPTextEncode", "_meta": {"title": "CLIP Text Encode (Positive Prompt)"},
          "inputs": {"text": POSITIVE, "clip": _link("41", 1)}},
    "7": {"class_type": "CLIPTextEncode", "_meta": {"title": "CLIP Text Encode (Negative Prompt)"},
          "inputs": {"text": "text, watermark", "clip": _link("41", 1)}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": _link("33"), "vae": _link("42", 2)}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": _link("8")}},
    "33": {"class_type": "KSampler", "_meta": {"title": "KSampler"},
           "inputs": {"seed": 183495397600639, "steps": 10, "cfg": 1.1, "sampler_name": "euler_ancestral",
                      "scheduler": "simple", "denoise": 1, "model": _link("42"), "positive": _link("36"),
                      "negative": _link("40"), "latent_image": _link("34", 1)}},
    "34": {"class_type": "StableCascade_EmptyLatentImage",
           "inputs": {"width": 1024, "height": 1536, "compression": 42, "batch_size": 1}},
    "36": {"class_type": "StableCascade_StageB_Conditioning",
           "inputs": {"conditioning": _link("6"), "stage_c": _link("3")}},
    "40": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": _link("6")}},
    "41": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "stable_cascade_stage_c.safetensors"}},
    "42": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "stable_cascade_stage_b.safetensors"}},
}

# The same graph as the editor saves it: [link id, source node, source slot, target node, target slot, type].
_LINKS = [
    [1, 41, 0, 3, 0, "MODEL"], [2, 6, 0, 3, 1, "CONDITIONING"], [3, 7, 0, 3, 2, "CONDITIONING"],
    [4, 34, 0, 3, 3, "LATENT"], [5, 41, 1, 6, 0, "CLIP"], [6, 41, 1, 7, 0, "CLIP"], [7, 33, 0, 8, 0, "LATENT"],
    [8, 42, 2, 8, 1, "VAE"], [9, 8, 0, 9, 0, "IMAGE"], [10, 42, 0, 33, 0, "MODEL"], [11, 36, 0, 33, 1, "CONDITIONING"],
    [12, 40, 0, 33, 2, "CONDITIONING"], [13, 34, 1, 33, 3, "LATENT"], [14, 6, 0, 36, 0, "CONDITIONING"],
    [15, 3, 0, 36, 1, "LATENT"], [16, 6, 0, 40, 0, "CONDITIONING"],
]


def editor_node(node_id, node_type, inputs, widgets):
    return {"id": node_id, "type": node_type, "pos": [0, 0], "size": [300, 100], "flags": {}, "order": 0, "mode": 0,
            "inputs": [{"name": name, "type": "*", "link": link} for name, link in inputs],
            "outputs": [], "properties": {"Node name for S&R": node_type}, "widgets_values": widgets}


CASCADE_WORKFLOW = {
    "last_node_id": 42, "last_link_id": 16, "version": 0.4, "config": {}, "extra": {}, "groups": [],
    "links": _LINKS,
    "nodes": [
        editor_node(3, "KSampler", [("model", 1), ("positive", 2), ("negative", 3), ("latent_image", 4)],
              [271828, "randomize", 24, 4.5, "euler_ancestral", "simple", 1]),
        editor_node(6, "CLIPTextEncode", [("clip", 5)], ["a castle on a hill at night, (stars:1.3)"]),
        editor_node(7, "CLIPTextEncode", [("clip", 6)], ["people"]),
        editor_node(8, "VAEDecode", [("samples", 7), ("vae", 8)], []),
        editor_node(9, "SaveImage", [("images", 9)], ["ComfyUI"]),
        editor_node(33, "KSampler", [("model", 10), ("positive", 11), ("negative", 12), ("latent_image", 13)],
              [271828, "fixed", 12, 1.1, "euler_ancestral", "simple", 1]),
        editor_node(34, "StableCascade_EmptyLatentImage", [], [1536, 1024, 42, 1]),
        editor_node(36, "StableCascade_StageB_Conditioning", [("conditioning", 14), ("stage_c", 15)], []),
        editor_node(40, "ConditioningZeroOut", [("conditioning", 16)], []),
        editor_node(41, "CheckpointLoaderSimple", [], ["stable_cascade_stage_c.safetensors"]),
        editor_node(42, "CheckpointLoaderSimple", [], ["stable_cascade_stage_b.safetensors"]),
    ],
}

SDXL_PROMPT = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 832, "height": 1216, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox\nin the snow", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
    "10": {"class_type": "KSamplerAdvanced",
           "inputs": {"add_noise": "enable", "noise_seed": ["12", 0], "steps": 30, "cfg": 6.0,
                      "sampler_name": "dpmpp_2m", "scheduler": "karras", "start_at_step": 0, "end_at_step": 10000,
                      "return_with_leftover_noise": "disable", "model": ["4", 0], "positive": ["6", 0],
                      "negative": ["7", 0], "latent_image": ["5", 0]}},
    "12": {"class_type": "Seed (rgthree)", "inputs": {"seed": 5150}},
}


def cascade_prompt():
    return copy.deepcopy(CASCADE_PROMPT)
