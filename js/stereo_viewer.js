// Stereo viewer inside the Stereo Save Image node: shows the saved pair as a red-cyan anaglyph
// (with the node's anaglyph_method), parallel or cross-eyed side by side, top-bottom, or wiggling
// between the eyes, with a swap-eyes toggle. It starts in the mode of the node's `layout`, fills
// the node's width and sizes the node to the pair. It is the node's only preview: the node reports
// its files as `stereo_images`, so the frontend draws no second, flat preview of the saved file.
// It uses only the long-standing extension API (app.registerExtension, onNodeCreated,
// onExecuted, addDOMWidget); where a frontend lacks addDOMWidget the node simply has no viewer.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const NODE_ID = "StereoSaveImage";
const MODES = ["anaglyph", "parallel", "cross-eyed", "top-bottom", "wiggle"];
const WIGGLE_MS = 140;
const LOG = "[StereoDiffusion]";

// Red-cyan anaglyphs, the same matrices as stereo_ops/anaglyph.py (rows: output R, G, B; columns:
// input R, G, B). Dubois is applied in linear light, the classic methods to the sRGB values.
const LUMA = [0.299, 0.587, 0.114];
const ZERO = [0, 0, 0];
const DUBOIS_LEFT = [
  [0.456, 0.5, 0.176],
  [-0.04, -0.038, -0.016],
  [-0.015, -0.021, -0.005],
];
const DUBOIS_RIGHT = [
  [-0.043, -0.088, -0.002],
  [0.378, 0.734, -0.018],
  [-0.072, -0.113, 1.226],
];
const CYAN = [ZERO, [0, 1, 0], [0, 0, 1]];
const ANAGLYPHS = {
  dubois: { linear: true, left: DUBOIS_LEFT, right: DUBOIS_RIGHT },
  optimized: { linear: false, left: [[0, 0.7, 0.3], ZERO, ZERO], right: CYAN },
  "half-color": { linear: false, left: [LUMA, ZERO, ZERO], right: CYAN },
  color: { linear: false, left: [[1, 0, 0], ZERO, ZERO], right: CYAN },
  gray: { linear: false, left: [LUMA, ZERO, ZERO], right: [ZERO, LUMA, LUMA] },
  true: { linear: false, left: [LUMA, ZERO, ZERO], right: [ZERO, ZERO, LUMA] },
};
const DEFAULT_ANAGLYPH = "dubois";
const SRGB_TO_LINEAR = Array.from({ length: 256 }, (_, i) => {
  const v = i / 255;
  return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
});
const SRGB_VALUES = Array.from({ length: 256 }, (_, i) => i / 255);
const clamp01 = (v) => Math.min(1, Math.max(0, v));
function linearToSrgb8(v) {
  const c = clamp01(v);
  const s = c <= 0.0031308 ? c * 12.92 : 1.055 * c ** (1 / 2.4) - 0.055;
  return Math.round(s * 255);
}
const srgbTo8 = (v) => Math.round(clamp01(v) * 255);

// The viewer mode that shows what each saved layout holds.
function modeForLayout(layout) {
  if (typeof layout !== "string") return null;
  if (layout === "anaglyph") return "anaglyph";
  if (layout.startsWith("cross-eyed")) return "cross-eyed";
  if (layout.startsWith("top-bottom")) return "top-bottom";
  if (layout.startsWith("parallel")) return "parallel";
  return null;
}

// One line for the status bar: the check's verdict (with its reasons) and the parallax range in %
// of the width (negative = in front of the screen).
function checkSummary(check) {
  if (!check || typeof check.verdict !== "string") return "";
  const pct = (v) => `${v >= 0 ? "+" : ""}${v.toFixed(2)} %`;
  const warnings = Array.isArray(check.warnings) ? check.warnings : [];
  const verdict = check.verdict === "pass" ? "check: pass" : `check: WARN (${warnings.join(", ")})`;
  const range = Number.isFinite(check.min_pct) && Number.isFinite(check.max_pct)
    ? `, parallax ${pct(check.min_pct)} to ${pct(check.max_pct)}`
    : "";
  return verdict + range;
}

function viewUrl(file) {
  const params = new URLSearchParams({
    filename: file.filename,
    subfolder: file.subfolder ?? "",
    type: file.type ?? "temp",
  });
  const path = `/view?${params}`;
  return typeof api?.apiURL === "function" ? api.apiURL(path) : `.${path}`;
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`could not load ${url}`));
    img.src = url;
  });
}

function pixelsOf(img) {
  const c = document.createElement("canvas");
  c.width = img.naturalWidth;
  c.height = img.naturalHeight;
  const ctx = c.getContext("2d");
  ctx.drawImage(img, 0, 0);
  return ctx.getImageData(0, 0, c.width, c.height);
}

function anaglyphPixels(left, right, method) {
  const spec = ANAGLYPHS[method] ?? ANAGLYPHS[DEFAULT_ANAGLYPH];
  const decode = spec.linear ? SRGB_TO_LINEAR : SRGB_VALUES;
  const encode = spec.linear ? linearToSrgb8 : srgbTo8;
  const out = new ImageData(left.width, left.height);
  const l = left.data;
  const r = right.data;
  const o = out.data;
  for (let i = 0; i < l.length; i += 4) {
    const lin = [decode[l[i]], decode[l[i + 1]], decode[l[i + 2]]];
    const rin = [decode[r[i]], decode[r[i + 1]], decode[r[i + 2]]];
    for (let k = 0; k < 3; k++) {
      const ml = spec.left[k];
      const mr = spec.right[k];
      o[i + k] = encode(
        ml[0] * lin[0] + ml[1] * lin[1] + ml[2] * lin[2] + mr[0] * rin[0] + mr[1] * rin[1] + mr[2] * rin[2],
      );
    }
    o[i + 3] = 255;
  }
  return out;
}

// Heights in CSS pixels of the parts around the picture, used until the DOM has measured them.
const BAR_HEIGHT = 26;
const STATUS_HEIGHT = 16;
const GAP = 4;
const DOM_MARGIN = 10; // the frontend insets a DOM widget's element by widget.margin on every side
const PLACEHOLDER_ASPECT = 0.5; // height / width before a pair is shown: a typical side-by-side
const BOTTOM_MARGIN = 2;

// The frontend's theme colours (light and dark themes set them), so the controls match the node.
const CONTROL_STYLE = {
  background: "var(--comfy-input-bg, #222)", color: "var(--input-text, #ddd)",
  border: "1px solid var(--border-color, #444)", borderRadius: "4px", padding: "1px 4px", font: "inherit",
};

class StereoViewer {
  constructor(node) {
    this.node = node;
    this.chosenMode = null; // a mode picked in the viewer; null: follow the node's layout
    this.swap = false;
    this.pairs = [];
    this.index = 0;
    this.eyes = null; // {left: HTMLImageElement, right: HTMLImageElement} of the current pair
    this.wiggleTimer = null;
    this.wiggleRight = false;
    this.draws = 0;

    this.element = document.createElement("div");
    this.element.className = "stereo-viewer";
    Object.assign(this.element.style, {
      display: "flex", flexDirection: "column", gap: `${GAP}px`, width: "100%", height: "100%",
      boxSizing: "border-box", minHeight: "0", overflow: "hidden",
    });
    this.bar = document.createElement("div");
    Object.assign(this.bar.style, {
      display: "flex", gap: "6px", alignItems: "center", fontSize: "12px", flexWrap: "wrap",
      color: "var(--input-text, #ddd)",
    });

    this.modeSelect = document.createElement("select");
    this.modeSelect.className = "stereo-viewer-mode";
    this.modeSelect.title = "How to show the pair here (starts as the node's layout); the saved file follows the layout widget";
    Object.assign(this.modeSelect.style, CONTROL_STYLE);
    for (const m of MODES) this.modeSelect.add(new Option(m, m));
    this.modeSelect.addEventListener("change", () => this.setMode(this.modeSelect.value));

    const swapLabel = document.createElement("label");
    this.swapBox = document.createElement("input");
    this.swapBox.type = "checkbox";
    this.swapBox.className = "stereo-viewer-swap";
    this.swapBox.style.accentColor = "var(--p-primary-color, #4a90e2)";
    swapLabel.style.cursor = "pointer";
    this.swapBox.addEventListener("change", () => this.setSwap(this.swapBox.checked));
    swapLabel.append(this.swapBox, " swap eyes");

    this.pairSelect = document.createElement("select");
    this.pairSelect.className = "stereo-viewer-pair";
    this.pairSelect.title = "Which pair of the batch";
    Object.assign(this.pairSelect.style, CONTROL_STYLE);
    this.pairSelect.style.display = "none";
    this.pairSelect.addEventListener("change", () => this.showPair(Number(this.pairSelect.value)));

    this.bar.append(this.modeSelect, swapLabel, this.pairSelect);

    this.canvas = document.createElement("canvas");
    this.canvas.className = "stereo-viewer-canvas";
    this.canvas.width = 1;
    this.canvas.height = 1;
    // The full width of the widget and the height of a side-by-side pair in every mode, so that
    // switching modes never makes the node grow; taller pictures (top-bottom, one eye) are fitted in.
    Object.assign(this.canvas.style, {
      display: "block", width: "100%", flex: "1 1 0", minHeight: "0", objectFit: "contain",
    });

    this.status = document.createElement("div");
    this.status.className = "stereo-viewer-status";
    Object.assign(this.status.style, {
      fontSize: "11px", lineHeight: `${STATUS_HEIGHT - 2}px`, color: "var(--descrip-text, #999)",
      whiteSpace: "nowrap", overflow: "hidden", textOverflow: "ellipsis",
    });
    this.status.textContent = "Run the workflow to view the stereo pair.";

    this.element.append(this.bar, this.canvas, this.status);
    this.syncControls();
  }

  widgetValue(name) {
    return this.node?.widgets?.find((w) => w.name === name)?.value;
  }

  get mode() {
    return this.chosenMode ?? modeForLayout(this.widgetValue("layout")) ?? "anaglyph";
  }

  get anaglyphMethod() {
    const method = this.widgetValue("anaglyph_method");
    return method in ANAGLYPHS ? method : DEFAULT_ANAGLYPH;
  }

  // The node's layout or anaglyph_method changed: show it (a layout change ends a mode picked by hand).
  followNode(changed) {
    if (changed === "layout") this.chosenMode = null;
    this.syncControls();
    this.updateWiggle();
    this.draw();
  }

  syncControls() {
    this.modeSelect.value = this.mode;
    this.element.dataset.mode = this.mode;
    this.element.dataset.anaglyphMethod = this.anaglyphMethod;
  }

  setMode(mode) {
    if (!MODES.includes(mode)) return;
    this.chosenMode = mode;
    this.syncControls();
    this.updateWiggle();
    this.draw();
  }

  setSwap(swap) {
    this.swap = Boolean(swap);
    this.swapBox.checked = this.swap;
    this.draw();
  }

  async show(message) {
    const pairs = message?.stereo_views;
    if (!Array.isArray(pairs) || pairs.length === 0) return;
    this.pairs = pairs;
    // Stereo Check's verdict and parallax range per pair (absent for pairs too small to check).
    this.checks = Array.isArray(message?.stereo_check) ? message.stereo_check : [];
    this.pairSelect.replaceChildren(...pairs.map((_, i) => new Option(`pair ${i + 1}`, String(i))));
    this.pairSelect.style.display = pairs.length > 1 ? "" : "none";
    await this.showPair(0);
  }

  async showPair(index) {
    const pair = this.pairs[index];
    if (!pair) return;
    this.index = index;
    this.pairSelect.value = String(index);
    try {
      const [left, right] = await Promise.all([loadImage(viewUrl(pair.left)), loadImage(viewUrl(pair.right))]);
      this.eyes = { left, right };
      const check = checkSummary(this.checks?.[index]);
      this.status.textContent = `${left.naturalWidth}x${left.naturalHeight} per eye${check ? ` · ${check}` : ""}`;
      this.status.title = this.status.textContent;
      this.status.dataset.verdict = this.checks?.[index]?.verdict ?? "";
      this.syncControls();
      this.updateWiggle();
      this.draw();
    } catch (err) {
      this.eyes = null;
      this.status.textContent = "Could not load the stereo pair.";
      console.warn(LOG, err);
    }
  }

  updateWiggle() {
    const wanted = this.mode === "wiggle" && this.eyes;
    if (wanted && !this.wiggleTimer) {
      this.wiggleTimer = setInterval(() => {
        if (!this.element.isConnected) return this.stop();
        this.wiggleRight = !this.wiggleRight;
        this.draw();
      }, WIGGLE_MS);
    } else if (!wanted && this.wiggleTimer) {
      clearInterval(this.wiggleTimer);
      this.wiggleTimer = null;
    }
  }

  stop() {
    clearInterval(this.wiggleTimer);
    this.wiggleTimer = null;
  }

  draw() {
    if (!this.eyes) return;
    let { left, right } = this.eyes;
    if (this.swap) [left, right] = [right, left];
    const w = left.naturalWidth;
    const h = left.naturalHeight;
    const ctx = this.canvas.getContext("2d");
    const mode = this.mode;
    if (mode === "anaglyph") {
      this.resize(w, h);
      ctx.putImageData(anaglyphPixels(pixelsOf(left), pixelsOf(right), this.anaglyphMethod), 0, 0);
    } else if (mode === "wiggle") {
      this.resize(w, h);
      ctx.drawImage(this.wiggleRight ? right : left, 0, 0);
    } else if (mode === "top-bottom") {
      this.resize(w, 2 * h);
      ctx.drawImage(left, 0, 0);
      ctx.drawImage(right, 0, h);
    } else {
      const [first, second] = mode === "parallel" ? [left, right] : [right, left];
      this.resize(2 * w, h);
      ctx.drawImage(first, 0, 0);
      ctx.drawImage(second, w, 0);
    }
    this.draws += 1;
    this.element.dataset.draws = String(this.draws);
  }

  resize(w, h) {
    if (this.canvas.width !== w) this.canvas.width = w;
    if (this.canvas.height !== h) this.canvas.height = h;
    const aspect = this.aspect();
    if (aspect !== this.fittedAspect) {
      this.fittedAspect = aspect;
      fitNodeToViewer(this.node);
    }
  }

  // Height / width of the picture area: a side-by-side pair's, whatever the mode.
  aspect() {
    const eye = this.eyes?.left;
    return eye ? eye.naturalHeight / (2 * eye.naturalWidth) : PLACEHOLDER_ASPECT;
  }

  // The widget's height at the node's current width: its margins, the controls, the picture at the
  // element's full width, the status line.
  heightFor(nodeWidth) {
    const margin = this.widget?.margin ?? DOM_MARGIN;
    const width = Math.max(64, nodeWidth - 2 * margin);
    const bar = this.bar.offsetHeight || BAR_HEIGHT;
    const status = this.status.offsetHeight || STATUS_HEIGHT;
    return Math.ceil(2 * margin + bar + status + 2 * GAP + width * this.aspect());
  }
}

// Give the node the height its widgets need, the viewer's following the pair's aspect ratio at
// the node's width. The frontend lays the other widgets out a little taller than its own size
// estimate (computeSize), so once the viewer's place in the node is known (widget.y, after a
// frame) the height is taken from there.
function fitNodeToViewer(node) {
  const viewer = node?.stereoViewer;
  if (!viewer || !node.setSize || viewer.fitting) return;
  const y = viewer.widget?.y;
  let height;
  if (typeof y === "number" && y > 0) {
    height = y + viewer.heightFor(node.size[0]) + BOTTOM_MARGIN;
  } else {
    height = node.computeSize?.()?.[1];
    requestAnimationFrame(() => fitNodeToViewer(node));
  }
  if (!height || Math.abs(height - node.size[1]) < 1) return;
  viewer.fitting = true;
  try {
    node.setSize([node.size[0], height]);
  } finally {
    viewer.fitting = false;
  }
  node.graph?.setDirtyCanvas?.(true, true);
  app.graph?.setDirtyCanvas?.(true, true);
}

function followWidget(node, name, viewer) {
  const widget = node.widgets?.find((w) => w.name === name);
  if (!widget) return;
  const callback = widget.callback;
  widget.callback = function () {
    const result = callback?.apply(this, arguments);
    viewer.followNode(name);
    return result;
  };
}

function attachViewer(node) {
  if (typeof node.addDOMWidget !== "function") {
    console.info(LOG, "this frontend has no DOM widgets; the stereo viewer is disabled");
    return;
  }
  const viewer = new StereoViewer(node);
  const height = () => viewer.heightFor(node.size?.[0] ?? 320);
  const widget = node.addDOMWidget("stereo_viewer", "stereo-viewer", viewer.element, {
    serialize: false,
    hideOnZoom: false,
    getMinHeight: height,
    getMaxHeight: height,
  });
  // Some frontends read the flag from the widget itself: without it the viewer would add a
  // value to the saved workflow's widgets_values.
  if (widget) widget.serialize = false;
  viewer.widget = widget;
  node.stereoViewer = viewer;
  followWidget(node, "layout", viewer);
  followWidget(node, "anaglyph_method", viewer);
  const onRemoved = node.onRemoved;
  node.onRemoved = function () {
    viewer.stop();
    return onRemoved?.apply(this, arguments);
  };
  // A wider or narrower node: its height follows, so that the pair keeps filling the width.
  const onResize = node.onResize;
  node.onResize = function () {
    const result = onResize?.apply(this, arguments);
    if (!viewer.fitting && !viewer.refitQueued) {
      viewer.refitQueued = true;
      requestAnimationFrame(() => {
        viewer.refitQueued = false;
        fitNodeToViewer(node);
      });
    }
    return result;
  };
  fitNodeToViewer(node);
}

const EXTENSION_NAME = "StereoDiffusion.StereoViewer";

function registerViewer() {
  app.registerExtension({
    name: EXTENSION_NAME,
    async beforeRegisterNodeDef(nodeType, nodeData) {
      if (nodeData?.name !== NODE_ID) return;
      const onNodeCreated = nodeType.prototype.onNodeCreated;
      nodeType.prototype.onNodeCreated = function () {
        const result = onNodeCreated?.apply(this, arguments);
        try {
          attachViewer(this);
        } catch (err) {
          console.warn(LOG, "stereo viewer unavailable:", err);
        }
        return result;
      };
      // A loaded workflow sets the widget values after the node is created.
      const onConfigure = nodeType.prototype.onConfigure;
      nodeType.prototype.onConfigure = function () {
        const result = onConfigure?.apply(this, arguments);
        this.stereoViewer?.followNode();
        return result;
      };
      const onExecuted = nodeType.prototype.onExecuted;
      nodeType.prototype.onExecuted = function (message) {
        const result = onExecuted?.apply(this, arguments);
        this.stereoViewer?.show(message).catch((err) => console.warn(LOG, err));
        return result;
      };
    },
  });
}

// A host that serves this folder under two names loads the file twice; register once.
if (!app.extensions?.some?.((e) => e.name === EXTENSION_NAME)) registerViewer();
