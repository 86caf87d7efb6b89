// Stereo viewer inside the Stereo Save Image node: shows the saved pair as a red-cyan anaglyph,
// cross-eyed or parallel side by side, or wiggling between the eyes, with a swap-eyes toggle.
// It uses only the long-standing extension API (app.registerExtension, onNodeCreated,
// onExecuted, addDOMWidget); where a frontend lacks addDOMWidget the node simply has no viewer.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const NODE_ID = "StereoSaveImage";
const MODES = ["anaglyph", "cross-eyed", "parallel", "wiggle"];
const WIGGLE_MS = 140;
const LOG = "[StereoDiffusion]";

// Dubois least-squares red-cyan matrices (rows R, G, B of the output), applied in linear light.
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
const SRGB_TO_LINEAR = Array.from({ length: 256 }, (_, i) => {
  const v = i / 255;
  return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
});
function linearToSrgb8(v) {
  const c = Math.min(1, Math.max(0, v));
  const s = c <= 0.0031308 ? c * 12.92 : 1.055 * c ** (1 / 2.4) - 0.055;
  return Math.round(s * 255);
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

function anaglyphPixels(left, right) {
  const out = new ImageData(left.width, left.height);
  const l = left.data;
  const r = right.data;
  const o = out.data;
  for (let i = 0; i < l.length; i += 4) {
    const lin = [SRGB_TO_LINEAR[l[i]], SRGB_TO_LINEAR[l[i + 1]], SRGB_TO_LINEAR[l[i + 2]]];
    const rin = [SRGB_TO_LINEAR[r[i]], SRGB_TO_LINEAR[r[i + 1]], SRGB_TO_LINEAR[r[i + 2]]];
    for (let k = 0; k < 3; k++) {
      const ml = DUBOIS_LEFT[k];
      const mr = DUBOIS_RIGHT[k];
      o[i + k] = linearToSrgb8(
        ml[0] * lin[0] + ml[1] * lin[1] + ml[2] * lin[2] + mr[0] * rin[0] + mr[1] * rin[1] + mr[2] * rin[2],
      );
    }
    o[i + 3] = 255;
  }
  return out;
}

class StereoViewer {
  constructor() {
    this.mode = "anaglyph";
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
      display: "flex", flexDirection: "column", gap: "4px", width: "100%", height: "100%",
      boxSizing: "border-box", minHeight: "0",
    });
    const bar = document.createElement("div");
    Object.assign(bar.style, { display: "flex", gap: "6px", alignItems: "center", fontSize: "12px", flexWrap: "wrap" });

    this.modeSelect = document.createElement("select");
    this.modeSelect.className = "stereo-viewer-mode";
    this.modeSelect.title = "How to show the pair";
    for (const m of MODES) this.modeSelect.add(new Option(m, m));
    this.modeSelect.addEventListener("change", () => this.setMode(this.modeSelect.value));

    const swapLabel = document.createElement("label");
    this.swapBox = document.createElement("input");
    this.swapBox.type = "checkbox";
    this.swapBox.className = "stereo-viewer-swap";
    this.swapBox.addEventListener("change", () => this.setSwap(this.swapBox.checked));
    swapLabel.append(this.swapBox, " swap eyes");

    this.pairSelect = document.createElement("select");
    this.pairSelect.className = "stereo-viewer-pair";
    this.pairSelect.title = "Which pair of the batch";
    this.pairSelect.style.display = "none";
    this.pairSelect.addEventListener("change", () => this.showPair(Number(this.pairSelect.value)));

    bar.append(this.modeSelect, swapLabel, this.pairSelect);

    this.canvas = document.createElement("canvas");
    this.canvas.className = "stereo-viewer-canvas";
    this.canvas.width = 1;
    this.canvas.height = 1;
    Object.assign(this.canvas.style, { width: "100%", flex: "1 1 auto", minHeight: "0", objectFit: "contain" });

    this.status = document.createElement("div");
    this.status.className = "stereo-viewer-status";
    this.status.style.fontSize = "11px";
    this.status.textContent = "Run the workflow to view the stereo pair.";

    this.element.append(bar, this.canvas, this.status);
  }

  setMode(mode) {
    if (!MODES.includes(mode)) return;
    this.mode = mode;
    this.modeSelect.value = mode;
    this.element.dataset.mode = mode;
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
      this.eyes = { left, right, leftPixels: null, rightPixels: null };
      this.status.textContent = `${left.naturalWidth}x${left.naturalHeight} per eye`;
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
    if (this.mode === "anaglyph") {
      this.resize(w, h);
      ctx.putImageData(anaglyphPixels(pixelsOf(left), pixelsOf(right)), 0, 0);
    } else if (this.mode === "wiggle") {
      this.resize(w, h);
      ctx.drawImage(this.wiggleRight ? right : left, 0, 0);
    } else {
      const [first, second] = this.mode === "parallel" ? [left, right] : [right, left];
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
  }
}

function attachViewer(node) {
  if (typeof node.addDOMWidget !== "function") {
    console.info(LOG, "this frontend has no DOM widgets; the stereo viewer is disabled");
    return;
  }
  const viewer = new StereoViewer();
  const widget = node.addDOMWidget("stereo_viewer", "stereo-viewer", viewer.element, {
    serialize: false,
    hideOnZoom: false,
    getMinHeight: () => 160,
  });
  // Some frontends read the flag from the widget itself: without it the viewer would add a
  // value to the saved workflow's widgets_values.
  if (widget) widget.serialize = false;
  node.stereoViewer = viewer;
  const onRemoved = node.onRemoved;
  node.onRemoved = function () {
    viewer.stop();
    return onRemoved?.apply(this, arguments);
  };
  const size = node.computeSize?.();
  if (size && node.setSize) node.setSize([Math.max(size[0], 320), Math.max(size[1], 320)]);
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
