"""ComfyUI's `prompt` and `workflow` PNG chunks → the studio's settings.

ComfyUI's SaveImage stores the graph it ran twice: `prompt`, the API format
({node id: {"class_type", "inputs": {name: value or [source node id, output index]}}}), and
`workflow`, the editor's format (nodes with positional `widgets_values`, and `links`
[link id, source node, source slot, target node, target slot, type]). The API format is read;
the editor's is turned into it for the few node types whose widget order is known.

The settings are found through the sampler: its `positive` / `negative` inputs lead back to
CLIPTextEncode texts, its `latent_image` to EmptyLatentImage or StableCascade_EmptyLatentImage
(width, height). A Stable Cascade graph (ComfyUI's stable_cascade example) has two samplers: the
one whose positive conditioning comes through StableCascade_StageB_Conditioning is Stage B
(detail), and the sampler feeding that node's `stage_c` input is Stage C (composition).
"""
from __future__ import annotations

from .imported_settings import Collector, ImportedSettings

COMFYUI = "ComfyUI"
MAX_NODES = 5_000  # a graph with more is not read
MAX_DEPTH = 64  # links followed from a sampler to a text, a size or a number
STAGE_B_CONDITIONING = "StableCascade_StageB_Conditioning"
# The editor's widget order of the node types read here (ComfyUI nodes.py, comfy_extras/nodes_stable_cascade.py);
# "control_after_generate" is the editor's extra widget after a seed.
WIDGETS = {
    "KSampler": ("seed", "control_after_generate", "steps", "cfg", "sampler_name", "scheduler", "denoise"),
    "KSamplerAdvanced": ("add_noise", "noise_seed", "control_after_generate", "steps", "cfg", "sampler_name",
                         "scheduler", "start_at_step", "end_at_step", "return_with_leftover_noise"),
    "CLIPTextEncode": ("text",),
    "EmptyLatentImage": ("width", "height", "batch_size"),
    "StableCascade_EmptyLatentImage": ("width", "height", "compression", "batch_size"),
    "PrimitiveNode": ("value", "control_after_generate"),
    "LoraLoader": ("lora_name", "strength_model", "strength_clip"),
    "LoraLoaderModelOnly": ("lora_name", "strength_model"),
}
LORA_LOADERS = ("LoraLoader", "LoraLoaderModelOnly")
_OFF_MODES = (2, 4)  # the editor's muted and bypassed nodes
_TEXT_KEYS = ("text", "text_g", "string", "value", "prompt")
_SEED_KEYS = ("seed", "noise_seed")


class GraphError(ValueError):
    """The chunk is JSON but not a ComfyUI graph this reader understands; the message says what is missing."""


def parse_comfy(prompt: object = None, workflow: object = None) -> ImportedSettings:
    """The settings of a ComfyUI graph, from the parsed `prompt` chunk, else the parsed `workflow` chunk."""
    graph = api_graph(prompt) if prompt is not None else workflow_graph(workflow)
    samplers = [node_id for node_id, node in graph.items() if _is_sampler(node)]
    if not samplers:
        raise GraphError("the ComfyUI graph has no sampler (KSampler) to read settings from")
    found = Collector(COMFYUI)
    stage_c, stage_b = _stages(graph, samplers)
    if stage_b is None:
        several = f"; {len(samplers)} samplers, the first (node {stage_c}) read" if len(samplers) > 1 else ""
        found.note(f"Not a Stable Cascade graph: its sampler's steps and CFG are set as the composition (Stage C) "
                   f"values{several}")
    c_inputs = graph[stage_c]["inputs"]
    found.foreign_prompt("prompt", _text(graph, c_inputs.get("positive")))
    found.foreign_prompt("negative_prompt", _text(graph, c_inputs.get("negative")) or "")
    seed = _value(graph, next((c_inputs[k] for k in _SEED_KEYS if k in c_inputs), None), _SEED_KEYS)
    if seed is not None:
        found.number("seed", seed)
    _steps(found, graph, stage_c, "prior")
    if stage_b is not None:
        _steps(found, graph, stage_b, "decoder")
        b_inputs = graph[stage_b]["inputs"]
        b_seed = _value(graph, next((b_inputs[k] for k in _SEED_KEYS if k in b_inputs), None), _SEED_KEYS)
        if b_seed is not None and b_seed != seed:
            found.note(f"Stage B seed {b_seed} not used (the studio runs both stages from one seed)")
    size = _size(graph, c_inputs.get("latent_image"))
    if size:
        found.number("width", size[0])
        found.number("height", size[1])
    else:
        found.note("The sampler does not start from an empty latent of a set size (image to image?); size not read")
    for node in graph.values():
        if node["class_type"] in LORA_LOADERS and not node.get("off"):
            inputs = node["inputs"]
            found.lora(_value(graph, inputs.get("lora_name"), ("lora_name", "value"), kind=str),
                       _value(graph, inputs.get("strength_model"), ("strength_model", "value")))
    sampler = c_inputs.get("sampler_name"), c_inputs.get("scheduler")
    if all(isinstance(s, str) for s in sampler):
        found.note(f"Not used (the studio has its own sampler): {sampler[0]} / {sampler[1]}")
    return found.result()


def api_graph(data: object) -> dict:
    """The `prompt` chunk, checked: {node id: {"class_type": str, "inputs": dict}}."""
    if not isinstance(data, dict) or not data:
        raise GraphError("the ComfyUI `prompt` chunk is not a graph of nodes")
    if len(data) > MAX_NODES:
        raise GraphError(f"the ComfyUI graph has {len(data):,} nodes; at most {MAX_NODES:,} are read")
    graph = {}
    for node_id, node in data.items():
        if isinstance(node, dict) and isinstance(node.get("class_type"), str) and isinstance(node.get("inputs"), dict):
            graph[str(node_id)] = {"class_type": node["class_type"], "inputs": node["inputs"]}
    return graph


def workflow_graph(data: object) -> dict:
    """The editor's `workflow` chunk in the API format: links as [source id, slot], known widgets by name."""
    nodes = data.get("nodes") if isinstance(data, dict) else None
    if not isinstance(nodes, list) or not nodes:
        raise GraphError("the ComfyUI `workflow` chunk has no nodes")
    if len(nodes) > MAX_NODES:
        raise GraphError(f"the ComfyUI workflow has {len(nodes):,} nodes; at most {MAX_NODES:,} are read")
    sources = {}  # link id → [source node id, source slot]
    links = data.get("links")
    for link in links if isinstance(links, list) else []:
        if isinstance(link, dict):
            link = [link.get("id"), link.get("origin_id"), link.get("origin_slot")]
        if isinstance(link, list) and len(link) >= 3 and isinstance(link[0], int) and isinstance(link[1], (int, str)):
            sources[link[0]] = [str(link[1]), link[2]]
    graph = {}
    for node in nodes:
        if not isinstance(node, dict) or not isinstance(node.get("type"), str) or "id" not in node:
            continue
        inputs = _widgets(node["type"], node.get("widgets_values"))
        for slot in node.get("inputs") or []:
            if isinstance(slot, dict) and isinstance(slot.get("name"), str) and _hashable(slot.get("link")) in sources:
                inputs[slot["name"]] = sources[slot["link"]]
        graph[str(node["id"])] = {"class_type": node["type"], "inputs": inputs, "off": node.get("mode") in _OFF_MODES}
    return graph


def _widgets(class_type: str, values) -> dict:
    if isinstance(values, dict):  # some nodes save their widgets by name
        return dict(values)
    names = WIDGETS.get(class_type)
    if names is None or not isinstance(values, list):
        return {}
    return dict(zip(names, values))


def _hashable(value):
    return value if isinstance(value, (int, str)) else None


def _is_sampler(node: dict) -> bool:
    inputs = node["inputs"]
    return _is_link(inputs.get("positive")) and "steps" in inputs and "cfg" in inputs


def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int))


def _source(graph: dict, link) -> dict | None:
    return graph.get(str(link[0])) if _is_link(link) else None


def _stages(graph: dict, samplers: list[str]) -> tuple[str, str | None]:
    """(Stage C sampler, Stage B sampler) of a Stable Cascade graph, or (the first sampler, None)."""
    for node_id in samplers:
        conditioning = _source(graph, graph[node_id]["inputs"].get("positive"))
        if conditioning is not None and conditioning["class_type"] == STAGE_B_CONDITIONING:
            prior = conditioning["inputs"].get("stage_c")
            if _is_link(prior) and str(prior[0]) in samplers:
                return str(prior[0]), node_id
    return samplers[0], None


def _steps(found: Collector, graph: dict, node_id: str, stage: str) -> None:
    inputs = graph[node_id]["inputs"]
    for key, name in (("steps", f"{stage}_steps"), ("cfg", f"{stage}_guidance")):
        value = _value(graph, inputs.get(key), (key, "value"))
        if value is not None:
            found.number(name, value)


def _text(graph: dict, link) -> str | None:
    """The text of the first text encoder found back from a conditioning input (depth first, inputs in order)."""
    stack, seen = [(link, 0)], set()
    while stack:
        link, depth = stack.pop()
        node = _source(graph, link)
        if node is None or str(link[0]) in seen or depth > MAX_DEPTH:
            continue
        seen.add(str(link[0]))
        inputs = node["inputs"]
        if node["class_type"] == "ConditioningZeroOut":
            return ""
        for key in _TEXT_KEYS:
            if "TextEncode" in node["class_type"] or key in ("text", "text_g"):
                text = _value(graph, inputs.get(key), _TEXT_KEYS, kind=str)
                if text is not None:
                    return text
        stack.extend((value, depth + 1) for value in reversed(list(inputs.values())) if _is_link(value))
    return None


def _value(graph: dict, value, keys: tuple[str, ...], kind=(int, float)):
    """A widget value, or the value of a primitive node it is linked to (under one of `keys`)."""
    for _ in range(MAX_DEPTH):
        if isinstance(value, kind) and not isinstance(value, bool):
            return value
        node = _source(graph, value)
        if node is None:
            return None
        value = next((node["inputs"][k] for k in keys if k in node["inputs"]), None)
    return None


def _size(graph: dict, link) -> tuple[int, int] | None:
    """(width, height) of the empty latent a sampler starts from, following latent nodes back."""
    for _ in range(MAX_DEPTH):
        node = _source(graph, link)
        if node is None:
            return None
        inputs = node["inputs"]
        width, height = (_value(graph, inputs.get(k), (k, "value")) for k in ("width", "height"))
        if width is not None and height is not None:
            return width, height
        link = inputs.get("samples") or inputs.get("latent") or inputs.get("latent_image")
    return None
