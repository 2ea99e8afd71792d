//! `pgtier config init`: the files it writes pass `config check` as written, whether the values
//! come from flags or from answers typed at a terminal, and it never replaces a file.

mod support;

use std::os::unix::fs::PermissionsExt;

use support::require_tool;

fn pgtier() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_pgtier"));
    c.env_remove("PGTIER_CONFIG");
    c
}

#[test]
fn config_init_writes_files_that_config_check_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("etc");
    // Without a terminal: flags.
    let out = pgtier()
        .args(["config", "init"])
        .arg(&dir)
        .args(["--host", "db1.internal", "--port", "5433", "--user", "backup", "--database", "shop", "--bucket", "my-backups"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let agent = std::fs::read_to_string(dir.join("pgtier.yml")).unwrap();
    let projects = std::fs::read_to_string(dir.join("projects.yml")).unwrap();
    assert!(agent.contains("url: s3://my-backups/pgtier") && agent.lines().filter(|l| l.contains('#')).count() > 5, "{agent}");
    assert!(
        projects.contains("host: db1.internal") && projects.contains("port: 5433") && projects.contains("production: shop"),
        "{projects}"
    );
    for f in ["pgtier.yml", "projects.yml"] {
        assert_eq!(std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777, 0o600, "{f}");
    }
    let check = pgtier().arg("--config").arg(dir.join("pgtier.yml")).args(["config", "check"]).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    // It never replaces a file.
    let again = pgtier().args(["config", "init"]).arg(&dir).stdin(std::process::Stdio::null()).output().unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(std::fs::read_to_string(dir.join("pgtier.yml")).unwrap(), agent);

    // At a terminal: the questions, answered.
    let script = require_tool("script", "install util-linux");
    let typed = tmp.path().join("typed");
    let answers = "127.0.0.1\n5432\napp_backup\norders\nshop\nmy-bucket\nus-east-1\n";
    let cmd = format!("{} config init {}", env!("CARGO_BIN_EXE_pgtier"), typed.display());
    let out = std::process::Command::new(script)
        .args(["-qec", &cmd, "/dev/null"])
        .env_remove("PGTIER_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(answers.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("PostgreSQL host") && said.contains("S3 bucket"), "it asked: {said}");
    let projects = std::fs::read_to_string(typed.join("projects.yml")).unwrap();
    assert!(projects.contains("user: app_backup") && projects.contains("production: orders") && projects.starts_with("# "), "{projects}");
    let check = pgtier().arg("--config").arg(typed.join("pgtier.yml")).args(["config", "check"]).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));

    // doctor without a config says how to get one.
    let out = pgtier().arg("--config").arg(tmp.path().join("none/pgtier.yml")).arg("doctor").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("pgtier config init"), "{}", String::from_utf8_lossy(&out.stdout));
}
