//! What one nightly `run` of one project/env reads (backup, globals, sync, prune, the scheduled
//! drill, the metrics textfile): the destination's prefix once, each manifest object once, a
//! HEAD per copy at most once, and the local folder twice: the backup's read and prune's (which
//! decides deletions from the folder itself); the other steps under the env lock find it
//! unchanged since (the lock's holder count and the folder's time) and go on from the listing.
//! Counted on the wire (a recording proxy in front of LocalStack) and from the folder reads
//! pgtier logs at `pgtier::reads=debug`.

mod support;

use std::collections::BTreeMap;

use support::localstack::localstack;
use support::proxy::Proxy;
use support::{Scratch, cluster, db_name};

#[test]
fn a_night_reads_each_thing_once() {
    let c = cluster();
    let db = db_name("reads");
    c.create_sample_db(&db, 20);
    let bucket = localstack().bucket();
    let proxy = Proxy::start(&localstack().endpoint);
    let s = Scratch::new(
        &format!("shop:\n{}", c.database_block(&[("production", &db)])),
        &format!(
            "remote:\n  url: s3://{bucket}/p\n  endpoint_url: {}\n  region: us-east-1\n  force_path_style: true\nmetrics:\n  textfile: metrics/pgtier.prom\n",
            proxy.endpoint
        ),
    );
    s.write(
        "policies/default.yml",
        "tiers:\n  daily: {keep: 3, locations: [local, remote]}\n  weekly: {keep: 4, locations: [remote], storage_class: STANDARD_IA}\n  monthly: {keep: 3, locations: [remote]}\nverify: daily\n",
    );
    for day in 6..=10 {
        s.ok(&["run", "--now", &format!("2025-01-{day:02}T02:00:00Z")]);
    }
    proxy.requests.lock().unwrap().clear();
    let out = s.cmd(&["run", "--now", "2025-01-11T02:00:00Z"]).env("PGTIER_LOG", "pgtier::reads=debug").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{}\n{stderr}", String::from_utf8_lossy(&out.stdout));

    let folder = s.env_dir("shop", "production");
    let local = stderr.lines().filter(|l| l.contains("listing") && l.ends_with(&folder.display().to_string())).count();
    let requests = proxy.requests.lock().unwrap().clone();
    let lists = requests.iter().filter(|r| r.method == "GET" && r.target.contains("list-type=2")).count();
    let mut gets: BTreeMap<String, usize> = BTreeMap::new();
    let mut heads: BTreeMap<String, usize> = BTreeMap::new();
    for r in &requests {
        let key = r.target.split('?').next().unwrap_or("").to_string();
        match r.method.as_str() {
            "GET" if key.ends_with(".json") => *gets.entry(key).or_default() += 1,
            "HEAD" => *heads.entry(key).or_default() += 1,
            _ => {}
        }
    }
    let summary = format!(
        "local listings {local}, remote listings {lists}, manifest GETs {gets:?}, HEADs {heads:?}, all requests:\n{}",
        requests.iter().map(|r| format!("{} {}", r.method, r.target)).collect::<Vec<_>>().join("\n")
    );
    // With --nocapture: the figures for the docs.
    println!(
        "local listings {local}, remote listings {lists}, manifest GETs {}, HEADs {}",
        gets.values().sum::<usize>(),
        heads.values().sum::<usize>()
    );
    assert!(local >= 1, "the folder reads are logged: {stderr}");
    assert_eq!(local, 2, "the local folder is read twice, by the backup and by prune (it was 9):\n{summary}");
    assert_eq!(lists, 1, "the destination's prefix is listed once:\n{summary}");
    assert!(!gets.is_empty(), "the remote-only backups' manifests are read:\n{summary}");
    assert!(gets.values().all(|n| *n == 1), "each manifest object is read once:\n{summary}");
    assert!(heads.values().all(|n| *n == 1), "no object is HEADed twice:\n{summary}");
    // The textfile was written from what the night read, the destination's copies included.
    let prom = std::fs::read_to_string(s.path().join("metrics/pgtier.prom")).expect("the metrics textfile is written");
    assert!(
        prom.lines().any(|l| l.starts_with("pgtier_destination_backups{") && l.contains("tier=\"weekly\"") && !l.ends_with(" 0")),
        "the textfile counts the weekly copies off-site:\n{prom}"
    );
}
