// genlab's page: every control calls the server's /v1 API, the same one any client uses.
"use strict";

const $ = (id) => document.getElementById(id);
let models = [];
let current = null;
let latentBase = null;
let picked = null; // the in-painting test image: {png, shape}
let mask = null; // 1 where the pixel is generated
const serial = {}; // the newest request of each kind; older answers are dropped

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = localStorage.getItem("genlab-key");
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

function showError(text) {
  $("error").textContent = text || "";
}

async function call(path, body, kind) {
  const n = (serial[kind] = (serial[kind] || 0) + 1);
  const r = await fetch(path, body === undefined ? { headers: headers() } : { method: "POST", headers: headers(), body: JSON.stringify(body) });
  if (r.status === 401) $("key-box").hidden = false;
  const answer = await r.json();
  if (!r.ok) {
    showError(answer.error ? answer.error.message : "HTTP " + r.status);
    return null;
  }
  if (kind && serial[kind] !== n) return null;
  showError("");
  return answer;
}

function debounce(f, ms) {
  let t = null;
  return (...a) => { clearTimeout(t); t = setTimeout(() => f(...a), ms); };
}

function bindOutput(id) {
  const input = $(id), out = $(id + "-out");
  if (out) input.addEventListener("input", () => (out.textContent = input.value));
}

function images(container, pngs) {
  const box = $(container);
  box.replaceChildren(...pngs.map((p, i) => {
    const img = document.createElement("img");
    img.src = "data:image/png;base64," + p;
    img.alt = container + " " + i;
    return img;
  }));
}

function has(option) {
  return current && current.options.includes(option);
}

function reproduce(id, path, body) {
  $(id).textContent = "curl -s " + location.origin + path + " -H 'Content-Type: application/json' -d '" + JSON.stringify(body) + "'";
}

async function loadModels() {
  const list = await call("/v1/models");
  if (!list) return;
  models = list.data;
  $("model").replaceChildren(...models.map((m) => new Option(m.id + " (" + m.family + ")", m.id)));
  const wanted = new URLSearchParams(location.search).get("model");
  if (wanted && models.some((m) => m.id === wanted)) $("model").value = wanted;
  pick();
}

function pick() {
  current = models.find((m) => m.id === $("model").value);
  if (!current) return;
  $("model-info").textContent = current.family + ", step " + current.step + (current.ema ? ", EMA weights" : "") + ": " + current.options.join(", ");
  const text = current.output === "text";
  $("images").hidden = current.output !== "images";
  $("points").hidden = current.output !== "points";
  $("text").hidden = !(text && has("prompt"));
  $("correct").hidden = !(text && has("correct"));
  document.querySelectorAll("[data-option]").forEach((e) => (e.hidden = !has(e.dataset.option)));
  $("class").replaceChildren(new Option("any", ""), ...current.classes.map((c, i) => new Option(i + ": " + c, String(i))));
  if (has("class")) $("class").value = "0";
  if (current.output === "images") {
    generate();
    if (has("latents")) setupLatents();
    if (has("partial")) loadExamples();
  }
  if (current.output === "points") points();
}

function imageRequest() {
  const body = { model: current.id, count: +$("count").value, seed: +$("seed").value };
  if (has("temperature")) body.temperature = +$("temperature").value;
  if (has("steps")) body.steps = +$("steps").value;
  if (has("sampler")) body.sampler = $("sampler").value;
  if (has("class") && $("class").value !== "") body.class = +$("class").value;
  if (has("guidance") && body.class !== undefined) body.guidance = +$("guidance").value;
  return body;
}

async function generate() {
  const body = imageRequest();
  const answer = await call("/v1/generate", body, "generate");
  if (!answer) return;
  images("samples", answer.images);
  reproduce("repro", "/v1/generate", answer.request);
  $("samples").dataset.seed = answer.seed;
}
const generateSoon = debounce(generate, 60);

// Latent sliders: for a model with an encoder (a VAE), steps along the principal directions of
// its latent codes, in standard deviations; otherwise the first coordinates of the latent itself.
// Either way they start from the latent the seed draws.
let directions = null;

async function setupLatents() {
  const seed = +$("seed").value;
  const answer = await call("/v1/interpolate", { model: current.id, from: { seed }, to: { seed }, steps: 2 }, "latent-base");
  if (!answer) return;
  latentBase = answer.latents[0];
  directions = has("directions")
    ? await call("/v1/models/" + encodeURIComponent(current.id) + "/directions?count=8", undefined, "directions")
    : null;
  const dims = directions ? directions.directions.length : Math.min(current.latent_dim, 8);
  $("latent-sliders").replaceChildren(...Array.from({ length: dims }, (_, i) => {
    const label = document.createElement("label");
    label.textContent = (directions ? "pc" + (i + 1) : "z" + i) + " ";
    const input = document.createElement("input");
    const value = directions ? 0 : latentBase[i].toFixed(1);
    Object.assign(input, { type: "range", min: -3, max: 3, step: 0.1, value, id: "z" + i });
    input.addEventListener("input", decodeSoon);
    label.append(input);
    return label;
  }));
  decode();
}

async function decode() {
  if (!latentBase) return;
  const z = latentBase.slice();
  const sliders = $("latent-sliders").querySelectorAll("input");
  sliders.forEach((input, i) => {
    if (directions) directions.directions[i].forEach((v, j) => (z[j] += +input.value * directions.std[i] * v));
    else z[i] = +input.value;
  });
  const body = { model: current.id, latents: [z] };
  if (has("class") && $("class").value !== "") body.class = +$("class").value;
  const answer = await call("/v1/generate", body, "decode");
  if (answer) images("latent-image", answer.images);
}
const decodeSoon = debounce(decode, 40);

async function interpolate() {
  const body = { model: current.id, from: { seed: +$("from-seed").value }, to: { seed: +$("to-seed").value }, steps: 8 };
  if (has("class") && $("class").value !== "") body.class = +$("class").value;
  const answer = await call("/v1/interpolate", body, "interpolate");
  if (!answer) return;
  images("strip", answer.images);
  reproduce("strip-repro", "/v1/interpolate", body);
}

async function loadExamples() {
  const answer = await call("/v1/models/" + encodeURIComponent(current.id) + "/examples?count=8", undefined, "examples");
  if (!answer) return;
  images("examples", answer.images);
  [...$("examples").children].forEach((img, i) => img.addEventListener("click", () => choose(answer.images[i], answer.shape, img)));
  choose(answer.images[0], answer.shape, $("examples").children[0]);
}

function choose(png, shape, img) {
  [...$("examples").children].forEach((e) => e.classList.remove("picked"));
  img.classList.add("picked");
  picked = { png, shape, image: new Image() };
  mask = new Uint8Array(shape[1] * shape[2]);
  picked.image.onload = paint;
  picked.image.src = "data:image/png;base64," + png;
}

function paint() {
  const c = $("canvas"), g = c.getContext("2d");
  const [, h, w] = picked.shape;
  g.imageSmoothingEnabled = false;
  g.drawImage(picked.image, 0, 0, c.width, c.height);
  g.fillStyle = "rgba(230, 60, 60, 0.65)";
  const sx = c.width / w, sy = c.height / h;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if (mask[y * w + x]) g.fillRect(x * sx, y * sy, sx, sy);
}

function brush(event) {
  if (!picked || !(event.buttons & 1)) return;
  const c = $("canvas"), r = c.getBoundingClientRect();
  const [, h, w] = picked.shape;
  const cx = ((event.clientX - r.left) / r.width) * w, cy = ((event.clientY - r.top) / r.height) * h;
  const b = +$("brush").value / 2;
  for (let y = Math.floor(cy - b); y <= cy + b; y++)
    for (let x = Math.floor(cx - b); x <= cx + b; x++)
      if (x >= 0 && y >= 0 && x < w && y < h) mask[y * w + x] = 1;
  paint();
}

function maskPng() {
  const [, h, w] = picked.shape;
  const c = document.createElement("canvas");
  c.width = w; c.height = h;
  const g = c.getContext("2d"), data = g.createImageData(w, h);
  for (let i = 0; i < w * h; i++) {
    const v = mask[i] ? 255 : 0;
    data.data.set([v, v, v, 255], i * 4);
  }
  g.putImageData(data, 0, 0);
  return c.toDataURL("image/png").split(",")[1];
}

async function complete() {
  if (!picked) return;
  const body = { model: current.id, count: 4, seed: +$("seed").value, partial: { image: picked.png, mask: maskPng() } };
  if (has("steps")) body.steps = +$("steps").value;
  if (has("sampler")) body.sampler = $("sampler").value;
  if (has("class") && $("class").value !== "") { body.class = +$("class").value; body.guidance = +$("guidance").value; }
  const answer = await call("/v1/generate", body, "complete");
  if (!answer) return;
  images("completions", answer.images);
  const shown = Object.assign({}, answer.request, { partial: { image: "<base64 PNG>", mask: "<base64 PNG>" } });
  reproduce("inpaint-repro", "/v1/generate", shown);
}

async function points() {
  const body = { model: current.id, count: 1000, seed: +$("p-seed").value };
  if (has("temperature")) body.temperature = +$("p-temperature").value;
  const answer = await call("/v1/generate", body, "points");
  if (!answer) return;
  const c = $("scatter"), g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const xs = answer.points.map((p) => p[0]), ys = answer.points.map((p) => p[1]);
  const lo = Math.min(...xs, ...ys), hi = Math.max(...xs, ...ys), s = (c.width - 20) / (hi - lo || 1);
  g.fillStyle = "rgba(35, 57, 93, 0.5)";
  answer.points.forEach(([x, y]) => g.fillRect(10 + (x - lo) * s, c.height - 10 - (y - lo) * s, 2, 2));
  reproduce("p-repro", "/v1/generate", answer.request);
}

// Text streams in as the server sends it: OpenAI's server-sent events, read from fetch's body.
async function stream() {
  const body = {
    model: current.id, prompt: $("prompt").value, max_tokens: +$("max-tokens").value,
    temperature: +$("t-temperature").value, top_p: +$("top-p").value, seed: +$("t-seed").value, stream: true,
  };
  const out = $("completion");
  out.textContent = body.prompt;
  out.dataset.done = "false";
  out.dataset.chunks = "0";
  const r = await fetch("/v1/completions", { method: "POST", headers: headers(), body: JSON.stringify(body) });
  if (!r.ok) {
    const e = await r.json();
    showError(e.error ? e.error.message : "HTTP " + r.status);
    return;
  }
  showError("");
  reproduce("t-repro", "/v1/completions", body);
  const reader = r.body.getReader(), dec = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += dec.decode(value, { stream: true });
    let at;
    while ((at = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, at);
      buffer = buffer.slice(at + 2);
      const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("");
      if (!data || data === "[DONE]") continue;
      const chunk = JSON.parse(data);
      if (chunk.error) showError(chunk.error.message);
      else {
        out.textContent += chunk.choices[0].text;
        out.dataset.chunks = String(+out.dataset.chunks + 1);
      }
    }
  }
  out.dataset.done = "true";
}

async function fix() {
  const body = { model: current.id, input: $("to-correct").value, task: $("task").value, beam: +$("beam").value };
  const answer = await call("/v1/corrections", body, "fix");
  if (answer) $("corrected").textContent = answer.output;
}

["seed", "count", "temperature", "steps", "guidance", "p-seed", "p-temperature", "max-tokens", "t-temperature", "top-p", "beam"].forEach(bindOutput);
["seed", "count", "temperature", "steps", "guidance"].forEach((id) => $(id).addEventListener("input", generateSoon));
["sampler", "class"].forEach((id) => $(id).addEventListener("change", () => { generate(); decode(); }));
$("seed").addEventListener("change", () => { if (has("latents")) setupLatents(); });
["p-seed", "p-temperature"].forEach((id) => $(id).addEventListener("input", debounce(points, 60)));
$("model").addEventListener("change", pick);
$("interpolate").addEventListener("click", interpolate);
$("canvas").addEventListener("pointerdown", brush);
$("canvas").addEventListener("pointermove", brush);
$("clear-mask").addEventListener("click", () => { if (picked) { mask.fill(0); paint(); } });
$("top-half").addEventListener("click", () => {
  if (!picked) return;
  const [, h, w] = picked.shape;
  mask.fill(0);
  mask.fill(1, Math.floor(h / 2) * w);
  paint();
});
$("complete").addEventListener("click", complete);
$("go").addEventListener("click", stream);
$("fix").addEventListener("click", fix);
$("api-key").addEventListener("change", () => { localStorage.setItem("genlab-key", $("api-key").value); loadModels(); });
loadModels();
