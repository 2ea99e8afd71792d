//! contrib/kubernetes/: the manifests validated against the Kubernetes schemas by the pinned
//! kubernetes-validate (kubevalidate/install.sh), the properties an operator relies on (never two
//! runs at once, non-root, read-only root filesystem with a scratch volume, resource requests),
//! the ConfigMap's files accepted by `config check`, and a Containerfile with the client tools of
//! every supported major.

mod support;

use std::path::PathBuf;

use support::{Scratch, repo};

fn validator() -> PathBuf {
    let v = repo().join(".state/kubevalidate/venv/bin/kubernetes-validate");
    assert!(v.is_file(), "kubernetes-validate is missing at {}: run kubevalidate/install.sh (scripts/setup --tests does)", v.display());
    v
}

fn manifests() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(repo().join("contrib/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    out.sort();
    out
}

fn yaml(path: &std::path::Path) -> serde_json::Value {
    serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_manifests_pass_the_kubernetes_schemas_strictly() {
    let files = manifests();
    assert!(files.len() >= 5, "{files:?}");
    let out = std::process::Command::new(validator()).arg("--strict").args(&files).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    for f in &files {
        assert!(said.contains(&format!("{} passed", f.display())), "{} not validated: {said}", f.display());
    }
}

#[test]
fn each_cronjob_runs_alone_as_non_root_on_a_read_only_root_with_a_scratch_volume() {
    let mut kinds = Vec::new();
    for f in manifests() {
        let v = yaml(&f);
        kinds.push(v["kind"].as_str().unwrap().to_string());
        if v["kind"] != "CronJob" {
            continue;
        }
        let name = f.display().to_string();
        assert_eq!(v["spec"]["concurrencyPolicy"], "Forbid", "{name}");
        let pod = &v["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_eq!(pod["serviceAccountName"], "pgtier", "{name}");
        let c = &pod["containers"][0];
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true, "{name}");
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false, "{name}");
        assert!(c["resources"]["requests"]["cpu"].is_string() && c["resources"]["requests"]["memory"].is_string(), "{name}");
        // Everything pgtier writes lands on a volume: the backup root and /tmp.
        let mounts: Vec<&str> = c["volumeMounts"].as_array().unwrap().iter().map(|m| m["mountPath"].as_str().unwrap()).collect();
        assert!(mounts.contains(&"/var/lib/pgtier") && mounts.contains(&"/tmp"), "{name}: {mounts:?}");
        let scratch = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "scratch").unwrap();
        assert!(scratch["emptyDir"].is_object(), "{name}");
        let secrets = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "secrets").unwrap();
        assert_eq!(secrets["secret"]["secretName"], "pgtier-secrets", "{name}");
    }
    kinds.sort();
    assert_eq!(kinds, ["ConfigMap", "CronJob", "CronJob", "CronJob", "Secret", "ServiceAccount"]);
    let hourly = yaml(&repo().join("contrib/kubernetes/cronjob-hourly.yaml"));
    assert_eq!(hourly["spec"]["schedule"], "0 * * * *");
    let args = hourly["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(args.contains("\"--tier\",\"hourly\""), "{args}");
    let nightly = yaml(&repo().join("contrib/kubernetes/cronjob-nightly.yaml"));
    let args = nightly["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(args.contains("\"run\"") && args.contains("--wait-lock"), "{args}");
    let drill = yaml(&repo().join("contrib/kubernetes/cronjob-drill.yaml"));
    assert!(drill["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"].to_string().contains("\"verify\""));
}

#[test]
fn the_configmap_files_pass_config_check() {
    // The ConfigMap's files as the pod sees them, with the secrets' folder moved to a temporary one.
    let cm = yaml(&repo().join("contrib/kubernetes/configmap.yaml"));
    let s = Scratch::new("", "");
    let secrets = s.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let here =
        |text: &str| text.replace("/etc/pgtier/secrets", secrets.to_str().unwrap()).replace("/var/lib/pgtier", s.path().to_str().unwrap());
    s.write("pgtier.yml", &here(cm["data"]["pgtier.yml"].as_str().unwrap()));
    s.write("projects.yml", &here(cm["data"]["projects.yml"].as_str().unwrap()));
    s.write("policies/default.yml", cm["data"]["policies.default.yml"].as_str().unwrap());
    let keygen = support::require_tool("age-keygen", "apt install age");
    let out = std::process::Command::new(keygen).arg("-o").arg(secrets.join("age.key")).output().unwrap();
    assert!(out.status.success());
    for f in ["shop.pass", "webhook.url"] {
        std::fs::write(secrets.join(f), "x\n").unwrap();
    }
    let out = s.run(&["config", "check"]);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_image_holds_the_client_tools_of_every_supported_major() {
    let text = std::fs::read_to_string(repo().join("contrib/kubernetes/Containerfile")).unwrap();
    assert!(text.contains("FROM docker.io/library/debian:bookworm-slim"), "a slim Debian base");
    assert!(text.contains("ARG PG_MAJORS=\"13 14 15 16 17 18\""), "every supported major's client tools");
    assert!(text.contains("postgresql-client-$v") && text.contains("test -x \"/usr/lib/postgresql/$v/bin/pg_dump\""));
    assert!(text.contains("USER 10001") && text.contains("age gnupg zstd"));
}

#[test]
fn a_pod_with_a_web_identity_token_syncs_with_the_credentials_sts_gives_it() {
    // What IRSA gives a pod: a role and a token file, no keys. LocalStack's STS answers
    // AssumeRoleWithWebIdentity; the standard AWS chain calls it.
    let c = support::cluster();
    let db = support::db_name("irsa");
    c.create_sample_db(&db, 5);
    let ls = support::localstack::localstack();
    let bucket = ls.bucket();
    let s = Scratch::new(&format!("shop:\n{}", c.database_block(&[("production", &db)])), &ls.remote_yaml(&bucket, "k8s"));
    let token = s.write("token", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6cGd0aWVyOnBndGllciJ9.\n");
    let pod = |args: &[&str], with_token: bool| {
        let mut cmd = s.cmd(args);
        cmd.env_remove("AWS_ACCESS_KEY_ID").env_remove("AWS_SECRET_ACCESS_KEY").env_remove("AWS_SESSION_TOKEN");
        cmd.env("AWS_ROLE_ARN", "arn:aws:iam::000000000000:role/pgtier-backups").env("AWS_ENDPOINT_URL_STS", &ls.endpoint);
        if with_token {
            cmd.env("AWS_WEB_IDENTITY_TOKEN_FILE", &token);
        } else {
            cmd.env_remove("AWS_WEB_IDENTITY_TOKEN_FILE");
        }
        cmd.stdin(std::process::Stdio::null()).output().unwrap()
    };
    s.ok(&["backup", "shop", "production"]);
    // Without the token the chain finds nothing: the sync below is the token's doing.
    let out = pod(&["sync"], false);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no AWS credentials"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = pod(&["sync"], true);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let keys: Vec<String> = ls.objects(&bucket, "k8s/").into_iter().map(|(k, _, _)| k).collect();
    assert!(keys.iter().any(|k| k.starts_with("k8s/shop/production/daily/db_")), "{keys:?}");
    let port = ls.endpoint.rsplit(':').next().unwrap();
    let log = std::fs::read_to_string(repo().join(format!(".state/localstack/run-{port}/log"))).unwrap_or_default();
    assert!(log.contains("AssumeRoleWithWebIdentity"), "LocalStack's STS was not asked: the credentials came from elsewhere");
}

/// EKS Pod Identity's agent, as the pod sees it: a loopback HTTP endpoint that answers a GET
/// carrying the pod's token with temporary credentials. Returns its URL and the Authorization
/// headers it received.
fn pod_identity_agent() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1/credentials", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if line.to_ascii_lowercase().starts_with("authorization:") {
                    log.lock().unwrap().push(line.split_once(':').unwrap().1.trim().to_string());
                }
            }
            let expires = (chrono::Utc::now() + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ");
            let body = format!(
                r#"{{"AccessKeyId":"ASIAPODIDENTITY","SecretAccessKey":"pod-secret","Token":"pod-session","AccountId":"000000000000","Expiration":"{expires}"}}"#
            );
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, seen)
}

#[test]
fn a_pod_with_eks_pod_identity_syncs_with_the_credentials_its_agent_gives() {
    let c = support::cluster();
    let db = support::db_name("podid");
    c.create_sample_db(&db, 5);
    let ls = support::localstack::localstack();
    let bucket = ls.bucket();
    let s = Scratch::new(&format!("shop:\n{}", c.database_block(&[("production", &db)])), &ls.remote_yaml(&bucket, "k8s"));
    // As EKS writes it: no newline at the end.
    let token = s.write("eks-pod-identity-token", "pod-identity-token-for-pgtier");
    let (agent, seen) = pod_identity_agent();
    s.ok(&["backup", "shop", "production"]);
    let out = s
        .cmd(&["sync"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", &agent)
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        seen.lock().unwrap().iter().any(|h| h == "pod-identity-token-for-pgtier"),
        "the agent was asked with the pod's token: {:?}",
        seen.lock().unwrap()
    );
    let keys: Vec<String> = ls.objects(&bucket, "k8s/").into_iter().map(|(k, _, _)| k).collect();
    assert!(keys.iter().any(|k| k.starts_with("k8s/shop/production/daily/db_")), "{keys:?}");
}
