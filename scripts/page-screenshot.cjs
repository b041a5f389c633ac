// The README's picture of the page: node scripts/page-screenshot.cjs URL MODEL OUT.png
// (NODE_PATH=target/nodeclients/node_modules, made by scripts/test; Debian's chromium).
"use strict";
const { chromium } = require("playwright-core");
const [url, model, out] = process.argv.slice(2);

(async () => {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
  await page.goto(url + "/?model=" + model);
  await page.waitForSelector("#samples img");
  await page.locator("#count").fill("16");
  await page.selectOption("#class", "3");
  await page.waitForFunction(() => document.querySelectorAll("#samples img").length === 16);
  if (await page.isVisible("#interpolate")) {
    await page.click("#interpolate");
    await page.waitForFunction(() => document.querySelectorAll("#strip img").length === 8);
  }
  await page.screenshot({ path: out, fullPage: true });
  await browser.close();
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
