// The web page in a real browser: Playwright (npm playwright-core) driving Debian's chromium,
// headless. Run by crates/genlab-cli/tests/cli/serve.rs against a live `genlab serve`:
//   node page.cjs BASE_URL OUT_DIR IMAGE_MODEL INPAINT_MODEL TEXT_MODEL CORRECT_MODEL [VAE_MODEL]
// Each step throws (exit 1) when the page does not do what it should; screenshots go to OUT_DIR.
"use strict";
const { chromium } = require("playwright-core");

const [base, out, imageModel, inpaintModel, textModel, correctModel, vaeModel] = process.argv.slice(2);
const step = (name) => console.log("page: " + name);

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = await browser.newPage({ viewport: { width: 1100, height: 1300 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  try {
    // The page loads and draws the first model's samples.
    await page.goto(base + "/?model=" + imageModel);
    await page.waitForSelector("#samples img");
    step("loaded " + imageModel);

    // Moving the seed slider changes the image.
    const first = await page.getAttribute("#samples img", "src");
    await page.locator("#seed").fill("7");
    await page.waitForFunction((src) => {
      const img = document.querySelector("#samples img");
      return img && img.src !== src;
    }, first);
    step("the seed slider changed the image");

    // A class pick gives that class: the page asks for it, and shows what the API draws for it.
    await page.selectOption("#class", "3");
    await page.waitForFunction(() => document.getElementById("repro").textContent.includes('"class":3'));
    const shown = await page.getAttribute("#samples img", "src");
    const direct = await page.evaluate(async (model) => {
      const seed = +document.getElementById("seed").value, count = +document.getElementById("count").value;
      const r = await fetch("/v1/generate", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ model, count, seed, class: 3 }) });
      return "data:image/png;base64," + (await r.json()).images[0];
    }, imageModel);
    if (shown !== direct) throw new Error("the page's class-3 image is not the API's class-3 image");
    step("the class picker gave class 3");

    // A latent slider changes the decoded image; the interpolation strip fills.
    await page.waitForSelector("#latent-image img");
    const before = await page.getAttribute("#latent-image img", "src");
    await page.locator("#z0").fill("2.5");
    await page.waitForFunction((src) => document.querySelector("#latent-image img").src !== src, before);
    await page.click("#interpolate");
    await page.waitForFunction(() => document.querySelectorAll("#strip img").length === 8);
    step("latent slider and interpolation strip");
    await page.screenshot({ path: out + "/page-images.png", fullPage: true });

    // A VAE's sliders move along the principal directions of its latent codes.
    if (vaeModel) {
      await page.goto(base + "/?model=" + vaeModel);
      await page.waitForSelector("#latent-image img");
      const label = await page.textContent("#latent-sliders label");
      if (!label.startsWith("pc1")) throw new Error("the VAE's first slider is " + label + ", not pc1");
      const start = await page.getAttribute("#latent-image img", "src");
      await page.locator("#z0").fill("3");
      await page.waitForFunction((src) => document.querySelector("#latent-image img").src !== src, start);
      step("a principal-direction slider changed the VAE's image");
    }

    // In-painting: pick a test image, mask its bottom half, get completions.
    await page.goto(base + "/?model=" + inpaintModel);
    await page.waitForSelector("#examples img");
    await page.click("#examples img:nth-child(2)");
    await page.click("#top-half");
    const box = await page.locator("#canvas").boundingBox();
    await page.mouse.move(box.x + 20, box.y + 20);
    await page.mouse.down();
    await page.mouse.move(box.x + 60, box.y + 40);
    await page.mouse.up();
    await page.click("#complete");
    await page.waitForFunction(() => document.querySelectorAll("#completions img").length === 4);
    const repro = await page.textContent("#inpaint-repro");
    if (!repro.includes('"partial"')) throw new Error("the completion's request has no partial input: " + repro);
    step("in-painting canvas returned 4 completions");
    await page.screenshot({ path: out + "/page-inpainting.png", fullPage: true });

    // Text streams in: the box grows piece by piece before the stream ends.
    await page.goto(base + "/?model=" + textModel);
    await page.waitForSelector("#text:not([hidden])");
    await page.locator("#max-tokens").fill("60");
    await page.click("#go");
    await page.waitForFunction(() => document.getElementById("completion").dataset.done === "true");
    const updates = +(await page.getAttribute("#completion", "data-chunks"));
    const text = await page.textContent("#completion");
    const prompt = await page.inputValue("#prompt");
    if (!text.startsWith(prompt) || text.length <= prompt.length) throw new Error("no completion after the prompt: " + text);
    if (updates < 5) throw new Error("the text arrived in " + updates + " events; expected it token by token");
    step("text streamed in " + updates + " events, each appended as it came");
    await page.screenshot({ path: out + "/page-text.png", fullPage: true });

    // The corrector's box.
    await page.goto(base + "/?model=" + correctModel);
    await page.waitForSelector("#correct:not([hidden])");
    await page.click("#fix");
    await page.waitForFunction(() => document.getElementById("corrected").textContent.length > 0);
    step("corrected");
    if (errors.length) throw new Error("page errors: " + errors.join("; "));
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error("page test failed: " + (e && e.stack ? e.stack : e));
  process.exit(1);
});
