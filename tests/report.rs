//! `pgtier report`: a real catalog (nights replayed on PostgreSQL, a NAS destination, drills,
//! one of them failed) renders in a real browser (Debian's chromium, headless) with no network
//! request (every request would go through a loopback proxy that records it), a screenshot that
//! is not blank, and a DOM that holds every project/env and tier. A 100,000-backup catalog
//! renders in under 5 s into a page under 2 MB.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use chrono::{Duration, Utc};
use support::{Recorder, Scratch, cluster, db_name, require_tool};

/// Headless chromium with everything that could reach the network switched off and a proxy that
/// records whatever would still go out.
fn chromium(profile: &Path, proxy: &str) -> Command {
    let bin = require_tool("chromium", "scripts/setup installs it (Debian package chromium)");
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
        "--window-size=1300,1000",
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

fn screenshot(page: &Path, png: &Path, proxy: &str) -> u64 {
    let profile = tempfile::tempdir().unwrap();
    run(chromium(profile.path(), proxy).arg(format!("--screenshot={}", png.display())).arg(format!("file://{}", page.display())));
    std::fs::metadata(png).map(|m| m.len()).unwrap_or(0)
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
    let png = s.path().join("report.png");
    let shot = screenshot(&page, &png, &proxy.base);
    let blank_page = s.write("blank.html", "<!DOCTYPE html><html><body></body></html>");
    let blank = screenshot(&blank_page, &s.path().join("blank.png"), &proxy.base);
    assert!(shot > 3 * blank && shot > 20_000, "the screenshot looks blank: {shot} bytes (a blank page: {blank})");
    assert!(page_requests(&proxy).is_empty(), "the page made network requests: {:?}", page_requests(&proxy));
    if let Ok(out) = std::env::var("PGTIER_REPORT_SCREENSHOT") {
        std::fs::copy(&png, out).unwrap();
    }

    // --json: the same data, enveloped.
    let v = support::json(&s.ok(&["report", "shop", "production", "--json"]));
    assert_eq!(v["envs"][0]["project"], "shop");
    // The tiers keep 7 daily, 4 weekly and 6 monthly: the days that still have a backup.
    let days = v["envs"][0]["days"].as_array().unwrap();
    assert!(days.len() >= 10 && days.iter().all(|d| d["rows"].as_u64().is_some_and(|r| r > 0)), "{v}");
    // Neither --html nor --json: a usage error naming both.
    let err = s.fails(2, &["report"]);
    assert!(err.contains("--html FILE") && err.contains("--json"), "{err}");

    // 100,000 backups, five minutes apart (the last year): made from a real manifest.
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
        let t = start - Duration::minutes(5 * i);
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
    assert!(took.as_secs_f64() < 5.0, "100k backups took {took:?} to report");
    assert!(size < 2_000_000, "the 100k-backup page is {size} bytes");
    let dom =
        run(chromium(tempfile::tempdir().unwrap().path(), &proxy.base).arg("--dump-dom").arg(format!("file://{}", big_page.display())));
    assert!(dom.contains("data-project=\"big\"") && dom.contains("100000 backup(s) here"), "the big catalog renders");
    assert!(page_requests(&proxy).is_empty(), "{:?}", page_requests(&proxy));
    eprintln!("report of 100k backups: {:.2} s, {size} bytes", took.as_secs_f64());
}
