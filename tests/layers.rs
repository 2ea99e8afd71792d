//! The source's shape, read from `src/`: decisions are taken on kinds (error variants, reason
//! enums), never on message text; exit codes come from the one table in `error.rs`; and the
//! parts import only the vocabulary and the leaves, never the configuration or what sits above
//! them. A change that breaks one of these fails here, naming the file and line.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// Every library source file with its lines before any `#[cfg(test)]` (tests may read words).
fn sources() -> Vec<(String, Vec<(usize, String)>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    assert!(files.len() > 50, "expected the whole source tree under {}, found {} files", root.display(), files.len());
    files
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "tests.rs"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let lines = text
                .lines()
                .take_while(|l| !l.trim_start().starts_with("#[cfg(test)]"))
                .enumerate()
                .map(|(i, l)| (i + 1, l.to_string()))
                .filter(|(_, l)| !l.trim_start().starts_with("//"))
                .collect();
            (p.strip_prefix(&root).unwrap().display().to_string(), lines)
        })
        .collect()
}

/// Where reading words is the point: classifying a foreign system's answer into a kind, once,
/// at the boundary (the S3 SDK's error text; a PostgreSQL tool's stderr).
const BOUNDARIES: &[&str] = &["store/s3/mod.rs"];

#[test]
fn no_decision_reads_message_text() {
    // Our own messages, re-read to decide something.
    let patterns = [
        ".to_string().contains(",
        ".to_string().starts_with(",
        ".to_string().ends_with(",
        ".to_string() ==",
        "reason.starts_with(",
        "reason.contains(",
        "severity == \"",
        "starts_with(\"COULD NOT",
        "starts_with(\"locked",
        "contains(crate::signals::CANCELLED",
        "== crate::signals::CANCELLED",
    ];
    let mut found = Vec::new();
    for (file, lines) in sources() {
        if BOUNDARIES.contains(&file.as_str()) {
            continue;
        }
        for (n, line) in &lines {
            for p in patterns {
                if line.contains(p) {
                    found.push(format!("src/{file}:{n}: {} (decide on a kind, not on words)", line.trim()));
                }
            }
        }
    }
    assert!(found.is_empty(), "decisions read message text:\n{}", found.join("\n"));
}

#[test]
fn exit_codes_come_from_the_table() {
    let mut found = Vec::new();
    for (file, lines) in sources() {
        if !file.starts_with("cli/") {
            continue;
        }
        for (n, line) in &lines {
            let bare = ["Ok(0)", "Ok(1)", "Ok(2)", "Ok(11)", "Ok(75)", "{ 1 } else { 0 }", "{ 0 } else { 1 }"];
            if bare.iter().any(|b| line.contains(b)) {
                found.push(format!("src/{file}:{n}: {} (use the constants in error.rs)", line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "bare exit codes:\n{}", found.join("\n"));
}

/// The top-level modules a file imports through `crate::`.
fn imports(lines: &[(usize, String)]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in lines {
        let mut rest = line.as_str();
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + 7..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                out.push((*n, name));
            }
        }
    }
    out
}

#[test]
fn parts_import_only_the_vocabulary_the_leaves_and_each_other() {
    let leaves = ["vocab", "names", "error", "fsutil", "scratch", "signals", "ui", "fault", "runtime", "failed", "usage"];
    // Parts, and what each may use besides the leaves. The store takes its own options, so none
    // of them reads the configuration but config itself.
    let parts: &[(&str, &[&str])] = &[
        ("vocab", &[]),
        ("pipeline", &[]),
        ("crypto", &["pipeline"]),
        ("postgres", &[]),
        ("store", &["pipeline"]),
        ("config", &["crypto"]),
    ];
    let mut found = Vec::new();
    for (file, lines) in sources() {
        let top = file.split(['/', '.']).next().unwrap().to_string();
        let Some((_, allowed)) = parts.iter().find(|(p, _)| *p == top) else { continue };
        for (n, used) in imports(&lines) {
            if used != top && !leaves.contains(&used.as_str()) && !allowed.contains(&used.as_str()) {
                found.push(format!("src/{file}:{n}: part {top} imports crate::{used}"));
            }
        }
    }
    assert!(found.is_empty(), "a part reaches outside its layer:\n{}", found.join("\n"));
}

/// The layers in `lib.rs`'s order, top first: a file may import its own layer and those below.
const LAYERS: &[&[&str]] = &[
    &["cli"],
    &["ops"],
    &["tell"],
    &["context"],
    &["plan"],
    &["remote"],
    &["records"],
    &["config", "postgres", "pipeline", "crypto", "store", "vocab"],
    &[
        "names", "error", "fsutil", "scratch", "signals", "ui", "run_lock", "fault", "runtime", "failed", "usage", "outln", "Error",
        "Result",
    ],
];

fn layer_of(top: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&top))
}

#[test]
fn every_import_points_down_the_layers() {
    let mut found = Vec::new();
    let mut unknown = Vec::new();
    for (file, lines) in sources() {
        let top = file.split(['/', '.']).next().unwrap().to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let Some(here) = layer_of(&top) else {
            unknown.push(format!("src/{file}: top-level module {top} is in no layer of LAYERS"));
            continue;
        };
        for (n, used) in imports(&lines) {
            match layer_of(&used) {
                Some(there) if there < here => found.push(format!("src/{file}:{n}: {top} imports crate::{used}, a layer above it")),
                Some(_) => {}
                None => unknown.push(format!("src/{file}:{n}: crate::{used} is in no layer of LAYERS")),
            }
        }
    }
    assert!(unknown.is_empty(), "add the module to its layer (and to lib.rs's comment):\n{}", unknown.join("\n"));
    assert!(found.is_empty(), "imports that point up the layers:\n{}", found.join("\n"));
}

#[test]
fn operations_call_operations_only_where_one_is_the_other() {
    // The night strings the operations together; a drill and the roles are restores; the report
    // shows the audit. Any other call between operations is a plan or a record in the wrong place.
    let allowed = [("run", "*"), ("verify", "restore"), ("report", "audit")];
    let mut found = Vec::new();
    for (file, lines) in sources() {
        let Some(rest) = file.strip_prefix("ops/") else { continue };
        let op = rest.split(['/', '.']).next().unwrap();
        for (n, line) in &lines {
            let mut rest = line.as_str();
            while let Some(i) = rest.find("crate::ops::") {
                rest = &rest[i + 12..];
                let used: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if used != op && !allowed.iter().any(|(a, b)| *a == op && (*b == "*" || *b == used)) {
                    found.push(format!("src/{file}:{n}: {op} calls the operation {used}"));
                }
            }
        }
    }
    assert!(found.is_empty(), "operations calling operations:\n{}", found.join("\n"));
}
