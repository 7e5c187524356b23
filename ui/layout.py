"""The page: components, their wiring to ui.handlers, and the /generate and /stop endpoints."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from . import pictures
from .generation import Services
from .handlers import Handlers
from .hosting import gpu
from .presets import CUSTOM_SIZE, Presets

IMAGE_HEIGHT = 300  # fixed heights: no layout jumps while images stream
PICTURE_HEIGHT = 240  # the image panel's picture
EDITOR_HEIGHT = 420  # the mask editor (its tool bar included)
GALLERY_HEIGHT = 420
QUEUE_MAX_SIZE = 16  # waiting runs; one more is refused with gradio's "Queue is full" (try again later)
ENGINE = "engine"  # concurrency id shared by the page and the API: one generation at a time
GALLERY = "gallery"  # gallery clicks and actions run in click order (an action reads the selection)

CSS = (Path(__file__).with_name("studio.css")).read_text(encoding="utf-8")
JS = (Path(__file__).with_name("studio.js")).read_text(encoding="utf-8")


def build_app(services: Services, presets: Presets, *, title: str = "Cascade Studio",
              notes: list[str] = ()) -> gr.Blocks:
    """The Blocks of the studio; nothing is loaded here (the model loads in `services.holder`)."""
    h = Handlers(services, presets)
    q = presets.quality["balanced"]
    size_names = list(presets.sizes)
    with gr.Blocks(title=title, delete_cache=(600, 3600)) as demo:
        items, chosen, selected = gr.State([]), gr.State([]), gr.State(None)
        remembered = gr.BrowserState([], storage_key="cascade-studio-gallery")  # the gallery across reloads
        with gr.Row(elem_id="header"):
            gr.Markdown(f"## {title}", elem_id="title")
            model_md = gr.Markdown(services.holder.status_markdown(), elem_id="model-status")
        for note in notes:
            gr.Markdown(note, elem_classes=["note"])
        with gr.Row(equal_height=False):
            with gr.Column(scale=4, min_width=300, elem_id="controls"):
                prompt = gr.Textbox(label="Prompt", lines=1, max_lines=6, elem_id="prompt", autofocus=True,
                                    placeholder="Describe the image… (Enter or Ctrl+Enter generates)")
                negative = gr.Textbox(label="Negative prompt", lines=1, max_lines=4, elem_id="negative")
                with gr.Row():
                    generate = gr.Button("Generate", variant="primary", elem_id="generate-btn", scale=3)
                    stop = gr.Button("Stop", variant="stop", elem_id="stop-btn", scale=1)
                with gr.Accordion(pictures.panel_label(pictures.DEFAULT_MODE, None), open=False,
                                  elem_id="image-panel") as image_panel:  # closed: the text-to-image page stays simple
                    picture = gr.Image(label="Picture", type="filepath", image_mode=None,
                                       sources=["upload", "clipboard"],
                                       placeholder="Drop, paste or upload a picture, or select a gallery image and "
                                                   "press “Use as input”", height=PICTURE_HEIGHT, format="png",
                                       elem_id="picture")
                    mode = gr.Radio(list(pictures.MODES), value=pictures.DEFAULT_MODE, label="Mode",
                                    elem_id="image-mode")
                    mode_help = gr.Markdown(pictures.HELP[pictures.DEFAULT_MODE], elem_id="mode-help",
                                            elem_classes=["hint"])
                    strength = gr.Slider(0.05, 1, value=pictures.STRENGTH_DEFAULTS[pictures.DEFAULT_MODE], step=0.05,
                                         label="Strength", info="How far from the picture", elem_id="strength")
                    margin = gr.Slider(8, 1024, value=pictures.DEFAULT_MARGIN, step=8,
                                       label="Margin (px on every side)", visible=False, elem_id="margin")
                    control_scale = gr.Slider(0, 3, value=1.0, step=0.05, label="Control strength",
                                              info="How closely the control (edges, mask, picture) is followed",
                                              visible=False, elem_id="control-scale")
                    editor = gr.ImageEditor(label="Mask", type="pil", sources=[],
                                            transforms=(), layers=False, format="png", height=EDITOR_HEIGHT,
                                            brush=gr.Brush(colors=[("#ff2d95", 0.6)], color_mode="fixed"),
                                            buttons=[], visible=False, elem_id="mask-editor")
                style = gr.Dropdown(list(presets.styles), value="None", label="Style", elem_id="style")
                quality = gr.Radio(list(presets.quality), value="balanced", label="Quality", elem_id="quality",
                                   info="Stage C + Stage B steps: " + ", ".join(
                                       f"{name} {p['prior_steps']}+{p['decoder_steps']}"
                                       for name, p in presets.quality.items()))
                with gr.Row():
                    seed = gr.Number(label="Seed", value=0, precision=0, minimum=0, elem_id="seed", scale=3,
                                     min_width=140)
                    randomize = gr.Checkbox(label="Random seed", value=True, elem_id="randomize", scale=2,
                                            min_width=110)
                aspect = gr.Radio(size_names + [CUSTOM_SIZE], value=size_names[0], label="Aspect (≈1 megapixel)",
                                  elem_id="aspect")
                with gr.Row():
                    width = gr.Slider(256, 2048, value=1024, step=8, label="Width", elem_id="width")
                    height = gr.Slider(256, 2048, value=1024, step=8, label="Height", elem_id="height")
                num_images = gr.Slider(1, 8, value=1, step=1, label="Images", elem_id="num-images")
                with gr.Accordion("Steps and guidance", open=False):
                    prior_steps = gr.Slider(1, 200, value=q["prior_steps"], step=1, label="Stage C (prior) steps",
                                            info="Cheap; more steps help composition", elem_id="prior-steps")
                    prior_guidance = gr.Slider(0, 30, value=q["prior_guidance"], step=0.1,
                                               label="Stage C guidance", elem_id="prior-guidance")
                    decoder_steps = gr.Slider(1, 200, value=q["decoder_steps"], step=1, label="Stage B (decoder) steps",
                                              info="Stage B needs few", elem_id="decoder-steps")
                    decoder_guidance = gr.Slider(0, 30, value=q["decoder_guidance"], step=0.1,
                                                 label="Stage B guidance", elem_id="decoder-guidance")
            with gr.Column(scale=7, min_width=300, elem_id="outputs"):
                status = gr.Markdown("Ready.", elem_id="run-status", min_height=28)
                with gr.Row(elem_id="live"):
                    stage_c = gr.Image(label="Stage C preview", height=IMAGE_HEIGHT, interactive=False,
                                       elem_id="stage-c", min_width=160)
                    stage_b = gr.Image(label="Stage B / final", height=IMAGE_HEIGHT, interactive=False,
                                       elem_id="stage-b", min_width=160)
                    control_map = gr.Image(label="Control map (edges, mask)", height=IMAGE_HEIGHT, interactive=False,
                                           elem_id="control-map", min_width=160, visible=False)
                with gr.Tabs():
                    with gr.Tab("Gallery", id="gallery-tab"):
                        gal = gr.Gallery(label="This tab's images (newest first)", columns=4, height=GALLERY_HEIGHT,
                                         format="png", object_fit="contain", allow_preview=False, fit_columns=False,
                                         elem_id="gallery")
                        with gr.Row():
                            reload_btn = gr.Button("Load from outputs folder", size="sm", elem_id="reload-btn")
                            clear_btn = gr.Button("Clear gallery", size="sm", elem_id="clear-btn")
                        with gr.Column(visible=False, elem_id="detail") as detail:
                            with gr.Row():
                                reuse_all = gr.Button("Reuse all settings", size="sm", elem_id="reuse-all-btn")
                                reuse_seed = gr.Button("Reuse seed", size="sm", elem_id="reuse-seed-btn")
                                refine = gr.Button("Refine (more steps)", size="sm", elem_id="refine-btn")
                                compare_add = gr.Button("Add to compare", size="sm", elem_id="compare-add-btn")
                                download = gr.DownloadButton("Download PNG", size="sm", elem_id="download-btn")
                            with gr.Row():
                                var_count = gr.Slider(1, 8, value=4, step=1, label="Variations",
                                                      info="Images that Make variations and Vary make",
                                                      elem_id="var-count")
                                variations = gr.Button("Make variations", size="sm", elem_id="variations-btn")
                            with gr.Row():
                                use_input = gr.Button("Use as input", size="sm", elem_id="use-input-btn")
                                vary_subtle = gr.Button("Vary (subtle)", size="sm", elem_id="vary-subtle-btn")
                                vary_strong = gr.Button("Vary (strong)", size="sm", elem_id="vary-strong-btn")
                                upscale = gr.Button("Upscale 2×", size="sm", elem_id="upscale-btn")
                            details = gr.Dataframe(headers=["setting", "value"], interactive=False, wrap=True,
                                                   max_height=320, elem_id="details")
                    with gr.Tab("Compare (0)", id="compare-tab", elem_id="compare-tab") as compare_tab:
                        compare_note = gr.Markdown("Choose 2–4 images: select one in the gallery, then "
                                                   "**Add to compare**.", elem_id="compare-note")
                        compare_gal = gr.Gallery(columns=4, height=280, format="png", object_fit="contain",
                                                 allow_preview=False, label="Side by side", elem_id="compare-gallery")
                        compare_table = gr.Dataframe(interactive=False, wrap=True, max_height=360,
                                                     elem_id="compare-table")
                        compare_clear = gr.Button("Clear comparison", size="sm", elem_id="compare-clear-btn")

        # Hidden components of the API endpoints /generate and /generate_with_images (the page has its own handlers).
        with gr.Group(visible=False):
            api_preview = gr.Image(label="stage_c_preview", format="png")
            api_stage_b = gr.Image(label="stage_b", format="png")
            api_images = gr.Gallery(label="images", format="png")
            api_settings = gr.JSON(label="settings")
            api_status = gr.Textbox(label="status")
            api_map = gr.Image(label="control_map", format="png")
            api_unblended = gr.Gallery(label="unblended", format="png")  # repaint, extend: before the blend
            # /generate_with_images: pictures as files (the engine opens them), the engine's fields, the CLI's defaults
            api_init_image, api_image_prompt = gr.File(label="init_image"), gr.File(label="image_prompt")
            api_control_image, api_mask = gr.File(label="control_image"), gr.File(label="mask")
            api_strength = gr.Number(None, label="strength")
            api_image_size = gr.Number(None, label="image_size", precision=0)
            api_control = gr.Textbox("none", label="control")
            api_margin = gr.Number(0, label="margin", precision=0)
            api_control_scale = gr.Number(1.0, label="control_scale")
            api_images_trigger = gr.Button()
            api_trigger, api_stop = gr.Button(), gr.Button()
            stop_status = gr.Textbox()

        controls = [prompt, negative, style, width, height, seed, randomize, prior_steps, prior_guidance,
                    decoder_steps, decoder_guidance]
        # The image panel's values come last (ui_generate takes them after the request).
        ui_inputs = [prompt, negative, width, height, seed, randomize, prior_steps, prior_guidance, decoder_steps,
                     decoder_guidance, num_images, style, items, mode, picture, editor, strength, margin, control_scale]
        ui_outputs = [stage_c, stage_b, status, gal, items, seed, control_map]
        run = dict(fn=gpu(h.ui_generate), inputs=ui_inputs, outputs=ui_outputs, show_progress="minimal",
                   concurrency_limit=1, concurrency_id=ENGINE, api_visibility="private")
        once = gr.State(None)  # a gallery action's run (Vary, Upscale 2×): the controls stay as they are
        run_once = dict(fn=gpu(h.ui_once), inputs=[once, items], outputs=ui_outputs, show_progress="minimal",
                        concurrency_limit=1, concurrency_id=ENGINE, api_visibility="private")

        gr.on([generate.click, prompt.submit, negative.submit], **run)
        stop.click(h.stop, outputs=status, queue=False, api_name="stop_button", api_visibility="private")
        api_trigger.click(gpu(h.api_generate),
                          inputs=[prompt, negative, width, height, seed, prior_steps, prior_guidance, decoder_steps,
                                  decoder_guidance, num_images],
                          outputs=[api_preview, api_stage_b, api_images, api_settings, api_status],
                          api_name="generate", concurrency_limit=1, concurrency_id=ENGINE, show_progress="hidden")
        api_images_trigger.click(gpu(h.api_generate_with_images),
                                 inputs=[prompt, negative, width, height, seed, prior_steps, prior_guidance,
                                         decoder_steps, decoder_guidance, num_images, api_init_image, api_strength,
                                         api_image_size, api_image_prompt, api_control, api_control_image, api_mask,
                                         api_margin, api_control_scale],
                                 outputs=[api_preview, api_stage_b, api_images, api_settings, api_status, api_map,
                                          api_unblended],
                                 api_name="generate_with_images", concurrency_limit=1, concurrency_id=ENGINE,
                                 show_progress="hidden")
        api_stop.click(h.stop, outputs=stop_status, api_name="stop", queue=False)

        timer = gr.Timer(1.0)
        timer.tick(h.model_status, outputs=[model_md, timer], show_progress="hidden", api_visibility="private")
        demo.load(h.model_status, outputs=[model_md, timer], show_progress="hidden", api_visibility="private")

        aspect.change(h.apply_size, aspect, [width, height], api_visibility="private", show_progress="hidden")
        gr.on([width.input, height.input], h.match_size, [width, height], aspect, api_visibility="private",
              show_progress="hidden", queue=False)
        quality.change(h.apply_quality, quality, [prior_steps, prior_guidance, decoder_steps, decoder_guidance],
                       api_visibility="private", show_progress="hidden")

        quiet = dict(api_visibility="private", show_progress="hidden")
        # A picture is checked as sent, before Gradio opens it: a bad file leaves with the engine's message.
        picture.upload(h.check_picture, picture, [picture, status], preprocess=False, **quiet)
        picture.change(h.picture_changed, [mode, picture], [editor, image_panel], **quiet)
        mode.change(h.mode_changed, [mode, picture],
                    [strength, margin, control_scale, editor, control_map, mode_help, image_panel], **quiet)

        in_order = dict(api_visibility="private", concurrency_limit=1, concurrency_id=GALLERY)
        gal.select(h.select, items, [selected, details, download, detail], **in_order)
        reuse_all.click(h.reuse_all, [items, selected], controls, **in_order)
        reuse_seed.click(h.reuse_seed, [items, selected], [seed, randomize], **in_order)
        variations.click(h.variations, [items, selected, var_count], controls + [num_images], **in_order).success(**run)
        refine.click(h.refine, [items, selected], controls + [num_images], **in_order).success(**run)
        use_input.click(h.use_as_input, [items, selected], [picture, image_panel], **in_order)
        vary_subtle.click(h.vary_subtle, [items, selected, var_count], once, **in_order).success(**run_once)
        vary_strong.click(h.vary_strong, [items, selected, var_count], once, **in_order).success(**run_once)
        upscale.click(h.upscale, [items, selected], once, **in_order).success(**run_once)
        reload_btn.click(h.load_outputs, items, [gal, items, status], **in_order)
        clear_btn.click(h.clear, outputs=[gal, items, chosen, selected, detail, status], **in_order)
        items.change(h.remember, items, remembered, api_visibility="private", show_progress="hidden", queue=False)
        demo.load(h.restore, [remembered, items], [gal, items], **in_order)

        compare_add.click(h.toggle_compare, [chosen, selected], [chosen, compare_tab], **in_order)
        chosen.change(h.compare_view, [items, chosen], [compare_gal, compare_table, compare_note],
                      api_visibility="private", show_progress="hidden")
        compare_clear.click(h.clear_compare, outputs=[chosen, compare_tab], api_visibility="private")
    demo.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=4)
    return demo
