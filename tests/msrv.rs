//! The minimum Rust version pgtier states is the one its locked dependencies need: the
//! `rust-version` of Cargo.toml is the highest `rust-version` in the locked graph, and the README
//! and docs/install.md say the same, so `cargo install --locked` works on what they promise.

mod support;

#[test]
fn the_stated_minimum_rust_version_is_what_the_locked_dependencies_need() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--locked", "--offline", "--format-version", "1"])
        .current_dir(support::repo())
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata needs every locked crate, for every platform (cargo fetch --locked fetches them; scripts/test does): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let parse = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap_or(0)).chain(std::iter::repeat(0)).take(3).collect() };
    let packages = m["packages"].as_array().unwrap();
    let ours = packages.iter().find(|p| p["name"] == "pgtier").unwrap()["rust_version"]
        .as_str()
        .expect("Cargo.toml states rust-version")
        .to_string();
    let (needed, by) = packages
        .iter()
        .filter(|p| p["name"] != "pgtier")
        .filter_map(|p| Some((p["rust_version"].as_str()?.to_string(), format!("{} {}", p["name"].as_str()?, p["version"].as_str()?))))
        .max_by_key(|(v, _)| parse(v))
        .unwrap();
    assert_eq!(parse(&ours), parse(&needed), "Cargo.toml says rust-version {ours}, but {by} needs {needed}");
    for doc in ["README.md", "docs/install.md"] {
        let text = std::fs::read_to_string(support::repo().join(doc)).unwrap();
        assert!(text.contains(&format!("Rust {ours}+")), "{doc} should say Rust {ours}+");
    }
}
