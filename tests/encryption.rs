//! Encryption interop with the real tools: `age` and `gpg` decrypt what pgtier wrote, pgtier
//! restores what they wrote, wrong keys are refused without touching the database.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{Scratch, cluster, db_name, require_tool, sh};

fn tools() {
    require_tool("age", "install the Debian package age (scripts/setup does)");
    require_tool("age-keygen", "install the Debian package age (scripts/setup does)");
    require_tool("gpg", "install the Debian package gnupg (scripts/setup --tests does)");
    require_tool("script", "install util-linux (for age -p, which reads a terminal)");
}

/// age-keygen into `dir/name`; returns (identity file, public key).
fn age_key(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let out = Command::new("age-keygen").arg("-o").arg(&path).output().unwrap();
    assert!(out.status.success(), "age-keygen: {}", String::from_utf8_lossy(&out.stderr));
    let public = String::from_utf8_lossy(&out.stderr).trim().trim_start_matches("Public key: ").to_string();
    assert!(public.starts_with("age1"), "{public}");
    (path, public)
}

/// A private GNUPGHOME with one key (rsa3072, or "curve25519": ed25519 + a cv25519 subkey);
/// returns (home, armored public key file, armored secret key file, fingerprint).
fn gpg_key(dir: &Path, algo: &str) -> (PathBuf, PathBuf, PathBuf, String) {
    let home = dir.join(format!("gnupg-{algo}"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    let g = |args: &str| sh(&format!("GNUPGHOME='{}' gpg --batch --yes --pinentry-mode loopback --passphrase '' {args}", home.display()));
    let (primary, sub) = if algo == "rsa3072" { ("rsa3072", "rsa3072") } else { ("ed25519", "cv25519") };
    g(&format!("--quick-gen-key 'pgtier test <ops@example.com>' {primary} sign never"));
    let fpr = g("--with-colons --list-keys").lines().find(|l| l.starts_with("fpr:")).unwrap().split(':').nth(9).unwrap().to_string();
    g(&format!("--quick-add-key {fpr} {sub} encr never"));
    let public = dir.join(format!("{algo}.pub.asc"));
    let secret = dir.join(format!("{algo}.sec.asc"));
    g(&format!("--armor --export {fpr} > '{}'", public.display()));
    g(&format!("--armor --export-secret-keys {fpr} > '{}'", secret.display()));
    (home, public, secret, fpr)
}

fn scratch(db: &str, encryption: &str) -> Scratch {
    let c = cluster();
    Scratch::new(&format!("app:\n{}", c.database_block(&[("production", db)])), encryption)
}

fn restore_with_tools(decrypt: &str, file: &str, db: &str) {
    let c = cluster();
    c.psql("postgres", &format!("CREATE DATABASE {db}"));
    sh(&format!(
        "{decrypt} '{file}' | gunzip | '{}' --exit-on-error -h 127.0.0.1 -p {} -U postgres -d {db}",
        c.bindir.join("pg_restore").display(),
        c.port
    ));
}

fn manifest(path: &str) -> serde_json::Value {
    let p = Path::new(path.trim());
    let stem = p.file_name().unwrap().to_str().unwrap().split('.').next().unwrap().to_string();
    serde_json::from_str(&std::fs::read_to_string(p.with_file_name(format!("{stem}.json"))).unwrap()).unwrap()
}

fn write_secret(s: &Scratch, name: &str, text: &str) -> PathBuf {
    let p = s.write(name, text);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

#[test]
fn age_backups_open_with_the_age_tool_and_restore_with_plain_tools() {
    tools();
    let c = cluster();
    let db = db_name("age");
    c.create_sample_db(&db, 200);
    let keys = tempfile::tempdir().unwrap();
    let (identity, public) = age_key(keys.path(), "key.txt");
    let s = scratch(&db, &format!("encryption:\n  type: age\n  recipients: [{public}]\n  identity_file: {}\n", identity.display()));
    let path = s.ok(&["backup", "app", "production"]);
    let path = path.trim();
    assert!(path.ends_with(".dump.gz.age"), "{path}");
    let m = manifest(path);
    assert_eq!(m["encryption"], serde_json::json!({"scheme": "age", "recipients": [public]}));
    assert_eq!(m["sha256"], sh(&format!("sha256sum '{path}' | cut -d' ' -f1")).trim(), "the checksum is of the stored, encrypted bytes");
    assert!(!std::fs::read_to_string(path.replace(".dump.gz.age", ".json")).unwrap().contains("AGE-SECRET-KEY"));

    let by_tools = db_name("age_tools");
    restore_with_tools(&format!("age -d -i '{}'", identity.display()), path, &by_tools);
    assert_eq!(c.fingerprint(&by_tools), c.fingerprint(&db));

    let by_pgtier = db_name("age_pgtier");
    s.ok(&["restore", "app", "production", "--target-db", &by_pgtier]);
    assert_eq!(c.fingerprint(&by_pgtier), c.fingerprint(&db));
    assert!(s.ok(&["audit", "app", "production"]).contains("audit: ok"));
}

#[test]
fn gpg_symmetric_backups_open_with_gpg() {
    tools();
    let c = cluster();
    let db = db_name("gpgsym");
    c.create_sample_db(&db, 150);
    let s = scratch(&db, "encryption:\n  type: gpg\n  passphrase_file: pass.txt\n");
    write_secret(&s, "pass.txt", "correct horse: battery staple\n");
    let path = s.ok(&["backup", "app", "production"]);
    let path = path.trim();
    assert!(path.ends_with(".dump.gz.gpg"), "{path}");
    assert_eq!(manifest(path)["encryption"], serde_json::json!({"scheme": "gpg", "recipients": ["passphrase"]}));
    let home = tempfile::tempdir().unwrap();
    let by_tools = db_name("gpgsym_tools");
    restore_with_tools(
        &format!(
            "GNUPGHOME='{}' gpg --batch --quiet --pinentry-mode loopback --passphrase-file '{}' -d",
            home.path().display(),
            s.path().join("pass.txt").display()
        ),
        path,
        &by_tools,
    );
    assert_eq!(c.fingerprint(&by_tools), c.fingerprint(&db));
    let by_pgtier = db_name("gpgsym_pgtier");
    s.ok(&["restore", "app", "production", "--target-db", &by_pgtier]);
    assert_eq!(c.fingerprint(&by_pgtier), c.fingerprint(&db));
}

#[test]
fn gpg_public_key_backups_open_with_gpg_for_rsa_and_curve25519_keys() {
    tools();
    let c = cluster();
    let keys = tempfile::tempdir().unwrap();
    for algo in ["rsa3072", "curve25519"] {
        let db = db_name("gpgpub");
        c.create_sample_db(&db, 80);
        let (home, public, secret, fpr) = gpg_key(keys.path(), algo);
        let s = scratch(
            &db,
            &format!("encryption:\n  type: gpg\n  recipient_keys: [{}]\n  secret_key_file: {}\n", public.display(), secret.display()),
        );
        let path = s.ok(&["backup", "app", "production"]);
        let path = path.trim();
        assert_eq!(manifest(path)["encryption"]["recipients"], serde_json::json!([fpr]), "{algo}");
        let by_tools = db_name("gpgpub_tools");
        restore_with_tools(&format!("GNUPGHOME='{}' gpg --batch --quiet -d", home.display()), path, &by_tools);
        assert_eq!(c.fingerprint(&by_tools), c.fingerprint(&db), "{algo}");
        let by_pgtier = db_name("gpgpub_pgtier");
        s.ok(&["restore", "app", "production", "--target-db", &by_pgtier]);
        assert_eq!(c.fingerprint(&by_pgtier), c.fingerprint(&db), "{algo}");
    }
}

#[test]
fn pgtier_restores_what_the_real_tools_encrypted() {
    tools();
    let c = cluster();
    let db = db_name("handenc");
    c.create_sample_db(&db, 60);
    let expected = c.fingerprint(&db);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let dump = w.join("hand.dump.gz");
    sh(&format!(
        "'{}' -Fc -Z0 -h 127.0.0.1 -p {} -U postgres -d {db} | gzip > '{}'",
        c.bindir.join("pg_dump").display(),
        c.port,
        dump.display()
    ));
    let (identity, public) = age_key(w, "key.txt");
    let (gpg_home, _gpg_pub, gpg_sec, fpr) = gpg_key(w, "rsa3072");
    std::fs::write(w.join("pass.txt"), "hand made pass\n").unwrap();
    let d = dump.display();
    // age -r, age -r -a (armored), age -p (reads its passphrase from a terminal)
    sh(&format!("age -r {public} -o '{d}.age' '{d}'"));
    sh(&format!("age -a -r {public} -o '{d}.armored.age' '{d}'"));
    sh(&format!("printf 'hand made pass\\nhand made pass\\n' | script -qec \"age -p -o '{d}.pass.age' '{d}'\" /dev/null >/dev/null"));
    // gpg --symmetric (the guide's command), gpg -e -r, gpg --armor
    let g = format!("GNUPGHOME='{}' gpg --batch --yes --pinentry-mode loopback", gpg_home.display());
    sh(&format!("{g} --passphrase-file '{}' --symmetric --cipher-algo AES256 -o '{d}.gpg' '{d}'", w.join("pass.txt").display()));
    sh(&format!("{g} --trust-model always -e -r {fpr} -o '{d}.pub.gpg' '{d}'"));
    sh(&format!("{g} --trust-model always --armor -e -r {fpr} -o '{d}.pub.asc' '{d}'"));

    let age_cfg = format!("encryption:\n  type: age\n  recipients: [{public}]\n  identity_file: {}\n", identity.display());
    let s = scratch(&db, &age_cfg);
    for f in [format!("{d}.age"), format!("{d}.armored.age")] {
        let t = db_name("handenc_age");
        s.ok(&["restore", "app", "production", &f, "--target-db", &t]);
        assert_eq!(c.fingerprint(&t), expected, "{f}");
    }
    let s = scratch(&db, "encryption:\n  type: age\n  passphrase_file: pass.txt\n");
    write_secret(&s, "pass.txt", "hand made pass\n");
    let t = db_name("handenc_agep");
    s.ok(&["restore", "app", "production", &format!("{d}.pass.age"), "--target-db", &t]);
    assert_eq!(c.fingerprint(&t), expected);

    let s = scratch(&db, "encryption:\n  type: gpg\n  passphrase_file: pass.txt\n");
    write_secret(&s, "pass.txt", "hand made pass\n");
    let t = db_name("handenc_gpg");
    s.ok(&["restore", "app", "production", &format!("{d}.gpg"), "--target-db", &t]);
    assert_eq!(c.fingerprint(&t), expected);
    // stdin, as the guide's `gpg --decrypt backup.gpg | restore_database ...` but encrypted.
    let t = db_name("handenc_gpg_stdin");
    let out = s
        .cmd(&["restore", "app", "production", "-", "--target-db", &t])
        .stdin(std::fs::File::open(format!("{d}.gpg")).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(c.fingerprint(&t), expected);

    // A public-key file opened with --identity on a host whose config has no secret key.
    let s = scratch(&db, "");
    for f in [format!("{d}.pub.gpg"), format!("{d}.pub.asc")] {
        let t = db_name("handenc_pub");
        s.ok(&["restore", "app", "production", &f, "--target-db", &t, "--identity", gpg_sec.to_str().unwrap()]);
        assert_eq!(c.fingerprint(&t), expected, "{f}");
    }
    let t = db_name("handenc_ageid");
    s.ok(&["restore", "app", "production", &format!("{d}.age"), "--target-db", &t, "--identity", identity.to_str().unwrap()]);
    assert_eq!(c.fingerprint(&t), expected);
}

#[test]
fn wrong_keys_are_refused_and_the_database_is_untouched() {
    tools();
    let c = cluster();
    let db = db_name("wrongkey");
    c.create_sample_db(&db, 40);
    let keys = tempfile::tempdir().unwrap();
    let (_, public) = age_key(keys.path(), "right.txt");
    let (wrong, _) = age_key(keys.path(), "wrong.txt");
    let s = scratch(&db, &format!("encryption:\n  type: age\n  recipients: [{public}]\n  identity_file: {}\n", wrong.display()));
    s.ok(&["backup", "app", "production"]);
    let before = c.fingerprint(&db);
    c.psql(&db, "INSERT INTO users (name) VALUES ('changed after backup')");
    let changed = c.fingerprint(&db);
    let err = s.fails(1, &["restore", "app", "production", "--force"]);
    assert!(err.contains("encrypted to someone else") && err.contains("wrong.txt"), "{err}");
    assert_eq!(c.fingerprint(&db), changed);
    assert_ne!(changed, before);
    assert!(c.temp_dbs_for(&db).is_empty());
    // The audit proves the key on an ordinary night.
    let out = s.run(&["audit", "app", "production"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("[decryption-key]"), "{}", String::from_utf8_lossy(&out.stdout));

    // A wrong gpg passphrase.
    let s = scratch(&db, "encryption:\n  type: gpg\n  passphrase_file: pass.txt\n");
    write_secret(&s, "pass.txt", "the right one\n");
    s.ok(&["backup", "app", "production"]);
    write_secret(&s, "pass.txt", "the wrong one\n");
    let err = s.fails(1, &["restore", "app", "production", "--force"]);
    assert!(err.contains("wrong passphrase or key"), "{err}");
    assert!(!err.contains("the wrong one") && !err.contains("the right one"), "secrets must not be printed: {err}");
    assert_eq!(c.fingerprint(&db), changed);

    // No key at all on this host.
    let s2 = scratch(&db, "");
    let file = s.ok(&["list", "app", "production", "--latest"]);
    let err = s2.fails(1, &["restore", "app", "production", file.trim(), "--force"]);
    assert!(err.contains("OpenPGP-encrypted") && err.contains("no key is configured"), "{err}");
}

#[test]
fn ssh_recipients_and_rotated_identities() {
    tools();
    require_tool("ssh-keygen", "install openssh-client");
    let c = cluster();
    let db = db_name("sshkey");
    c.create_sample_db(&db, 30);
    let keys = tempfile::tempdir().unwrap();
    let k = keys.path().join("id_ed25519");
    sh(&format!("ssh-keygen -q -t ed25519 -N '' -C ops@host -f '{}'", k.display()));
    let ssh_pub = std::fs::read_to_string(k.with_extension("pub")).unwrap().trim().to_string();
    let s = scratch(&db, &format!("encryption:\n  type: age\n  recipients: [\"{ssh_pub}\"]\n  identity_file: {}\n", k.display()));
    let path = s.ok(&["backup", "app", "production"]);
    let recorded = manifest(&path)["encryption"]["recipients"][0].as_str().unwrap().to_string();
    assert!(recorded.starts_with("ssh-ed25519 ") && !recorded.contains("ops@host"), "{recorded}");
    let t = db_name("ssh_tools");
    restore_with_tools(&format!("age -d -i '{}'", k.display()), path.trim(), &t);
    assert_eq!(c.fingerprint(&t), c.fingerprint(&db));

    // Rotation: a backup to the old key and one to the new key, one identity file with both.
    let (old_id, old_pub) = age_key(keys.path(), "old.txt");
    let (new_id, new_pub) = age_key(keys.path(), "new.txt");
    let both = keys.path().join("both.txt");
    std::fs::write(&both, format!("{}{}", std::fs::read_to_string(&old_id).unwrap(), std::fs::read_to_string(&new_id).unwrap())).unwrap();
    let s = scratch(&db, &format!("encryption:\n  type: age\n  recipients: [{old_pub}]\n"));
    let old_backup = s.ok(&["backup", "app", "production", "--now", "2025-01-01T02:00:00Z"]);
    s.write("pgtier.yml", &format!("projects: projects.yml\npolicies: policies\nbackup_root: backups\nencryption:\n  type: age\n  recipients: [{new_pub}]\n  identity_file: {}\n", both.display()));
    s.ok(&["backup", "app", "production", "--now", "2025-01-02T02:00:00Z"]);
    for name in ["db_20250101_020000", "db_20250102_020000"] {
        let t = db_name("rotated");
        s.ok(&["restore", "app", "production", name, "--target-db", &t]);
        assert_eq!(c.fingerprint(&t), c.fingerprint(&db), "{name}");
    }
    assert!(old_backup.contains("20250101"));
}

#[test]
fn bad_encryption_config_names_the_file_and_key() {
    let keys = tempfile::tempdir().unwrap();
    let cases = [
        ("encryption:\n  type: age\n  recipients: [age1notakey]\n", "encryption.recipients[0]"),
        ("encryption:\n  type: age\n  identity_file: /nonexistent/key.txt\n  recipients: []\n", "encryption.identity_file"),
        ("encryption:\n  type: age\n", "encryption.recipients"),
        ("encryption:\n  type: rot13\n", "encryption.type"),
        ("encryption:\n  type: gpg\n  passphrase_file: /nonexistent/pass\n", "encryption.passphrase_file"),
        ("encryption:\n  type: gpg\n  recipient_keys: [projects.yml]\n", "encryption.recipient_keys[0]"),
        ("encryption:\n  type: gpg\n  recipients: [x]\n", "encryption.recipients"),
    ];
    for (yaml, key) in cases {
        let s = Scratch::new("", yaml);
        let err = s.fails(2, &["config", "check"]);
        assert!(err.contains("pgtier.yml") && err.contains(key), "{yaml:?}: expected {key} in {err}");
    }
    // encryption: required without encryption is a load error; a loose passphrase file warns.
    let s = Scratch::new("app:\n  database: {type: postgresql, user: u, databases: {prod: d}, policy: secure}\n", "");
    s.write("policies/secure.yml", "encryption: required\ntiers:\n  daily: {keep: 3}\n");
    let err = s.fails(2, &["config", "check"]);
    assert!(err.contains("app.database.policy") && err.contains("requires encryption"), "{err}");
    s.write("pass.txt", "loose\n");
    std::fs::set_permissions(s.path().join("pass.txt"), std::fs::Permissions::from_mode(0o644)).unwrap();
    s.write(
        "pgtier.yml",
        "projects: projects.yml\npolicies: policies\nbackup_root: backups\nencryption: {type: gpg, passphrase_file: pass.txt}\n",
    );
    let out = s.run(&["config", "check"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("readable by group or others"), "{}", String::from_utf8_lossy(&out.stderr));
    drop(keys);
}

#[test]
fn secrets_never_reach_argv_logs_or_manifests() {
    tools();
    let c = cluster();
    let db = db_name("secrets");
    c.create_sample_db(&db, 10);
    let s = scratch(&db, "encryption:\n  type: gpg\n  passphrase_file: pass.txt\n");
    let secret = "Zebra-Quasar-7781";
    write_secret(&s, "pass.txt", &format!("{secret}\n"));
    let out = s.cmd(&["-vv", "backup", "app", "production"]).env("PGTIER_LOG", "trace").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(secret), "the passphrase leaked into the logs");
    let path = String::from_utf8(out.stdout).unwrap();
    let m = std::fs::read_to_string(path.trim().replace(".dump.gz.gpg", ".json")).unwrap();
    assert!(!m.contains(secret));
    let stored = std::fs::read(path.trim()).unwrap();
    assert!(!stored.windows(secret.len()).any(|w| w == secret.as_bytes()));
    let t = db_name("secrets_restore");
    let out = s.cmd(&["-vv", "restore", "app", "production", "--target-db", &t]).env("PGTIER_LOG", "trace").output().unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains(secret));
}
