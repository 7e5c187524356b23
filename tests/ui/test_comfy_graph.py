"""ComfyUI graphs: Stable Cascade's two stages told apart, the editor's format, one-sampler graphs, and
graphs that are broken, cyclic or not graphs at all."""
import copy

import pytest

from ui.comfy_graph import MAX_NODES, GraphError, api_graph, parse_comfy

from .comfy_graphs import CASCADE_WORKFLOW, POSITIVE, SDXL_PROMPT, cascade_prompt, editor_node


def test_stable_cascade_stages_are_told_apart_through_the_stage_b_conditioning():
    found = parse_comfy(prompt=cascade_prompt())
    assert found.source == "ComfyUI"
    assert (found.prompt, found.negative_prompt) == (POSITIVE, "text, watermark")
    assert (found.width, found.height, found.seed) == (1024, 1536, 314307448448003)
    assert (found.prior_steps, found.prior_guidance, found.decoder_steps, found.decoder_guidance) == (20, 4.0, 10, 1.1)
    assert any("Stage B seed 183495397600639 not used" in note for note in found.notes)
    assert any("euler_ancestral / simple" in note for note in found.notes)


def test_the_stage_order_in_the_file_does_not_matter():
    graph = cascade_prompt()
    reordered = {key: graph[key] for key in sorted(graph, key=lambda k: k != "33")}  # Stage B's sampler first
    found = parse_comfy(prompt=reordered)
    assert (found.prior_steps, found.decoder_steps) == (20, 10)


def test_without_the_stage_b_conditioning_the_one_sampler_gives_composition_values():
    found = parse_comfy(prompt=SDXL_PROMPT)
    assert (found.prompt, found.negative_prompt) == ("a red fox\nin the snow", "blurry")
    assert (found.width, found.height) == (832, 1216)
    assert found.seed == 5150  # KSamplerAdvanced's noise_seed, linked to a seed node
    assert (found.prior_steps, found.prior_guidance, found.decoder_steps) == (30, 6.0, None)
    assert any(note.startswith("Not a Stable Cascade graph") for note in found.notes)


def test_the_editors_workflow_format():
    found = parse_comfy(workflow=CASCADE_WORKFLOW)
    assert (found.prompt, found.negative_prompt) == ("a castle on a hill at night, (stars:1.3)", "people")
    assert (found.width, found.height, found.seed) == (1536, 1024, 271828)
    assert (found.prior_steps, found.prior_guidance, found.decoder_steps, found.decoder_guidance) == (24, 4.5, 12, 1.1)
    assert found.loras == ()


def test_lora_loaders_in_the_graph_but_not_bypassed_ones():
    graph = cascade_prompt()
    graph["50"] = {"class_type": "LoraLoader", "inputs": {"lora_name": "styles/paper_cut.safetensors",
                                                          "strength_model": 0.7, "strength_clip": 1.0,
                                                          "model": ["41", 0], "clip": ["41", 1]}}
    graph["3"]["inputs"]["model"] = ["50", 0]
    assert parse_comfy(prompt=graph).loras == (("paper_cut", 0.7),)
    workflow = copy.deepcopy(CASCADE_WORKFLOW)
    workflow["nodes"] += [dict(editor_node(50, "LoraLoaderModelOnly", [], ["fernando.safetensors", 1.2])),
                          dict(editor_node(51, "LoraLoaderModelOnly", [], ["off.safetensors", 1.0]), mode=4)]
    assert parse_comfy(workflow=workflow).loras == (("fernando", 1.2),)


def test_the_editors_newer_link_objects():
    workflow = dict(CASCADE_WORKFLOW, links=[dict(zip(("id", "origin_id", "origin_slot", "target_id", "target_slot",
                                                       "type"), link)) for link in CASCADE_WORKFLOW["links"]])
    assert parse_comfy(workflow=workflow).decoder_steps == 12


def test_a_seed_out_of_the_studios_range_is_noted():
    graph = cascade_prompt()
    graph["3"]["inputs"]["seed"] = 2**64 - 1
    found = parse_comfy(prompt=graph)
    assert found.seed is None and any("seed 18446744073709551615 is outside" in note for note in found.notes)


def test_an_image_to_image_graph_has_no_size():
    graph = cascade_prompt()
    graph["34"] = {"class_type": "StableCascade_StageC_VAEEncode", "inputs": {"image": ["50", 0], "vae": ["41", 2]}}
    graph["50"] = {"class_type": "LoadImage", "inputs": {"image": "photo.png"}}
    found = parse_comfy(prompt=graph)
    assert found.width is None and any("size not read" in note for note in found.notes)
    assert found.prompt == POSITIVE


def test_cycles_and_dangling_links_end():
    graph = {"1": {"class_type": "KSampler", "inputs": {"positive": ["2", 0], "negative": ["9", 0], "steps": ["1", 0],
                                                       "cfg": ["2", 0], "seed": ["1", 0], "latent_image": ["1", 0]}},
             "2": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["2", 0], "conditioning_2": ["1", 0]}}}
    found = parse_comfy(prompt=graph)
    assert (found.prompt, found.prior_steps, found.seed, found.width) == ("", None, None, None)


@pytest.mark.parametrize("prompt, workflow, message", [
    ({"1": {"class_type": "SaveImage", "inputs": {}}}, None, "no sampler"),
    ([1, 2, 3], None, "not a graph"),
    ({}, None, "not a graph"),
    ({"1": "x", "2": {"inputs": []}}, None, "no sampler"),
    (None, {"nodes": "x"}, "has no nodes"),
    (None, [], "has no nodes"),
    (None, {"nodes": [{"id": 1, "type": "KSampler", "widgets_values": "x", "inputs": [{"name": [], "link": []}]}],
            "links": [[[], 1, 0]]}, "no sampler"),
])
def test_what_is_not_a_readable_graph_says_so(prompt, workflow, message):
    with pytest.raises(GraphError, match=message):
        parse_comfy(prompt=prompt, workflow=workflow)


def test_a_huge_graph_is_refused():
    with pytest.raises(GraphError, match="at most"):
        api_graph({str(k): {"class_type": "Note", "inputs": {}} for k in range(MAX_NODES + 1)})
