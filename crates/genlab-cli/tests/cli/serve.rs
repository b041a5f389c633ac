//! Issue 15: `genlab serve` as a user runs it, over small runs of five families trained here: the
//! API's answers and their seeds, batching that answers each request as it would be answered
//! alone, a full queue's 429, each bad request's 4xx naming the field, SIGTERM draining the
//! requests in progress, and real clients: the `openai` package, schemathesis and
//! openapi-spec-validator (Python, from the virtualenv `scripts/test` makes, `GENLAB_PYTHON`),
//! and Playwright driving Debian's chromium (`GENLAB_NODE_MODULES`, also made by `scripts/test`).

use super::{genlab, stderr, write_config, SMALL, SMALL_GAN};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The five runs, trained once per test process: a VAE, a conditional GAN, a conditional DDPM,
/// a GPT and a seq2seq corrector.
fn runs() -> &'static [PathBuf] {
    static RUNS: OnceLock<Vec<PathBuf>> = OnceLock::new();
    RUNS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let text = super::language::corpus(&dir);
        let configs = [
            ("vae", SMALL.to_string()),
            ("gan", SMALL_GAN.to_string()),
            ("ddpm", super::diffusion::SMALL_DDPM.to_string()),
            ("gpt", super::language::small_gpt(&text, 32)),
            ("corrector", super::language::small_corrector(&text)),
        ];
        configs
            .iter()
            .map(|(name, config)| {
                let at = dir.join(format!("{name}-config"));
                std::fs::create_dir_all(&at).unwrap();
                let cfg = write_config(&at, config);
                let run = dir.join(name);
                let o =
                    genlab().args(["run", cfg.to_str().unwrap(), "--run-dir", run.to_str().unwrap()]).output().unwrap();
                assert!(o.status.success(), "training {name}: {}", stderr(&o));
                run
            })
            .collect()
    })
}

/// A `genlab serve` process over the five runs; killed when dropped.
pub(super) struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        Server::start_with(runs(), extra)
    }

    /// `genlab serve` of `runs` on a free loopback port.
    pub(super) fn start_with(runs: &[PathBuf], extra: &[&str]) -> Server {
        let mut c = genlab();
        c.arg("serve").args(runs).args(["--addr", "127.0.0.1:0"]).args(extra);
        let mut child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().rsplit("http://").next().unwrap().parse().unwrap_or_else(|_| {
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("no address in {line:?}: {err}")
        });
        Server { child, addr }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(super) fn get(&self, path: &str) -> Answer {
        http(self.addr, "GET", path, None, &[])
    }

    fn post(&self, path: &str, body: &str) -> Answer {
        http(self.addr, "POST", path, Some(body.as_bytes()), &[])
    }

    pub(super) fn json(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let a = self.post(path, &body.to_string());
        assert_eq!(a.status, 200, "{path} {body}: {}", a.text());
        a.json()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer.
pub(super) struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    pub(super) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    /// The error object of a refusal, after checking its status.
    fn error(&self, status: u16) -> serde_json::Value {
        assert_eq!(self.status, status, "{}", self.text());
        self.json()["error"].clone()
    }
}

/// One HTTP/1.1 request on its own connection (`Connection: close`), read to the end.
fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&[u8]>, headers: &[(&str, &str)]) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    if let Some(b) = body {
        // A body the server refuses early may not be read whole: later writes can fail.
        let _ = s.write_all(b);
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| panic!("no head in {raw:?}"));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))).collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v == "chunked") {
        body = dechunk(&body);
    }
    Answer { status, headers, body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else { return out };
        let size = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 4 + size..];
    }
}

/// A 28x28 gray PNG and its mask (the bottom half white: generate it), base64.
fn partial_pngs() -> (String, String) {
    use base64_engine as b64;
    let image = image::GrayImage::from_fn(28, 28, |x, y| {
        image::Luma([if (8..20).contains(&x) && (4..24).contains(&y) { 255 } else { 0 }])
    });
    let mask = image::GrayImage::from_fn(28, 28, |_, y| image::Luma([if y >= 14 { 255 } else { 0 }]));
    let png = |im: &image::GrayImage| {
        let mut out = std::io::Cursor::new(Vec::new());
        im.write_to(&mut out, image::ImageFormat::Png).unwrap();
        b64(out.get_ref())
    };
    (png(&image), png(&mask))
}

/// Standard base64 (RFC 4648, with padding).
fn base64_engine(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[test]
fn issue15_api_serves_every_family_and_its_seeds_reproduce() {
    let server = Server::start(&[]);
    let models = server.get("/v1/models").json();
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["corrector", "ddpm", "gan", "gpt", "vae"]);
    let gan = &models["data"][2];
    assert_eq!(
        (gan["family"].as_str(), gan["latent_dim"].as_u64(), gan["ema"].as_bool()),
        (Some("gan"), Some(8), Some(true))
    );
    assert_eq!(gan["classes"].as_array().unwrap().len(), 10);

    // The same seed draws the same images; the answer gives the seed it used.
    let a = server.json("/v1/generate", serde_json::json!({"model": "vae", "count": 3, "seed": 5}));
    let b = server.json("/v1/generate", serde_json::json!({"model": "vae", "count": 3, "seed": 5}));
    assert_eq!(a["images"], b["images"]);
    assert_eq!(a["images"].as_array().unwrap().len(), 3);
    let drawn = server.json("/v1/generate", serde_json::json!({"model": "vae"}));
    let again = server.json("/v1/generate", serde_json::json!({"model": "vae", "seed": drawn["seed"]}));
    assert_eq!(drawn["images"], again["images"], "the seed in the answer draws the same image again");
    assert_eq!(drawn["request"]["seed"], drawn["seed"]);

    // A seed's latent, decoded, is that seed's image; interpolation starts and ends on them.
    let line = server.json(
        "/v1/interpolate",
        serde_json::json!({"model": "gan", "from": {"seed": 1}, "to": {"seed": 2}, "steps": 5, "class": 4}),
    );
    assert_eq!(line["images"].as_array().unwrap().len(), 5);
    let one = server.json("/v1/generate", serde_json::json!({"model": "gan", "seed": 1, "class": 4}));
    let two = server.json("/v1/generate", serde_json::json!({"model": "gan", "seed": 2, "class": 4}));
    assert_eq!(line["images"][0], one["images"][0]);
    assert_eq!(line["images"][4], two["images"][0]);
    let z = line["latents"][2].clone();
    let decoded = server.json("/v1/generate", serde_json::json!({"model": "gan", "latents": [z], "class": 4}));
    assert_eq!(decoded["images"][0], line["images"][2]);

    // A VAE's latent codes have principal directions: orthonormal, their spreads in decreasing order.
    let pcs = server.get("/v1/models/vae/directions?count=3").json();
    let dirs: Vec<Vec<f64>> = serde_json::from_value(pcs["directions"].clone()).unwrap();
    let spread: Vec<f64> = serde_json::from_value(pcs["std"].clone()).unwrap();
    assert_eq!((dirs.len(), dirs[0].len()), (3, 4));
    for i in 0..3 {
        for j in 0..3 {
            let dot: f64 = dirs[i].iter().zip(&dirs[j]).map(|(a, b)| a * b).sum();
            assert!((dot - if i == j { 1.0 } else { 0.0 }).abs() < 1e-3, "directions {i} and {j}: {dot}");
        }
    }
    assert!(spread[0] >= spread[1] && spread[1] >= spread[2] && spread[2] > 0.0, "{spread:?}");
    assert_eq!(server.get("/v1/models/gan/directions").error(400)["param"], "model");

    // PNG out: one image, or a grid, with the seed in a header.
    let png = server.post("/v1/generate", r#"{"model": "gan", "count": 4, "seed": 9, "class": 1, "format": "png"}"#);
    assert_eq!((png.status, png.header("content-type")), (200, Some("image/png")));
    assert_eq!(png.header("x-genlab-seed"), Some("9"));
    let grid = image::load_from_memory(&png.body).unwrap();
    assert!(grid.width() > 2 * 28 && grid.height() > 2 * 28, "a 2x2 grid");

    // Diffusion with sampler, steps, guidance, class, and an in-painting request.
    let d = server.json(
        "/v1/generate",
        serde_json::json!({"model": "ddpm", "count": 2, "seed": 3, "class": 7, "sampler": "ddim", "steps": 4, "guidance": 1.5}),
    );
    assert_eq!(d["shape"], serde_json::json!([1, 28, 28]));
    let (image, mask) = partial_pngs();
    let p = server.json(
        "/v1/generate",
        serde_json::json!({"model": "ddpm", "count": 2, "seed": 3, "steps": 4, "partial": {"image": image, "mask": mask}}),
    );
    assert_eq!(p["images"].as_array().unwrap().len(), 2);
    let examples = server.get("/v1/models/ddpm/examples?count=3").json();
    assert_eq!(examples["images"].as_array().unwrap().len(), 3);

    // Text: a completion, a chat completion, a stream of events ending in [DONE], a correction.
    let c = server
        .json("/v1/completions", serde_json::json!({"model": "gpt", "prompt": "ROMEO:", "max_tokens": 9, "seed": 4}));
    assert_eq!(c["choices"][0]["finish_reason"], "length");
    assert_eq!(c["usage"]["completion_tokens"], 9, "a character model: one token a character: {c}");
    let s = server
        .post("/v1/completions", r#"{"model": "gpt", "prompt": "ROMEO:", "max_tokens": 9, "seed": 4, "stream": true}"#);
    assert_eq!(s.header("content-type"), Some("text/event-stream"));
    let events: Vec<&str> = s.text().leak().lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert_eq!(events.last(), Some(&"[DONE]"));
    let streamed: String = events[..events.len() - 1]
        .iter()
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(e).unwrap()["choices"][0]["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(streamed, c["choices"][0]["text"].as_str().unwrap(), "the stream's pieces make the whole completion");
    let chat = server.json(
        "/v1/chat/completions",
        serde_json::json!({"model": "gpt", "messages": [{"role": "user", "content": "Speak"}], "max_tokens": 5}),
    );
    assert_eq!(chat["choices"][0]["message"]["role"], "assistant");
    let fixed =
        server.json("/v1/corrections", serde_json::json!({"model": "corrector", "input": "Thou art mroe", "beam": 2}));
    assert!(!fixed["output"].as_str().unwrap().is_empty());

    // Operations: health, readiness, the spec, the metrics, the page and its assets.
    assert_eq!(server.get("/healthz").json()["status"], "ok");
    assert_eq!(server.get("/readyz").json()["status"], "ready");
    let spec = server.get("/openapi.json").json();
    assert_eq!(spec["openapi"], "3.1.0");
    assert!(spec["paths"]["/v1/chat/completions"]["post"].is_object());
    let metrics = server.get("/metrics").text();
    for want in [
        r#"genlab_requests_total{route="/v1/generate",status="200"}"#,
        "genlab_request_duration_seconds_bucket",
        r#"genlab_batch_size_count{model="vae"}"#,
        r#"genlab_queue_depth{model="gpt"} 0"#,
    ] {
        assert!(metrics.contains(want), "/metrics lacks {want}: {metrics}");
    }
    let page = server.get("/");
    assert!(page.text().contains("<script src=\"/app.js\">"));
    assert!(server.get("/app.js").text().contains("/v1/completions"));
}

#[test]
fn issue15_concurrent_requests_are_batched_and_each_answer_is_its_own() {
    let alone = Server::start(&["--max-batch", "1"]);
    let batched = Server::start(&["--max-batch", "16", "--max-wait-ms", "200"]);
    // A GAN merges latents; a diffusion model merges per-image noise streams.
    let bodies: Vec<serde_json::Value> = (0..8)
        .map(|s| serde_json::json!({"model": "gan", "count": 1 + (s % 3), "seed": s, "class": 2}))
        .chain(
            (0..6)
                .map(|s| serde_json::json!({"model": "ddpm", "count": 1 + (s % 2), "seed": s, "class": 5, "steps": 3})),
        )
        .collect();
    let want: Vec<serde_json::Value> =
        bodies.iter().map(|b| alone.json("/v1/generate", b.clone())["images"].clone()).collect();
    let addr = batched.addr;
    let got: Vec<serde_json::Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = bodies
            .iter()
            .map(|b| {
                scope.spawn(move || http(addr, "POST", "/v1/generate", Some(b.to_string().as_bytes()), &[]).json())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()["images"].clone()).collect()
    });
    assert_eq!(got, want, "a request batched with others answers as it does alone");
    let metrics = batched.get("/metrics").text();
    let value = |name: &str| -> f64 {
        metrics.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()).unwrap().parse().unwrap()
    };
    for (model, requests) in [("gan", 8.0), ("ddpm", 6.0)] {
        let batches = value(&format!("genlab_batch_size_count{{model=\"{model}\"}}"));
        assert_eq!(value(&format!("genlab_batch_size_sum{{model=\"{model}\"}}")), requests);
        assert!(batches < requests, "{requests} concurrent {model} requests in {batches} batches: {metrics}");
    }
}

#[test]
fn issue15_a_full_queue_answers_429_with_retry_after() {
    let server = Server::start(&["--queue", "1", "--max-batch", "1"]);
    let addr = server.addr;
    let slow = r#"{"model": "ddpm", "count": 32, "steps": 50, "sampler": "ddpm", "seed": 1}"#;
    let answers: Vec<Answer> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|_| scope.spawn(move || http(addr, "POST", "/v1/generate", Some(slow.as_bytes()), &[])))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = answers.iter().filter(|a| a.status == 200).count();
    let busy: Vec<&Answer> = answers.iter().filter(|a| a.status == 429).collect();
    assert_eq!(ok + busy.len(), 6, "only 200 or 429: {:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>());
    assert!(ok >= 1 && !busy.is_empty(), "one worker and a queue of one cannot take six at once");
    let e = busy[0].error(429);
    assert_eq!(e["code"], "queue_full");
    assert_eq!(busy[0].header("retry-after"), Some("1"));
}

#[test]
fn issue15_bad_requests_answer_4xx_naming_the_field() {
    let server =
        Server::start(&["--max-count", "8", "--max-steps", "20", "--max-tokens", "50", "--max-body", "200000"]);
    let (image, mask) = partial_pngs();
    let cases: Vec<(&str, String, u16, Option<&str>, &str)> = vec![
        ("/v1/generate", "{\"model\": \"vae\",".into(), 400, None, "not JSON"),
        ("/v1/generate", r#"{"model": "vae", "colour": 1}"#.into(), 400, Some("colour"), "unknown field"),
        ("/v1/generate", r#"{"count": 2}"#.into(), 400, Some("model"), "missing field"),
        ("/v1/generate", r#"{"model": "vae", "count": "two"}"#.into(), 400, Some("count"), "invalid type"),
        ("/v1/generate", r#"{"model": "vae", "count": 9}"#.into(), 400, Some("count"), "expected 1 to 8"),
        ("/v1/generate", r#"{"model": "vae", "count": 0}"#.into(), 400, Some("count"), "expected 1 to 8"),
        ("/v1/generate", r#"{"model": "nope"}"#.into(), 404, Some("model"), "no such model"),
        (
            "/v1/generate",
            r#"{"model": "vae", "temperature": 0.5}"#.into(),
            400,
            Some("temperature"),
            "vae family has no sampling temperature",
        ),
        ("/v1/generate", r#"{"model": "gan", "class": 12}"#.into(), 400, Some("class"), "10 classes"),
        ("/v1/generate", r#"{"model": "ddpm", "steps": 21}"#.into(), 400, Some("steps"), "expected 1 to 20"),
        ("/v1/generate", r#"{"model": "ddpm", "sampler": "euler"}"#.into(), 400, Some("sampler"), "euler"),
        ("/v1/generate", r#"{"model": "gpt"}"#.into(), 400, Some("model"), "/v1/completions"),
        ("/v1/generate", r#"{"model": "vae", "latents": [[1, 2]]}"#.into(), 400, Some("latents"), "expected 4"),
        (
            "/v1/generate",
            r#"{"model": "vae", "partial": {"image": "aGk=", "mask": "aGk="}}"#.into(),
            400,
            Some("partial"),
            "cannot complete",
        ),
        (
            "/v1/generate",
            format!(r#"{{"model": "ddpm", "partial": {{"image": "***", "mask": "{mask}"}}}}"#),
            400,
            Some("partial.image"),
            "not base64",
        ),
        (
            "/v1/generate",
            format!(r#"{{"model": "ddpm", "partial": {{"image": "aGVsbG8=", "mask": "{mask}"}}}}"#),
            400,
            Some("partial.image"),
            "not a PNG",
        ),
        (
            "/v1/generate",
            format!(r#"{{"model": "ddpm", "partial": {{"image": "{image}", "mask": "{image}"}}, "format": "gif"}}"#),
            400,
            Some("format"),
            "unknown variant",
        ),
        (
            "/v1/interpolate",
            r#"{"model": "ddpm", "from": {"seed": 1}, "to": {"seed": 2}}"#.into(),
            400,
            Some("model"),
            "no latent",
        ),
        (
            "/v1/interpolate",
            r#"{"model": "vae", "from": {"seed": 1}, "to": {}}"#.into(),
            400,
            Some("to"),
            "either a seed or a latent",
        ),
        (
            "/v1/completions",
            r#"{"model": "gpt", "prompt": "A", "max_tokens": 51}"#.into(),
            400,
            Some("max_tokens"),
            "expected 1 to 50",
        ),
        (
            "/v1/completions",
            r#"{"model": "gpt", "prompt": "A", "temperature": 3}"#.into(),
            400,
            Some("temperature"),
            "expected 0 to 2",
        ),
        ("/v1/completions", r#"{"model": "gpt", "prompt": "A", "top_p": 0}"#.into(), 400, Some("top_p"), "(0, 1]"),
        (
            "/v1/completions",
            r#"{"model": "gpt", "prompt": "A", "n": 2, "stream": true}"#.into(),
            400,
            Some("n"),
            "one completion",
        ),
        ("/v1/completions", r#"{"model": "gpt", "prompt": "\u00e9"}"#.into(), 400, Some("prompt"), "vocabulary"),
        (
            "/v1/completions",
            r#"{"model": "gpt", "prompt": "A", "logit_bias": {}}"#.into(),
            400,
            Some("logit_bias"),
            "unknown field",
        ),
        (
            "/v1/completions",
            r#"{"model": "vae", "prompt": "A"}"#.into(),
            400,
            Some("model"),
            "does not continue a prompt",
        ),
        ("/v1/chat/completions", r#"{"model": "gpt", "messages": []}"#.into(), 400, Some("messages"), "at least one"),
        (
            "/v1/chat/completions",
            r#"{"model": "gpt", "messages": [{"role": "robot", "content": "A"}]}"#.into(),
            400,
            Some("messages"),
            "robot",
        ),
        ("/v1/corrections", r#"{"model": "gpt", "input": "A"}"#.into(), 400, Some("model"), "does not correct"),
        (
            "/v1/corrections",
            r#"{"model": "corrector", "input": "A", "beam": 0}"#.into(),
            400,
            Some("beam"),
            "at least 1",
        ),
    ];
    for (path, body, status, param, says) in &cases {
        let a = server.post(path, body);
        let e = a.error(*status);
        assert_eq!(e["param"].as_str(), *param, "{path} {body}: {e}");
        assert!(e["message"].as_str().unwrap().contains(says), "{path} {body}: {e} should say {says:?}");
    }
    // The body limit, unknown paths and methods, a bad query.
    let big = format!(r#"{{"model": "vae", "latents": [[{}]]}}"#, vec!["0.5"; 60_000].join(","));
    assert_eq!(server.post("/v1/generate", &big).error(413)["code"], "body_too_large");
    assert_eq!(server.get("/v1/nothing").error(404)["code"], "not_found");
    assert_eq!(server.get("/v1/generate").error(405)["code"], "method_not_allowed");
    assert_eq!(server.get("/v1/models/ddpm/examples?count=100").error(400)["param"], "count");
    assert_eq!(server.get("/v1/models/gpt/examples").error(400)["param"], "model");
    assert_eq!(server.get("/v1/models/nope").error(404)["param"], "model");
    // Nothing above hurt the server.
    assert_eq!(server.get("/healthz").status, 200);

    // A key: /v1 asks for it, the operations endpoints do not.
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("key"), "s3cret\n").unwrap();
    let locked = Server::start(&["--api-key-file", d.path().join("key").to_str().unwrap()]);
    assert_eq!(locked.get("/v1/models").error(401)["code"], "invalid_api_key");
    let wrong = http(locked.addr, "GET", "/v1/models", None, &[("Authorization", "Bearer nope")]);
    assert_eq!(wrong.status, 401);
    let right = http(locked.addr, "GET", "/v1/models", None, &[("Authorization", "Bearer s3cret")]);
    assert_eq!(right.status, 200);
    assert_eq!(locked.get("/healthz").status, 200);

    // A request that cannot finish in time answers 408, and the server goes on.
    let hurried = Server::start(&["--timeout", "0.2"]);
    let e =
        hurried.post("/v1/generate", r#"{"model": "ddpm", "count": 64, "steps": 50, "sampler": "ddpm"}"#).error(408);
    assert_eq!(e["param"], "timeout");
    assert_eq!(hurried.json("/v1/generate", serde_json::json!({"model": "vae"}))["count"], 1);
}

/// A diffusion request of `count` images that takes seconds, on its own thread, 300 ms under way.
fn slow_request(addr: SocketAddr, count: usize) -> std::thread::JoinHandle<Answer> {
    let body = format!(r#"{{"model": "ddpm", "count": {count}, "steps": 50, "sampler": "ddpm"}}"#);
    let slow = std::thread::spawn(move || http(addr, "POST", "/v1/generate", Some(body.as_bytes()), &[]));
    std::thread::sleep(Duration::from_millis(300));
    slow
}

#[test]
fn issue15_connection_and_concurrency_bounds_and_cors() {
    // Requests in progress beyond --max-concurrent answer 429 at once.
    let server = Server::start(&["--max-concurrent", "1"]);
    let addr = server.addr;
    let slow = slow_request(addr, 32);
    let busy = server.get("/healthz");
    assert_eq!(busy.error(429)["code"], "too_many_requests");
    assert_eq!(busy.header("retry-after"), Some("1"));
    assert_eq!(slow.join().unwrap().status, 200);
    assert_eq!(server.get("/healthz").status, 200);

    // Connections beyond --max-connections wait to be accepted, and are served once one closes.
    let server = Server::start(&["--max-connections", "1"]);
    let first = TcpStream::connect(server.addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut second = TcpStream::connect(server.addr).unwrap();
    second.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    second
        .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", server.addr).as_bytes())
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(second.read(&mut buf).is_err(), "the second connection waits while the first is open");
    drop(first);
    second.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = String::new();
    second.read_to_string(&mut head).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    // CORS: no header unless an origin is allowed.
    let preflight = [("Origin", "http://page.test"), ("Access-Control-Request-Method", "POST")];
    let closed = http(server.addr, "OPTIONS", "/v1/generate", None, &preflight);
    assert_eq!(closed.header("access-control-allow-origin"), None);
    let open = Server::start(&["--cors-origin", "http://page.test"]);
    let allowed = http(open.addr, "OPTIONS", "/v1/generate", None, &preflight);
    assert_eq!(allowed.header("access-control-allow-origin"), Some("http://page.test"));
}

#[test]
fn issue15_sigterm_lets_requests_in_progress_finish() {
    let mut server = Server::start(&[]);
    let addr = server.addr;
    let slow = slow_request(addr, 64);
    assert_eq!(unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) }, 0);
    let answer = slow.join().unwrap();
    assert_eq!(answer.status, 200, "the request in progress is answered: {}", answer.text());
    assert_eq!(answer.json()["images"].as_array().unwrap().len(), 64);
    let status = server.child.wait().unwrap();
    assert!(status.success(), "SIGTERM exits 0 after draining: {status:?}");
    assert!(TcpStream::connect(addr).is_err(), "no new connections after the drain");
}

#[test]
fn issue15_bad_serve_arguments_are_one_line() {
    let d = tempfile::tempdir().unwrap();
    super::fails_with(&["serve", d.path().join("nothing").to_str().unwrap()], &["nothing", "experiment.toml"]);
    super::fails_with(
        &["serve", runs()[0].to_str().unwrap(), "--api-key-file", "/no/such/key"],
        &["--api-key-file", "/no/such/key"],
    );
    super::fails_with(&["serve", runs()[0].to_str().unwrap(), "--max-batch", "0"], &["--max-batch 0"]);
    super::fails_with(&["serve", runs()[0].to_str().unwrap(), "--timeout=-1"], &["--timeout -1"]);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    super::fails_with(&["serve", runs()[0].to_str().unwrap(), "--addr", &addr], &["--addr", &addr, "cannot listen"]);
    super::fails_with(
        &["serve", runs()[0].to_str().unwrap(), runs()[0].to_str().unwrap()],
        &["a second run named \"vae\""],
    );
}

fn python() -> String {
    std::env::var("GENLAB_PYTHON").unwrap_or_else(|_| {
        panic!("GENLAB_PYTHON should name a Python with openai, schemathesis and openapi-spec-validator (scripts/test makes one)")
    })
}

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Where a test leaves what a person may want to look at (screenshots, reports).
fn artefacts() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artefacts/serve");
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn issue15_real_clients_openai_schemathesis_and_the_spec_validator() {
    let server = Server::start(&["--max-count", "8", "--max-steps", "20", "--max-tokens", "64"]);
    let run = |what: &str, c: &mut Command| {
        let o = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
        let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
        assert!(o.status.success(), "{what} failed:\n{out}");
        out
    };
    let py = python();
    run(
        "the openai client",
        Command::new(&py).arg(clients_dir().join("openai_client.py")).arg(server.url()).arg("gpt"),
    );

    let spec = artefacts().join("openapi.json");
    std::fs::write(&spec, server.get("/openapi.json").body).unwrap();
    let bin = Path::new(&py).parent().unwrap();
    let out = run("openapi-spec-validator", Command::new(bin.join("openapi-spec-validator")).arg(&spec));
    assert!(out.contains("OK"), "{out}");

    let out = run(
        "schemathesis",
        Command::new(bin.join("schemathesis"))
            .current_dir(artefacts())
            .args(["run", &format!("{}/openapi.json", server.url()), "--url", &server.url()])
            .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance"])
            .args(["--max-examples", "60", "--seed", "15", "--generation-database", "none"])
            .env("NO_COLOR", "1"),
    );
    assert!(out.contains("passed") && !out.contains("FAILURES"), "{out}");
}

#[test]
fn issue15_the_page_in_a_real_browser() {
    let modules = std::env::var("GENLAB_NODE_MODULES").unwrap_or_else(|_| {
        panic!("GENLAB_NODE_MODULES should name a node_modules with playwright-core (scripts/test makes one)")
    });
    let server = Server::start(&[]);
    let out = artefacts();
    let o = Command::new("node")
        .arg(clients_dir().join("page.cjs"))
        .args([&server.url(), out.to_str().unwrap(), "gan", "ddpm", "gpt", "corrector", "vae"])
        .env("NODE_PATH", &modules)
        .output()
        .unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(o.status.success(), "the page test failed:\n{log}");
    for shot in ["page-images.png", "page-inpainting.png", "page-text.png"] {
        let png = image::open(out.join(shot)).unwrap();
        assert!(png.width() >= 800, "{shot}");
    }
}
