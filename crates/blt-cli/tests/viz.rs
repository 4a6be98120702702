//! `blt viz`, `blt stats` and `blt sphere` end to end: the HTML report opened in headless
//! Chromium (DOM and screenshot checked), and the corpus commands on a real ingest run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn blt(cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_blt"));
    c.env_remove("BLT_MODEL")
        .env("BLT_CACHE_DIR", cache)
        .env("HF_HUB_OFFLINE", "1");
    c
}

fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn tiny_model() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../blt-model/tests/fixtures/tiny")
        .display()
        .to_string()
}

/// The target folder (parent of `CARGO_TARGET_TMPDIR`): the screenshot is kept there.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// Debian's chromium (installed by `scripts/setup/30-chromium.sh`), or `$BLT_CHROMIUM`.
fn chromium() -> PathBuf {
    let path = std::env::var_os("BLT_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.is_file(),
        "{} not found: run scripts/setup/30-chromium.sh (cargo xtask test does) or set BLT_CHROMIUM",
        path.display()
    );
    path
}

/// Chromium headless with the flags a closed-network, root, GPU-less machine needs.
fn headless(profile: &Path) -> Command {
    let mut c = Command::new(chromium());
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

fn decode_png(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let pixels = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width, info.height, pixels)
}

fn near(p: [u8; 3], c: [u8; 3], tol: i32) -> bool {
    (0..3).all(|i| (p[i] as i32 - c[i] as i32).abs() <= tol)
}

#[test]
fn report_renders_in_headless_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let text = "The Byte Latent Transformer groups predictable bytes into longer patches: \
                entropy decides where a new patch starts.";
    let report = tmp.path().join("report.html");
    let plot = tmp.path().join("plot.png");
    ok(blt(&cache)
        .args(["viz", "--text", text, "--output"])
        .arg(&report)
        .arg("--png")
        .arg(&plot)
        .output()
        .unwrap());
    let o = ok(blt(&cache)
        .args(["patch", "--text", text, "--json"])
        .output()
        .unwrap());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let patches = v["patch_lengths"].as_array().unwrap().len();
    let positions = v["ids"].as_array().unwrap().len();
    assert!(patches > 5 && patches < positions);

    // The DOM as Chromium parsed it: one boundary mark per patch, the entropy line with one
    // point per position, the threshold line.
    let url = format!("file://{}", report.display());
    let o = ok(headless(&tmp.path().join("profile-dom"))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap());
    let dom = String::from_utf8_lossy(&o.stdout);
    assert!(dom.contains("<svg"), "no SVG in the DOM");
    assert_eq!(dom.matches("class=\"boundary\"").count(), patches);
    assert_eq!(dom.matches("class=\"threshold\"").count(), 2); // overview + page plot
    let page_points = dom
        .split("<details class=\"page\"")
        .nth(1)
        .and_then(|p| p.split("class=\"entropy\" points=\"").nth(1))
        .and_then(|p| p.split('"').next())
        .unwrap();
    assert_eq!(page_points.split(' ').count(), positions);
    assert_eq!(dom.matches("<span class=\"p\"").count(), patches);

    // The screenshot: not blank, and the plot's colours are on it.
    let shot = target_dir().join("viz-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    ok(headless(&tmp.path().join("profile-shot"))
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1400,1600")
        .arg(&url)
        .output()
        .unwrap());
    let (w, h, px) = decode_png(&shot);
    assert_eq!((w, h), (1400, 1600));
    let non_white = px.iter().filter(|p| !near(**p, [255, 255, 255], 8)).count();
    assert!(
        non_white > px.len() / 20,
        "screenshot nearly blank: {non_white} of {} pixels",
        px.len()
    );
    // The entropy line's blue (#1f4e9c; no other colour of the page is within 25 of it).
    let line = px.iter().filter(|p| near(**p, [31, 78, 156], 25)).count();
    assert!(line > 300, "entropy line not visible ({line} px)");
    // The threshold (#d62728, drawn crisp, not on the entropy colour scale): a dashed
    // horizontal line, so at least one pixel row holds hundreds of its pixels.
    let widest_row = (0..h as usize)
        .map(|y| {
            px[y * w as usize..(y + 1) * w as usize]
                .iter()
                .filter(|p| near(**p, [214, 39, 40], 6))
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(
        widest_row > 300,
        "no threshold line in the screenshot ({widest_row} px in the best row)"
    );

    // The PNG plot.
    let (w, h, px) = decode_png(&plot);
    assert_eq!((w, h), (1600, 480));
    assert!(px.iter().filter(|p| near(**p, [31, 78, 156], 10)).count() > 500);
}

fn read_f32(st: &safetensors::SafeTensors<'_>, name: &str) -> (Vec<f32>, Vec<usize>) {
    let t = st.tensor(name).unwrap();
    assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name}");
    let v = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (v, t.shape().to_vec())
}

fn read_i(st: &safetensors::SafeTensors<'_>, name: &str) -> Vec<i64> {
    let t = st.tensor(name).unwrap();
    match t.dtype() {
        safetensors::Dtype::I32 => t
            .data()
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64)
            .collect(),
        safetensors::Dtype::I64 => t
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        d => panic!("{name} is {d:?}"),
    }
}

#[test]
fn stats_sphere_and_viz_of_an_ingest_run() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let input = tmp.path().join("in");
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(
        input.join("a.txt"),
        "Entropy patching groups predictable bytes.",
    )
    .unwrap();
    std::fs::write(input.join("b.bin"), [0u8, 1, 2, 255, 254, 10, 9, 8]).unwrap();
    std::fs::write(input.join("c.txt"), "x".repeat(700)).unwrap();
    ok(blt(&cache)
        .args(["ingest", "--model", &tiny_model(), "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap());

    // Independent reading of the outputs with the safetensors crate.
    let mut entropies = Vec::new();
    let mut patches = 0usize;
    let mut dim = 0;
    let mut keys = Vec::new();
    for e in std::fs::read_dir(&out).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "safetensors") {
            let data = std::fs::read(&p).unwrap();
            let st = safetensors::SafeTensors::deserialize(&data).unwrap();
            entropies.extend(read_f32(&st, "entropies").0);
            patches += read_i(&st, "patch_lengths").len();
            dim = st.tensor("embeddings").unwrap().shape()[1];
            keys.push(p);
        }
    }
    assert_eq!(keys.len(), 3);
    let mut sorted: Vec<f64> = entropies.iter().map(|&v| v as f64).collect();
    sorted.sort_by(f64::total_cmp);
    let rank = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];

    let html = tmp.path().join("stats.html");
    let hist = tmp.path().join("entropy_histogram.json");
    let o = ok(blt(&cache)
        .arg("stats")
        .arg(&out)
        .args(["--json", "--batch-stats", "--bins", "10", "--html"])
        .arg(&html)
        .arg("--histogram-output")
        .arg(&hist)
        .output()
        .unwrap());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["documents"], 3);
    assert_eq!(v["patches"], patches as u64);
    let h = &v["entropy_histogram"];
    assert_eq!(h["statistics"]["total_tokens"], entropies.len() as u64);
    for (k, p) in [("p25", 0.25), ("p50", 0.5), ("p90", 0.9), ("p99", 0.99)] {
        assert_eq!(h["percentiles"][k].as_f64().unwrap(), rank(p), "{k}");
    }
    let counts: u64 = h["histogram"]["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert_eq!(counts, entropies.len() as u64);
    // Unrecognised bytes fall back to text (detection: "bytes are bytes").
    assert_eq!(v["bytes_per_modality"]["text"], 8 + 42 + 700);
    assert_eq!(v["batch_stats"][0]["documents"], 2); // < 512 B
    assert_eq!(v["batch_stats"][1]["documents"], 1); // < 2 KB
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&hist).unwrap()).unwrap();
    assert_eq!(&file, h);
    assert!(std::fs::read_to_string(&html)
        .unwrap()
        .contains("class=\"bar\""));

    // The sphere, read back with the safetensors crate.
    let o = ok(blt(&cache)
        .arg("sphere")
        .arg(&out)
        .args(["--shells", "6", "--npz"])
        .output()
        .unwrap());
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("{patches} patches")));
    let data = std::fs::read(out.join("corpus.sphere.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&data).unwrap();
    let (coords, shape) = read_f32(&st, "sphere_coords");
    assert_eq!(shape, vec![patches, dim]);
    let (radii, _) = read_f32(&st, "radii");
    let (prominence, _) = read_f32(&st, "original_prominence");
    let shells = read_i(&st, "shells");
    let caps = read_i(&st, "shell_capacities");
    assert_eq!(caps.len(), 6);
    assert_eq!(caps.iter().sum::<i64>(), patches as i64);
    for (k, &c) in caps.iter().enumerate() {
        assert_eq!(shells.iter().filter(|&&s| s == k as i64).count() as i64, c);
    }
    for i in 0..patches {
        let r: f64 = coords[i * dim..(i + 1) * dim]
            .iter()
            .map(|&x| (x as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!((r - radii[i] as f64).abs() < 1e-3 * radii[i] as f64);
        for j in 0..patches {
            if prominence[i] < prominence[j] {
                assert!(shells[i] <= shells[j]);
            }
        }
    }
    let npz = std::fs::read(out.join("corpus.sphere.npz")).unwrap();
    assert_eq!(&npz[..2], b"PK");

    // The sphere output is not mistaken for a document.
    let o = ok(blt(&cache)
        .arg("stats")
        .arg(&out)
        .arg("--json")
        .output()
        .unwrap());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["errors"]["unreadable"].as_array().unwrap().len(), 0);

    // A stored document drawn: one boundary mark per patch.
    let doc = &keys[0];
    let data = std::fs::read(doc).unwrap();
    let st = safetensors::SafeTensors::deserialize(&data).unwrap();
    let n = read_i(&st, "patch_lengths").len();
    let report = tmp.path().join("doc.html");
    ok(blt(&cache)
        .arg("viz")
        .arg(doc)
        .arg("--output")
        .arg(&report)
        .output()
        .unwrap());
    let page = std::fs::read_to_string(&report).unwrap();
    assert_eq!(page.matches("class=\"boundary\"").count(), n);
}
