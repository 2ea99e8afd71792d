//! The install story: `scripts/package` builds a Debian package (pinned cargo-deb) holding the
//! binary, man pages, shell completions, systemd units and an example config. The test unpacks
//! it into a scratch root with `dpkg-deb -x` and uses what it installed: the binary runs, the man
//! pages render with `man`, bash completes with the installed script, and `systemd-analyze
//! verify` accepts the units against that root (their ExecStart included).
//!
//! It packages the debug binary the test run already built (`--profile dev --no-build`), so the
//! suite does not compile pgtier a second time; `scripts/package` without flags packages the
//! stripped release build the same way.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{repo, require_tool};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_deb_installs_a_binary_man_pages_completions_and_units_that_work() {
    let dpkg_deb = require_tool("dpkg-deb", "scripts/setup --tests installs it (package dpkg)");
    let man = require_tool("man", "install man-db");
    let analyze = require_tool("systemd-analyze", "scripts/setup --tests installs it (package systemd)");
    let cargo_deb = repo().join(".state/cargo-deb/bin/cargo-deb");
    assert!(cargo_deb.exists(), "cargo-deb is not installed at {}: run scripts/setup --tests", cargo_deb.display());

    let built = run(Command::new(repo().join("scripts/package")).args(["--profile", "dev", "--no-build"]).current_dir(repo()));
    let deb = built.lines().last().map(str::trim).unwrap_or_default().to_string();
    assert!(deb.ends_with(".deb") && Path::new(&deb).exists(), "scripts/package did not say where the .deb is: {built}");

    let info = run(Command::new(&dpkg_deb).args(["-I", &deb]));
    assert!(info.contains("Package: pgtier") && info.contains(&format!("Version: {}", env!("CARGO_PKG_VERSION"))), "{info}");
    assert!(info.contains("Recommends: postgresql-client"), "the package says what pg_dump comes from: {info}");

    let root = tempfile::tempdir().unwrap();
    run(Command::new(&dpkg_deb).arg("-x").arg(&deb).arg(root.path()));
    let r = root.path();

    // The binary.
    let bin = r.join("usr/bin/pgtier");
    let version = run(Command::new(&bin).arg("--version"));
    assert_eq!(version.trim(), format!("pgtier {}", env!("CARGO_PKG_VERSION")));

    // The man pages, one per command, readable by man.
    for page in ["pgtier", "pgtier-restore", "pgtier-run", "pgtier-doctor", "pgtier-completions"] {
        let path = r.join(format!("usr/share/man/man1/{page}.1.gz"));
        let text = run(Command::new(&man).arg("-l").arg(&path).env("MANPAGER", "cat").env("MANWIDTH", "100"));
        assert!(text.contains("NAME") && text.contains("SYNOPSIS"), "{page}: {text}");
        // The sections a man page is expected to have, examples among them (not under EXTRA).
        for section in ["EXAMPLES", "EXIT STATUS", "ENVIRONMENT", "FILES"] {
            assert!(text.lines().any(|l| l == section), "{page} has no {section} section: {text}");
        }
        assert!(!text.contains("EXTRA"), "{page}: {text}");
    }
    let main_page = run(Command::new(&man).arg("-l").arg(r.join("usr/share/man/man1/pgtier.1.gz")).env("MANPAGER", "cat"));
    assert!(main_page.contains("restore") && main_page.contains("doctor"), "pgtier(1) lists the commands: {main_page}");

    // Completions: bash completes a subcommand and a flag with the installed script.
    let script = r.join("usr/share/bash-completion/completions/pgtier");
    let complete = |line: &str| {
        let words: Vec<&str> = line.split(' ').collect();
        let program = format!(
            "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; _pgtier pgtier '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display(),
            words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" "),
            words.len() - 1,
            words[words.len() - 1],
            words[words.len() - 2],
        );
        run(Command::new("bash").args(["-c", &program]))
    };
    let subcommands = complete("pgtier res");
    assert!(subcommands.lines().any(|l| l == "restore") && subcommands.lines().any(|l| l == "restore-globals"), "{subcommands}");
    let flags = complete("pgtier restore --tar");
    assert!(flags.lines().any(|l| l == "--target-db"), "{flags}");
    for (file, needle) in [
        ("usr/share/zsh/vendor-completions/_pgtier", "#compdef pgtier"),
        ("usr/share/fish/vendor_completions.d/pgtier.fish", "complete -c pgtier"),
    ] {
        let text = std::fs::read_to_string(r.join(file)).unwrap();
        assert!(text.contains(needle) && text.contains("restore"), "{file}");
    }

    // The example config and cron file, where the docs say.
    for file in
        ["usr/share/doc/pgtier/contrib/pgtier.yml.example", "usr/share/doc/pgtier/contrib/cron.d/pgtier", "usr/share/doc/pgtier/copyright"]
    {
        assert!(r.join(file).exists(), "{file} is missing from the package");
    }
    // Every relative link in the installed README and docs leads to an installed file.
    let doc = r.join("usr/share/doc/pgtier");
    let pages: Vec<PathBuf> = std::iter::once(doc.join("README.md"))
        .chain(std::fs::read_dir(doc.join("docs")).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "md")))
        .collect();
    assert!(pages.len() > 5, "{pages:?}");
    let mut broken = Vec::new();
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for link in relative_links(&text) {
            if !page.parent().unwrap().join(&link).exists() {
                broken.push(format!("{}: {link}", page.strip_prefix(r).unwrap().display()));
            }
        }
    }
    assert!(broken.is_empty(), "links that lead nowhere in the installed docs: {broken:?}");

    // The units, checked against the scratch root: syntax, calendar specs and that ExecStart
    // names the installed binary. --recursive-errors=no: the root has no systemd of its own.
    let units: Vec<String> = ["run", "verify", "audit"]
        .iter()
        .flat_map(|u| [format!("/lib/systemd/system/pgtier-{u}.service"), format!("/lib/systemd/system/pgtier-{u}.timer")])
        .collect();
    for u in &units {
        assert!(r.join(u.trim_start_matches('/')).exists(), "{u} is missing from the package");
    }
    let out = Command::new(&analyze)
        .arg("verify")
        .arg("--recursive-errors=no")
        .arg(format!("--root={}", r.display()))
        .args(&units)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // And it does find a broken unit, so the check above means something.
    let broken = r.join("lib/systemd/system/pgtier-run.service");
    let text = std::fs::read_to_string(&broken).unwrap();
    std::fs::write(&broken, text.replace("/usr/bin/pgtier", "/usr/bin/pgtier-missing")).unwrap();
    let out = Command::new(&analyze)
        .arg("verify")
        .arg("--recursive-errors=no")
        .arg(format!("--root={}", r.display()))
        .arg(&units[0])
        .output()
        .unwrap();
    assert!(!out.status.success(), "systemd-analyze accepted a unit whose binary is missing");
}

/// The targets of a markdown page's relative links (`[text](target)`), without their `#anchor`.
fn relative_links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = rest[..end].split('#').next().unwrap_or_default().trim();
        if !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:") {
            out.push(target.to_string());
        }
    }
    out
}
