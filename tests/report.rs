//! `pgtier report`: a real catalog (nights replayed on PostgreSQL, a NAS destination, drills,
//! one of them failed) renders in a real browser (Debian's chromium, headless) with no network
//! request (every request would go through a loopback proxy that records it). At 800 and 1,400
//! px wide the page fits (nothing scrolls sideways) and its visible text, tooltips aside, holds
//! what a reader needs: each place as configured, each tier's copies, newest, oldest, storage
//! class and last drill, the failed drill, the dates. Printed, each env gets its own page. The
//! screenshots and the PDF stay in the test's output folder (target/tmp/report). A
//! 100,000-backup catalog makes a page under 2 MB, its timeline a year.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use chrono::{Duration, Utc};
use support::{Recorder, Scratch, cluster, db_name, require_tool};

/// Headless chromium with everything that could reach the network switched off and a proxy that
/// records whatever would still go out.
fn chromium(profile: &Path, proxy: &str) -> Command {
    let bin = require_tool("chromium", "scripts/setup --tests installs it (Debian package chromium)");
    let mut c = Command::new(bin);
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
        "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,Translate,MediaRouter,AutofillServerCommunication,CertificateTransparencyComponentUpdater",
        "--disable-client-side-phishing-detection",
        "--disable-default-apps",
        "--no-pings",
        "--disable-domain-reliability",
        "--disable-extensions",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg(format!("--proxy-server={proxy}"))
    .arg("--proxy-bypass-list=<-loopback>");
    c
}

/// Requests the page made. Chromium itself still calls its own services (its component updater
/// and account endpoints on google.com / googleapis.com) whatever the flags; those are the
/// browser's, not the page's: the page holds no URL at all (checked above). Anything else that
/// reached the proxy came from the page.
fn page_requests(proxy: &Recorder) -> Vec<String> {
    let browser_own = |host: &str| host.ends_with(".google.com") || host.ends_with(".googleapis.com") || host.ends_with(".gstatic.com");
    proxy
        .got
        .lock()
        .unwrap()
        .iter()
        .filter(|r| !browser_own(r.headers.iter().find(|(k, _)| k == "host").map(|(_, v)| v.split(':').next().unwrap_or(v)).unwrap_or("")))
        .map(|r| r.target.clone())
        .collect()
}

fn run(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(out.status.success(), "{c:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn screenshot(page: &Path, png: &Path, width: u32, proxy: &str) -> u64 {
    let profile = tempfile::tempdir().unwrap();
    run(chromium(profile.path(), proxy)
        .arg(format!("--window-size={width},2400"))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display())));
    std::fs::metadata(png).map(|m| m.len()).unwrap_or(0)
}

/// The page as laid out `width` px wide: how wide it is (more than `width`: it scrolls
/// sideways) and the text a person sees (`innerText`: no tooltip, no markup). Measured by a
/// page of the test's that frames the report (the report itself runs no script).
struct Layout {
    scroll_width: u64,
    text: String,
}

fn layout(page: &Path, width: u32, dir: &Path, proxy: &str) -> Layout {
    let frame = dir.join(format!("measure-{width}.html"));
    std::fs::write(
        &frame,
        format!(
            "<!DOCTYPE html><html><body style=\"margin:0\"><iframe id=\"f\" style=\"width:{width}px;height:8000px;border:0\" src=\"file://{}\" \
             onload=\"var d=this.contentDocument;document.getElementById('out').textContent=JSON.stringify({{w:d.documentElement.scrollWidth,text:d.body.innerText}})\"></iframe>\
             <pre id=\"out\"></pre></body></html>",
            page.display()
        ),
    )
    .unwrap();
    let profile = tempfile::tempdir().unwrap();
    let dom = run(chromium(profile.path(), proxy)
        .args(["--allow-file-access-from-files", "--virtual-time-budget=10000", "--dump-dom"])
        .arg(format!("file://{}", frame.display())));
    let json = dom.split("<pre id=\"out\">").nth(1).and_then(|r| r.split("</pre>").next()).unwrap_or_default();
    let json = json.replace("&lt;", "<").replace("&gt;", ">").replace("&nbsp;", "\u{a0}").replace("&amp;", "&");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("the measuring page gave no layout ({e}): {dom}"));
    Layout { scroll_width: v["w"].as_u64().unwrap(), text: v["text"].as_str().unwrap().to_string() }
}

/// The test's output folder: what a person looks at after the run (screenshots, the PDF).
fn output_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_report_renders_offline_in_a_browser_and_scales_to_100k_backups() {
    let c = cluster();
    let db = db_name("report");
    c.create_sample_db(&db, 20);
    let nas = tempfile::tempdir().unwrap();
    let s = Scratch::new(
        &format!(
            "shop:\n{}big:\n{}",
            c.database_block(&[("production", &db), ("staging", &db)]),
            c.database_block(&[("production", "big_is_never_dumped")])
        ),
        &format!("remotes:\n  - {{name: nas, url: \"file://{}\"}}\n", nas.path().display()),
    );
    s.write("policies/default.yml", "tiers:\n  daily: {keep: 7, locations: [local, remote]}\n  weekly: {keep: 4, locations: [local, remote]}\n  monthly: {keep: 6, locations: [remote]}\nverify: weekly\n");
    // 40 nights ending yesterday, for both envs of shop.
    let today = Utc::now().date_naive();
    for d in (1..=40).rev() {
        let night = format!("{}T02:00:00Z", today - Duration::days(d));
        s.ok(&["-q", "run", "shop", "--now", &night]);
    }
    // One failed drill: a corrupted backup, verified.
    let dir = s.env_dir("shop", "staging");
    let newest = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".dump.gz"))
        .max()
        .unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&newest, bytes).unwrap();
    assert_eq!(s.run(&["verify", "shop", "staging"]).status.code(), Some(1));

    let page = s.path().join("report.html");
    let printed = s.ok(&["report", "shop", "--html", page.to_str().unwrap()]);
    assert_eq!(printed.trim(), page.display().to_string());
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing to fetch, and the browser is told so.
    assert!(html.contains("Content-Security-Policy") && html.contains("default-src 'none'"));
    for fetches in ["<script", "src=", "href=", "url(", "@import", "http://", "https://"] {
        assert!(!html.contains(fetches), "the page refers to something outside it ({fetches})");
    }

    // In a real browser: no request leaves (the proxy records none), the DOM has every env and tier.
    let proxy = Recorder::start(false);
    let profile = tempfile::tempdir().unwrap();
    let dom = run(chromium(profile.path(), &proxy.base).arg("--dump-dom").arg(format!("file://{}", page.display())));
    for env in ["production", "staging"] {
        assert!(dom.contains(&format!("data-project=\"shop\" data-env=\"{env}\"")), "{env} is missing from the DOM");
    }
    for tier in ["daily", "weekly", "monthly"] {
        assert!(dom.contains(&format!("({tier}")) || dom.contains(&format!(", {tier}")), "tier {tier} is missing from the DOM");
    }
    assert!(dom.contains("data-row=\"local\"") && dom.contains("data-row=\"nas\""), "the timeline has a row per place");
    assert!(dom.contains("1 failed") && dom.contains("#cf222e"), "the failed drill shows");
    assert!(dom.contains("class=\"chart size\"") && dom.contains("class=\"chart rows\""), "size and rows over time");
    // At a laptop's and a desktop's width: it fits, and the text holds what a reader needs.
    let out = output_dir();
    let v = support::json(&s.ok(&["report", "shop", "--json"]));
    let blank_page = s.write("blank.html", "<!DOCTYPE html><html><body></body></html>");
    let blank = screenshot(&blank_page, &s.path().join("blank.png"), 800, &proxy.base);
    for width in [800u32, 1400] {
        let png = out.join(format!("report-{width}.png"));
        let shot = screenshot(&page, &png, width, &proxy.base);
        assert!(shot > 3 * blank && shot > 20_000, "the {width} px screenshot looks blank: {shot} bytes (a blank page: {blank})");
        let seen = layout(&page, width, s.path(), &proxy.base);
        assert!(seen.scroll_width <= u64::from(width), "at {width} px the page is {} px wide: it scrolls sideways", seen.scroll_width);
        reader_sees(&seen.text, &v, width);
        eprintln!("report at {width} px: {}", png.display());
    }
    assert!(page_requests(&proxy).is_empty(), "the page made network requests: {:?}", page_requests(&proxy));
    if let Ok(to) = std::env::var("PGTIER_REPORT_SCREENSHOT") {
        std::fs::copy(out.join("report-1400.png"), to).unwrap();
    }
    // Printed: each env starts a page, and the page is not blank.
    let pdf = out.join("report.pdf");
    let profile = tempfile::tempdir().unwrap();
    run(chromium(profile.path(), &proxy.base)
        .args(["--no-pdf-header-footer"])
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("file://{}", page.display())));
    let printed = std::fs::read(&pdf).unwrap();
    let pages = printed.windows(11).filter(|w| w == b"/Type /Page" || w == b"/Type/Page\n").count()
        - printed.windows(12).filter(|w| w == b"/Type /Pages" || w == b"/Type/Pages\n").count();
    assert!(pages >= 2 && printed.len() > 20_000, "the printed report has {pages} page(s), {} bytes", printed.len());
    eprintln!("report printed: {} ({pages} pages)", pdf.display());

    // The timeline fits the data: 40 nights make 41 days (today included), not a year.
    assert_eq!(v["since"], (today - Duration::days(40)).to_string(), "{}", v["since"]);
    assert_eq!(v["span_days"], 41);
    // The charts have dated axes: a tick label under them.
    let month = today.format("%b").to_string();
    let chart = html.split("class=\"chart size\"").nth(1).unwrap().split("</svg>").next().unwrap();
    assert!(chart.contains(&format!(">{month} ")), "the size chart has no dates under it: {chart}");
    assert!(!html.contains("<svg class=\"timeline\" width=") && !html.contains(" width=\"1195\""), "a chart has a fixed pixel width");

    // --json: the same data, enveloped.
    let v = support::json(&s.ok(&["report", "shop", "production", "--json"]));
    let nas_label = format!("nas: file://{}", nas.path().display());
    let places = v["envs"][0]["places"].as_array().unwrap();
    assert_eq!(places.iter().map(|p| p["label"].as_str().unwrap()).nth(1), Some(nas_label.as_str()), "{v}");
    assert_eq!(v["envs"][0]["project"], "shop");
    // The tiers keep 7 daily, 4 weekly and 6 monthly: the days that still have a backup.
    let days = v["envs"][0]["days"].as_array().unwrap();
    assert!(days.len() >= 10 && days.iter().all(|d| d["rows"].as_u64().is_some_and(|r| r > 0)), "{v}");
    // Neither --html nor --json: a usage error naming both.
    let err = s.fails(2, &["report"]);
    assert!(err.contains("--html FILE") && err.contains("--json"), "{err}");

    // 100,000 backups, six minutes apart (about fourteen months): made from a real manifest.
    let template: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::fs::read_dir(s.env_dir("shop", "production"))
                .unwrap()
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "json"))
                .unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let big = s.env_dir("big", "production");
    std::fs::create_dir_all(&big).unwrap();
    let empty_sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let start = Utc::now() - Duration::days(1);
    for i in 0..100_000i64 {
        let t = start - Duration::minutes(6 * i);
        let stem = format!("db_{}", t.format("%Y%m%d_%H%M%S"));
        let file = format!("{stem}.dump.gz");
        let mut m = template.clone();
        m["project"] = "big".into();
        m["env"] = "production".into();
        m["created_at"] = t.format("%Y-%m-%dT%H:%M:%SZ").to_string().into();
        m["file"] = file.clone().into();
        m["size"] = 0.into();
        m["sha256"] = empty_sha.into();
        m["verifications"] = serde_json::json!([]);
        std::fs::write(big.join(&file), b"").unwrap();
        std::fs::write(big.join(format!("{stem}.json")), m.to_string()).unwrap();
    }
    let big_page: PathBuf = s.path().join("big.html");
    let t = Instant::now();
    s.ok(&["report", "big", "production", "--html", big_page.to_str().unwrap()]);
    let took = t.elapsed();
    let size = std::fs::metadata(&big_page).unwrap().len();
    // Not a timing (bench/run.sh keeps those): a bound a slow machine meets and a quadratic
    // report (100,000 manifests read each for each) would not.
    assert!(took.as_secs_f64() < 30.0, "100k backups took {took:?} to report");
    assert!(size < 2_000_000, "the 100k-backup page is {size} bytes");
    let dom =
        run(chromium(tempfile::tempdir().unwrap().path(), &proxy.base).arg("--dump-dom").arg(format!("file://{}", big_page.display())));
    assert!(dom.contains("data-project=\"big\"") && dom.contains("100000 backup(s) here"), "the big catalog renders");
    assert!(dom.contains("(365 days)"), "a year of backups gets the year view");
    assert!(page_requests(&proxy).is_empty(), "{:?}", page_requests(&proxy));
    eprintln!("report of 100k backups: {:.2} s, {size} bytes", took.as_secs_f64());
}

/// What a person reading the page (printed, mailed, no hover) must find in its text: each place
/// as configured, and for each tier there its copies, newest and oldest dates, storage classes
/// and last drill; the failed drill by name; the timeline's dates.
fn reader_sees(text: &str, report: &serde_json::Value, width: u32) {
    let has = |what: &str| assert!(text.contains(what), "at {width} px the page's text lacks {what:?}:\n{text}");
    has(&format!("the timelines show {}", report["since"].as_str().unwrap()));
    for env in report["envs"].as_array().unwrap() {
        has(&format!("{}/{}", env["project"].as_str().unwrap(), env["env"].as_str().unwrap()));
        for place in env["places"].as_array().unwrap() {
            has(place["label"].as_str().unwrap());
            for h in place["tiers"].as_array().unwrap() {
                has(h["tier"].as_str().unwrap());
                for class in h["storage_classes"].as_array().unwrap() {
                    has(class.as_str().unwrap());
                }
                for at in ["newest_at", "oldest_at"] {
                    if let Some(t) = h[at].as_str() {
                        has(&t.replace('T', " ")[..16]);
                    }
                }
                if let Some(d) = h["last_drill"].as_object() {
                    has(&format!("{} {}", if d["ok"] == true { "passed" } else { "failed" }, &d["at"].as_str().unwrap()[..10]));
                }
            }
        }
        for d in env["failed_drills"].as_array().unwrap() {
            has(d["backup"].as_str().unwrap());
        }
    }
}

/// A bucket as a folder: `envs` project/envs with `nights` nightly backups each (a daily copy
/// and its manifest), the last of them `newest_days_ago` days before 2025-06-01T03:00Z.
fn fake_bucket(root: &Path, envs: &[(&str, &str, i64)], nights: i64) {
    let end = chrono::DateTime::parse_from_rfc3339("2025-06-01T02:00:00Z").unwrap().with_timezone(&Utc);
    for (project, env, newest_days_ago) in envs {
        let dir = root.join(project).join(env).join("daily");
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..nights {
            let t = end - Duration::days(newest_days_ago + nights - 1 - i);
            let stem = t.format("db_%Y%m%d_%H%M%S").to_string();
            let body = stem.as_bytes();
            let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body));
            std::fs::write(dir.join(format!("{stem}.dump.gz")), body).unwrap();
            let m = serde_json::json!({"format_version": 1, "kind": "database", "project": project, "env": env, "database": env,
                "created_at": t.format("%Y-%m-%dT%H:%M:%SZ").to_string(), "file": format!("{stem}.dump.gz"), "format": "custom",
                "compression": "gzip", "size": body.len(), "sha256": sha, "tiers": ["daily"]});
            std::fs::write(dir.join(format!("{stem}.json")), m.to_string()).unwrap();
        }
    }
}

#[test]
fn the_fleet_page_renders_offline_in_a_browser_with_every_env() {
    let bucket = tempfile::tempdir().unwrap();
    fake_bucket(bucket.path(), &[("shop", "production", 0), ("shop", "staging", 5), ("blog", "<odd>&x", 0)], 10);
    let page = tempfile::tempdir().unwrap().keep().join("fleet.html");
    let out = Command::new(env!("CARGO_BIN_EXE_pgtier"))
        .args(["fleet", "report", "--remote", &format!("file://{}", bucket.path().display()), "--now", "2025-06-01T03:00:00Z"])
        .arg("--html")
        .arg(&page)
        .env_remove("PGTIER_CONFIG")
        .current_dir(bucket.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("Content-Security-Policy") && html.contains("default-src 'none'"));
    for fetches in ["<script", "src=", "href=", "url(", "@import", "http://", "https://", "<odd>"] {
        assert!(!html.contains(fetches), "the page refers to something outside it, or did not escape a name ({fetches})");
    }
    let proxy = Recorder::start(false);
    let profile = tempfile::tempdir().unwrap();
    let dom = run(chromium(profile.path(), &proxy.base).arg("--dump-dom").arg(format!("file://{}", page.display())));
    for env in ["shop/production", "shop/staging"] {
        assert!(dom.contains(&format!("data-env=\"{env}\"")), "{env} is missing from the DOM");
    }
    assert!(dom.contains("<td>blog/&lt;odd&gt;&amp;x</td>"), "an odd env name shows as text, not markup");
    assert!(dom.contains("stale: the newest backup is 5 d old"), "the stale env's finding shows");
    assert!(page_requests(&proxy).is_empty(), "the page made requests: {:?}", page_requests(&proxy));
}
