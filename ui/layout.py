"""The page: components, their wiring to the handlers, and the /generate and /stop endpoints.

Desktop: controls on the left; on the right the progress bar, the canvas (the latest or the
selected image, as large as the window allows) with the composition preview and the selected
image's actions beside it, then the Gallery, Explore and Compare tabs. A phone stacks them.
"""
from __future__ import annotations

from pathlib import Path

import gradio as gr
from cascade_core.request import MAX_GUIDANCE, MAX_IMAGES, MAX_STEPS

from . import loras, pictures
from .explore import MAX_EXPLORE
from .gallery_actions import GalleryActions
from .generation import Services
from .handlers import Handlers, PageOut
from .hosting import gpu
from .presets import CUSTOM_SIZE, Presets
from .session import Session
from .words import HELP

PICTURE_HEIGHT = 240  # the image panel's picture
EDITOR_HEIGHT = 420  # the mask editor (its tool bar included)
GALLERY_HEIGHT = 420
QUEUE_MAX_SIZE = 16  # waiting runs; one more is refused with gradio's "Queue is full" (try again later)
ENGINE = "engine"  # concurrency id shared by the page and the API: one generation at a time, or --batch-requests
GALLERY = "gallery"  # gallery clicks and actions run in click order (an action reads the selection)

CSS = (Path(__file__).with_name("studio.css")).read_text(encoding="utf-8")
JS = (Path(__file__).with_name("studio.js")).read_text(encoding="utf-8")


def build_app(services: Services, presets: Presets, *, title: str = "Cascade Studio",
              notes: list[str] = ()) -> gr.Blocks:
    """The Blocks of the studio; nothing is loaded here (the model loads in `services.holder`)."""
    h, g, s = Handlers(services, presets), GalleryActions(services, presets), Session(services, presets)
    q = presets.quality["balanced"]
    size_names = list(presets.sizes)
    with gr.Blocks(title=title, delete_cache=(600, 3600)) as demo:
        items, chosen, selected = gr.State([]), gr.State([]), gr.State(None)
        explored, picked = gr.State([]), gr.State([])  # explore: the compositions and the chosen ones' indices
        remembered = gr.BrowserState([], storage_key="cascade-studio-gallery")  # the gallery across reloads
        remembered_controls = gr.BrowserState({}, storage_key="cascade-studio-controls")
        remembered_compare = gr.BrowserState([], storage_key="cascade-studio-compare")
        with gr.Row(elem_id="header"):
            gr.Markdown(f"## {title}", elem_id="title")
            model_md = gr.Markdown(services.holder.status_markdown(), elem_id="model-status")
        for note in notes:
            gr.Markdown(note, elem_classes=["note"])
        with gr.Row(equal_height=False, elem_id="main"):
            with gr.Column(scale=4, min_width=300, elem_id="controls"):
                prompt = gr.Textbox(label="Prompt", lines=1, max_lines=8, elem_id="prompt", autofocus=True,
                                    placeholder="Describe the image… (Enter or Ctrl+Enter generates)")
                negative = gr.Textbox(label="Negative prompt", lines=1, max_lines=4, elem_id="negative")
                with gr.Row(elem_id="run-buttons"):
                    generate = gr.Button("Generate", variant="primary", elem_id="generate-btn", scale=3, min_width=100)
                    explore = gr.Button("Explore", variant="secondary", elem_id="explore-btn", scale=2, min_width=90)
                    stop = gr.Button("Stop", variant="stop", elem_id="stop-btn", scale=1, min_width=70)
                explore_count = gr.Slider(2, MAX_EXPLORE, value=8, step=1, label="Compositions to explore",
                                          info="Explore sketches this many compositions (previews only, quick); "
                                               "pick the ones you like and Finish them.", elem_id="explore-count")
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
                    strength = gr.Slider(0.05, 1, value=pictures.STRENGTH_DEFAULTS[pictures.DEFAULT_MODE],
                                            step=0.05, label="Strength", info="How far from the picture",
                                            elem_id="strength")
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
                                   info="Composition + detail steps: " + ", ".join(
                                       f"{name} {p['prior_steps']}+{p['decoder_steps']}"
                                       for name, p in presets.quality.items()))
                with gr.Row(elem_id="seed-row"):
                    seed = gr.Number(label="Seed", value=0, elem_id="seed", scale=3, min_width=120)
                    randomize = gr.Checkbox(label="New seed each run", value=True, elem_id="randomize", scale=2,
                                            min_width=150)
                aspect = gr.Radio(size_names + [CUSTOM_SIZE], value=size_names[0], label="Aspect (≈1 megapixel)",
                                  elem_id="aspect")
                with gr.Row(elem_id="size-row"):
                    width = gr.Number(label="Width (px)", value=1024, step=8, elem_id="width", min_width=100)
                    height = gr.Number(label="Height (px)", value=1024, step=8, elem_id="height", min_width=100)
                num_images = gr.Slider(1, MAX_IMAGES, value=1, step=1, label="Images", elem_id="num-images")
                with gr.Accordion("Steps and guidance", open=False, elem_id="steps-panel"):
                    prior_steps = gr.Slider(1, MAX_STEPS, value=q["prior_steps"], step=1, label="Composition steps",
                                               info=HELP["prior_steps"], elem_id="prior-steps")
                    prior_guidance = gr.Slider(0, MAX_GUIDANCE, value=q["prior_guidance"], step=0.1,
                                                  label="Composition guidance", info=HELP["prior_guidance"],
                                                  elem_id="prior-guidance")
                    decoder_steps = gr.Slider(1, MAX_STEPS, value=q["decoder_steps"], step=1, label="Detail steps",
                                                 info=HELP["decoder_steps"], elem_id="decoder-steps")
                    decoder_guidance = gr.Slider(0, MAX_GUIDANCE, value=q["decoder_guidance"], step=0.1,
                                                    label="Detail guidance", info=HELP["decoder_guidance"],
                                                    elem_id="decoder-guidance")
                with gr.Accordion("LoRAs", open=False, elem_id="lora-panel"):
                    lora_slots = []
                    for k in range(1, loras.SLOTS + 1):
                        with gr.Row(elem_classes=["lora-row"]):
                            lora_slots.append(gr.Dropdown([], value=None, label=f"LoRA {k}", allow_custom_value=True,
                                                          info="A file of the LoRA folder, or owner/repo/file."
                                                               "safetensors on the hub" if k == 1 else None,
                                                          elem_id=f"lora-{k}", scale=3, min_width=160))
                            lora_slots.append(gr.Slider(-loras.MAX_STRENGTH, loras.MAX_STRENGTH, value=1.0,
                                                           step=0.05, label="Strength", elem_id=f"lora-strength-{k}",
                                                           scale=2, min_width=120))
                    lora_refresh = gr.Button("Refresh the list", size="sm", elem_id="lora-refresh-btn")
                png_drop = gr.File(label="Read the settings of a PNG (this studio's, A1111's or ComfyUI's): drop it "
                                         "here or anywhere on the page", file_types=[".png"], type="filepath",
                                   height=90, elem_id="png-drop")
            with gr.Column(scale=7, min_width=300, elem_id="outputs"):
                progress = gr.HTML("", elem_id="progress")
                status = gr.Markdown("Ready.", elem_id="run-status", min_height=28)
                error = gr.HTML("", elem_id="error-field")  # the control a refused request was about (studio.js)
                with gr.Row(equal_height=False, elem_id="stage"):
                    with gr.Column(scale=3, min_width=280, elem_id="canvas-column"):
                        canvas = gr.Image(label="Final image", interactive=False, elem_id="canvas", format="png",
                                          buttons=["download"], placeholder="The latest or the selected image shows "
                                          "here, large. Click it to view it full screen.")
                    with gr.Column(scale=1, min_width=220, elem_id="side"):
                        stage_c = gr.Image(label="Composition preview", interactive=False, elem_id="stage-c",
                                           height=160, buttons=[])
                        control_map = gr.Image(label="Control map (edges, mask)", interactive=False, height=200,
                                               elem_id="control-map", visible=False, buttons=[])
                        with gr.Column(visible=False, elem_id="detail") as detail:
                            with gr.Row(elem_classes=["actions"]):
                                reuse_all = gr.Button("Reuse all settings", size="sm", elem_id="reuse-all-btn")
                                reuse_seed = gr.Button("Reuse seed", size="sm", elem_id="reuse-seed-btn")
                                variations = gr.Button("Variations", size="sm", elem_id="variations-btn")
                                refine = gr.Button("Refine", size="sm", elem_id="refine-btn")
                                compare_add = gr.Button("Compare", size="sm", elem_id="compare-add-btn")
                                use_input = gr.Button("Use as input", size="sm", elem_id="use-input-btn")
                                vary_subtle = gr.Button("Vary (subtle)", size="sm", elem_id="vary-subtle-btn")
                                vary_strong = gr.Button("Vary (strong)", size="sm", elem_id="vary-strong-btn")
                                upscale = gr.Button("Upscale 2×", size="sm", elem_id="upscale-btn")
                                download = gr.DownloadButton("Download PNG", size="sm", elem_id="download-btn")
                                remove = gr.Button("Remove from gallery", size="sm", elem_id="remove-btn")
                                delete = gr.Button("Delete file…", size="sm", variant="stop", elem_id="delete-btn")
                            var_count = gr.Slider(1, MAX_IMAGES, value=4, step=1, label="Variations",
                                                     info="Images that Variations and Vary make", elem_id="var-count")
                            with gr.Row(visible=False, elem_id="delete-confirm") as delete_confirm:
                                gr.Markdown("Delete this PNG and its settings from the outputs folder?")
                                delete_yes = gr.Button("Delete", size="sm", variant="stop", elem_id="delete-yes-btn")
                                delete_no = gr.Button("Keep", size="sm", elem_id="delete-no-btn")
                            summary = gr.Markdown(elem_id="summary")
                with gr.Tabs(elem_id="tabs") as tabs:
                    with gr.Tab("Gallery", id="gallery-tab"):
                        gal = gr.Gallery(label="This tab's images (newest first)", columns=4, height=GALLERY_HEIGHT,
                                         format="png", object_fit="contain", allow_preview=False, fit_columns=False,
                                         elem_id="gallery")
                        with gr.Row(elem_classes=["actions"]):
                            reload_btn = gr.Button("Load from outputs folder", size="sm", elem_id="reload-btn")
                            zip_btn = gr.Button("Download all (zip)", size="sm", elem_id="zip-btn")
                            clear_btn = gr.Button("Clear gallery", size="sm", elem_id="clear-btn")
                        zip_file = gr.File(label="Zip of the gallery", visible=False, elem_id="zip-file")
                    with gr.Tab("Explore", id="explore-tab", elem_id="explore-tab"):
                        gr.Markdown(
                            "**Explore** sketches many compositions for the prompt (the composition stage only: "
                            "seconds, not minutes). Click the ones you like, then **Finish** paints them in full, "
                            "exactly as Generate would with their seeds.", elem_id="explore-note")
                        explore_gal = gr.Gallery(label="Compositions (click to choose)", columns=4, height=GALLERY_HEIGHT,
                                                 format="png", object_fit="contain", allow_preview=False,
                                                 elem_id="explore-gallery")
                        with gr.Row(elem_classes=["actions"]):
                            finish = gr.Button("Finish chosen", variant="primary", size="sm", elem_id="finish-btn")
                            pick_none = gr.Button("Choose none", size="sm", elem_id="pick-none-btn")
                    with gr.Tab("Compare (0)", id="compare-tab", elem_id="compare-tab") as compare_tab:
                        compare_view = gr.HTML(GalleryActions.empty_compare(), elem_id="compare-view")
                        compare_clear = gr.Button("Clear comparison", size="sm", elem_id="compare-clear-btn")

        # Hidden components of the API endpoints /generate and /generate_with_images (the page has its own
        # handlers). Their values reach the engine as sent: its validation answers, not Gradio's.
        with gr.Group(visible=False):
            api_text = [gr.Textbox(label=n) for n in ("prompt", "negative_prompt")]
            api_numbers = [gr.Number(None, label=n) for n in (
                "width", "height", "seed", "prior_steps", "prior_guidance", "decoder_steps", "decoder_guidance",
                "num_images")]
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
            api_image_size = gr.Number(None, label="image_size")
            api_control = gr.Textbox("none", label="control")
            api_margin = gr.Number(0, label="margin")
            api_control_scale = gr.Number(1.0, label="control_scale")
            api_loras = gr.JSON(None, label="loras")  # [[name, strength], …]
            api_images_trigger = gr.Button()
            api_trigger, api_stop = gr.Button(), gr.Button()
            stop_status = gr.Textbox()

        controls = [prompt, negative, style, width, height, seed, randomize, prior_steps, prior_guidance,
                    decoder_steps, decoder_guidance]
        page_out = PageOut(progress, status, stage_c, canvas, control_map, gal, items, seed, selected, detail,
                           summary, error, download)
        # The image panel's values come last (ui_generate takes them after the request).
        ui_inputs = [prompt, negative, width, height, seed, randomize, prior_steps, prior_guidance, decoder_steps,
                     decoder_guidance, num_images, style, items, mode, picture, editor, strength, margin, control_scale,
                     *lora_slots]
        slots = services.engine_slots  # runs at once: 1, or --batch-requests N (their steps batched)
        engine = dict(show_progress="hidden", concurrency_limit=slots, concurrency_id=ENGINE, api_visibility="private")
        run = dict(fn=gpu(h.ui_generate), inputs=ui_inputs, outputs=list(page_out), **engine)
        once = gr.State(None)  # a gallery action's run (Variations, Refine, Vary, Upscale): the controls stay
        run_once = dict(fn=gpu(h.ui_once), inputs=[once, items], outputs=list(page_out), **engine)

        gr.on([generate.click, prompt.submit, negative.submit], **run)
        explore.click(lambda: gr.Tabs(selected="explore-tab"), outputs=tabs, queue=False, api_visibility="private"
                      ).then(gpu(h.ui_explore), inputs=[prompt, negative, width, height, seed, randomize, prior_steps,
                                                        prior_guidance, decoder_steps, decoder_guidance, style,
                                                        explore_count, *lora_slots],
                             outputs=[progress, status, stage_c, explore_gal, explored, picked, seed, error], **engine)
        finish.click(gpu(h.ui_finish), inputs=[explored, picked, items], outputs=list(page_out), **engine)
        stop.click(h.stop, outputs=status, queue=False, api_name="stop_button", api_visibility="private")
        api_generate_inputs = [*api_text, *api_numbers]
        api_trigger.click(gpu(h.api_generate), inputs=[*api_generate_inputs, api_loras],
                          outputs=[api_preview, api_stage_b, api_images, api_settings, api_status],
                          api_name="generate", concurrency_limit=slots, concurrency_id=ENGINE, show_progress="hidden")
        api_images_trigger.click(gpu(h.api_generate_with_images),
                                 inputs=[*api_generate_inputs, api_init_image, api_strength, api_image_size,
                                         api_image_prompt, api_control, api_control_image, api_mask, api_margin,
                                         api_control_scale, api_loras],
                                 outputs=[api_preview, api_stage_b, api_images, api_settings, api_status, api_map,
                                          api_unblended],
                                 api_name="generate_with_images", concurrency_limit=slots, concurrency_id=ENGINE,
                                 show_progress="hidden")
        api_stop.click(h.stop, outputs=stop_status, api_name="stop", queue=False)

        timer = gr.Timer(1.0)
        timer.tick(h.model_status, outputs=[model_md, timer], show_progress="hidden", api_visibility="private")
        demo.load(h.model_status, outputs=[model_md, timer], show_progress="hidden", api_visibility="private")
        gr.on([demo.load, lora_refresh.click], h.lora_choices, outputs=lora_slots[0::2], show_progress="hidden",
              api_visibility="private")

        quiet = dict(api_visibility="private", show_progress="hidden")
        aspect.input(h.apply_size, aspect, [width, height], **quiet)
        gr.on([width.input, height.input], h.match_size, [width, height], aspect, queue=False, **quiet)
        quality.input(h.apply_quality, quality, [prior_steps, prior_guidance, decoder_steps, decoder_guidance], **quiet)

        # A picture is checked as sent, before Gradio opens it: a bad file leaves with the engine's message.
        picture.upload(h.check_picture, picture, [picture, status], preprocess=False, **quiet)
        picture.change(h.picture_changed, [mode, picture], [editor, image_panel], **quiet)
        mode.change(h.mode_changed, [mode, picture],
                    [strength, margin, control_scale, editor, control_map, mode_help, image_panel], **quiet)

        # Session memory: the controls and the compare picks survive a reload (the browser keeps them).
        memory = [prompt, negative, style, quality, aspect, width, height, seed, randomize, num_images, prior_steps,
                  prior_guidance, decoder_steps, decoder_guidance, explore_count]
        gr.on([c.change for c in memory], s.remember_controls, memory, remembered_controls, queue=False, **quiet)
        png_drop.upload(s.read_png, png_drop, [*memory, *lora_slots, status, png_drop], **quiet)

        in_order = dict(api_visibility="private", concurrency_limit=1, concurrency_id=GALLERY)
        selection = [selected, canvas, summary, detail, download, delete_confirm]
        gal.select(g.select, items, selection, **in_order)
        reuse_all.click(g.reuse_all, [items, selected], [*controls, *lora_slots], **in_order)
        reuse_seed.click(g.reuse_seed, [items, selected], [seed, randomize], **in_order)
        for button, action in ((variations, "variations"), (refine, "refine"), (vary_subtle, "vary subtle"),
                               (vary_strong, "vary strong"), (upscale, "upscale")):
            button.click(g.once(action), [items, selected, var_count], once, **in_order).success(**run_once)
        use_input.click(g.use_as_input, [items, selected], [picture, image_panel], **in_order)
        remove.click(g.remove, [items, selected, chosen], [gal, items, chosen, compare_tab, *selection], **in_order)
        delete.click(lambda: gr.update(visible=True), outputs=delete_confirm, queue=False, api_visibility="private")
        delete_no.click(lambda: gr.update(visible=False), outputs=delete_confirm, queue=False,
                        api_visibility="private")
        delete_yes.click(g.delete_file, [items, selected, chosen], [gal, items, chosen, compare_tab, *selection, status],
                         **in_order)
        reload_btn.click(g.load_outputs, items, [gal, items, status], **in_order)
        zip_btn.click(g.zip_gallery, items, [zip_file, status], **in_order)
        clear_btn.click(g.clear, outputs=[gal, items, chosen, compare_tab, *selection, status], **in_order)
        items.change(g.remember, items, remembered, queue=False, **quiet)
        demo.load(g.restore, [remembered, items], [gal, items], **in_order).then(
            s.restore_controls, remembered_controls, memory, **quiet).then(
            g.restore_compare, [remembered_compare, items], [chosen, compare_tab], **quiet)

        explore_gal.select(h.pick, [explored, picked], [explore_gal, picked, finish], **in_order)
        pick_none.click(h.pick_none, explored, [explore_gal, picked, finish], **in_order)

        compare_add.click(g.toggle_compare, [chosen, selected], [chosen, compare_tab], **in_order)
        chosen.change(g.compare_view, [items, chosen], compare_view, **quiet)
        chosen.change(g.remember_compare, chosen, remembered_compare, queue=False, **quiet)
        compare_clear.click(g.clear_compare, outputs=[chosen, compare_tab], api_visibility="private")
    demo.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=4)
    return demo
