() => {
  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));
  const baseTitle = document.title || "Cascade Studio";

  // Ctrl+Enter (Cmd+Enter on macOS) generates from anywhere on the page.
  document.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      const button = $("#generate-btn");
      if (button) { event.preventDefault(); button.click(); }
    }
  });

  // --- Full-screen viewer: wheel or +/− zooms about the pointer, drag pans, 0 fits, arrows step through
  // the gallery (selecting each image, so the canvas and its settings follow), Esc closes.
  const viewer = document.createElement("div");
  viewer.id = "viewer";
  viewer.hidden = true;
  viewer.innerHTML = `<img alt="full-screen image"><div class="viewer-bar">
    <button type="button" data-act="prev" title="Previous (←)">←</button>
    <button type="button" data-act="out" title="Zoom out (−)">−</button>
    <button type="button" data-act="fit" title="Fit (0)">Fit</button>
    <button type="button" data-act="in" title="Zoom in (+)">+</button>
    <button type="button" data-act="next" title="Next (→)">→</button>
    <button type="button" data-act="close" title="Close (Esc)">✕</button></div>`;
  document.body.appendChild(viewer);
  const shown = $("img", viewer);
  const view = {scale: 1, x: 0, y: 0, list: null, index: -1};
  const place = () => { shown.style.transform = `translate(${view.x}px, ${view.y}px) scale(${view.scale})`; };
  const fit = () => { view.scale = 1; view.x = 0; view.y = 0; place(); };
  const zoom = (factor, cx = window.innerWidth / 2, cy = window.innerHeight / 2) => {
    const next = Math.min(16, Math.max(0.25, view.scale * factor));
    const k = next / view.scale;  // keep the point under (cx, cy) where it is
    view.x = cx - window.innerWidth / 2 - k * (cx - window.innerWidth / 2 - view.x);
    view.y = cy - window.innerHeight / 2 - k * (cy - window.innerHeight / 2 - view.y);
    view.scale = next;
    place();
  };
  const open = (src, list = null, index = -1) => {
    shown.src = src;
    Object.assign(view, {list, index});
    viewer.hidden = false;
    fit();
  };
  const close = () => { viewer.hidden = true; shown.removeAttribute("src"); };
  const thumbs = () => $$("#gallery button.thumbnail-item");
  const step = (delta) => {
    const list = view.list ? view.list() : [];
    if (!list.length) return;
    view.index = (view.index + delta + list.length) % list.length;
    const item = list[view.index];
    item.click();  // the gallery selects it: the canvas and the settings beside it follow
    const img = $("img", item);
    if (img) { shown.src = img.src; fit(); }
  };
  viewer.addEventListener("click", (event) => {
    const act = event.target.dataset && event.target.dataset.act;
    if (act === "close" || event.target === viewer) close();
    else if (act === "in") zoom(1.25);
    else if (act === "out") zoom(0.8);
    else if (act === "fit") fit();
    else if (act === "prev") step(-1);
    else if (act === "next") step(1);
  });
  viewer.addEventListener("wheel", (event) => {
    event.preventDefault();
    zoom(event.deltaY < 0 ? 1.15 : 1 / 1.15, event.clientX, event.clientY);
  }, {passive: false});
  let drag = null;
  shown.addEventListener("pointerdown", (event) => {
    drag = {x: event.clientX - view.x, y: event.clientY - view.y};
    shown.setPointerCapture(event.pointerId);
    event.preventDefault();
  });
  shown.addEventListener("pointermove", (event) => {
    if (drag) { view.x = event.clientX - drag.x; view.y = event.clientY - drag.y; place(); }
  });
  shown.addEventListener("pointerup", () => { drag = null; });
  shown.addEventListener("dblclick", () => (view.scale === 1 ? zoom(2) : fit()));
  document.addEventListener("keydown", (event) => {
    if (viewer.hidden && wipe.hidden) return;
    if (event.key === "Escape") { close(); closeWipe(); }
    if (viewer.hidden) return;
    if (event.key === "ArrowRight") step(1);
    else if (event.key === "ArrowLeft") step(-1);
    else if (event.key === "+" || event.key === "=") zoom(1.25);
    else if (event.key === "-") zoom(0.8);
    else if (event.key === "0") fit();
  });
  document.addEventListener("click", (event) => {
    const img = event.target.closest && event.target.closest("#canvas img, #compare-view img[data-zoom]");
    if (!img || !img.src) return;
    if (img.closest("#canvas")) {
      const src = img.src;
      const index = thumbs().findIndex((b) => ($("img", b) || {}).src === src);
      open(src, thumbs, index >= 0 ? index : thumbs().findIndex((b) => b.classList.contains("selected")));
    } else {
      open(img.src, () => $$("#compare-view figure"), $$("#compare-view img[data-zoom]").indexOf(img));
    }
  });

  // --- A/B wipe of two compared images: drag the divider (or use the slider) to reveal one over the other.
  const wipe = document.createElement("div");
  wipe.id = "wipe";
  wipe.hidden = true;
  wipe.innerHTML = `<div class="wipe-frame"><img class="wipe-a" alt="image 1"><img class="wipe-b" alt="image 2">
    <div class="wipe-line"></div></div><div class="viewer-bar"><span>1</span>
    <input type="range" min="0" max="100" value="50" aria-label="wipe position"><span>2</span>
    <button type="button" data-act="close" title="Close (Esc)">✕</button></div>`;
  document.body.appendChild(wipe);
  const wipeTo = (percent) => {
    $(".wipe-b", wipe).style.clipPath = `inset(0 0 0 ${percent}%)`;
    $(".wipe-line", wipe).style.left = `${percent}%`;
    $("input", wipe).value = percent;
  };
  const closeWipe = () => { wipe.hidden = true; };
  $("input", wipe).addEventListener("input", (event) => wipeTo(event.target.value));
  $(".wipe-frame", wipe).addEventListener("pointermove", (event) => {
    if (event.buttons !== 1) return;
    const box = $(".wipe-frame", wipe).getBoundingClientRect();
    wipeTo(Math.max(0, Math.min(100, (100 * (event.clientX - box.left)) / box.width)));
  });
  wipe.addEventListener("click", (event) => {
    if ((event.target.dataset && event.target.dataset.act === "close") || event.target === wipe) closeWipe();
  });
  document.addEventListener("click", (event) => {
    if (!event.target.closest || !event.target.closest("#compare-view .wipe-open")) return;
    const images = $$("#compare-view img[data-zoom]");
    if (images.length !== 2) return;
    $(".wipe-a", wipe).src = images[0].src;
    $(".wipe-b", wipe).src = images[1].src;
    wipe.hidden = false;
    wipeTo(50);
  });

  // --- The engine's message beside the control it is about; the progress in the tab's title.
  const marked = () => $$(".field-error");
  const watch = (selector, react) => {
    const target = $(selector);
    if (!target) return setTimeout(() => watch(selector, react), 200);
    react(target);
    new MutationObserver(() => react(target)).observe(target, {subtree: true, childList: true, attributes: true});
  };
  watch("#error-field", (field) => {
    const marker = $(".field-error-marker", field);
    marked().forEach((el) => { el.classList.remove("field-error"); el.removeAttribute("data-error"); });
    if (!marker) return;
    const control = document.getElementById(marker.dataset.control);
    if (!control) return;
    control.classList.add("field-error");
    control.setAttribute("data-error", marker.dataset.message);
    if (control.offsetParent === null && control.closest("#steps-panel")) $("#steps-panel .label-wrap")?.click();
  });
  watch("#progress", (progress) => {
    const bar = $(".run-progress", progress);
    const percent = bar ? Number(bar.dataset.percent) : 100;
    document.title = bar && percent < 100 ? `${percent}% · ${bar.dataset.stage} — ${baseTitle}` : baseTitle;
  });

  // --- On a phone the results are below the controls: show them once a run starts.
  document.addEventListener("click", (event) => {
    if (window.innerWidth > 700 || !event.target.closest) return;
    if (event.target.closest("#generate-btn, #explore-btn, #finish-btn")) {
      setTimeout(() => $("#outputs")?.scrollIntoView({behavior: "smooth", block: "start"}), 100);
    }
  });

  // --- A PNG dropped anywhere but on a picture field: its settings go into the controls (#png-drop).
  const pictureFields = "#picture, #png-drop, #mask-editor";
  document.addEventListener("dragover", (event) => {
    if (!event.target.closest || event.target.closest(pictureFields)) return;
    if (Array.from(event.dataTransfer?.items || []).some((item) => item.kind === "file")) event.preventDefault();
  });
  document.addEventListener("drop", (event) => {
    if (!event.target.closest || event.target.closest(pictureFields)) return;
    const file = Array.from(event.dataTransfer?.files || []).find((f) => f.type === "image/png" || /\.png$/i.test(f.name));
    const input = $("#png-drop input[type=file]");
    if (!file || !input) return;
    event.preventDefault();
    const transfer = new DataTransfer();
    transfer.items.add(file);
    input.files = transfer.files;
    input.dispatchEvent(new Event("change", {bubbles: true}));
  });
}
