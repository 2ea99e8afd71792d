//! The S3 servers of the tests: LocalStack, started once per test binary through
//! `localstack/start.sh` (or taken from PGTIER_TEST_S3_ENDPOINT), and moto, a second
//! implementation, through `motoserver/start.sh`; both stop when this process exits. Each test
//! gets its own bucket. Missing parts fail with what to install.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

use super::{free_port, repo, unique};

pub struct LocalStack {
    pub endpoint: String,
}

static LOCALSTACK: OnceLock<LocalStack> = OnceLock::new();
static MOTO: OnceLock<LocalStack> = OnceLock::new();

/// The test binary's moto server (a second S3 implementation), started on first use through
/// `motoserver/start.sh`. The same helpers (buckets, the aws CLI) work on it.
pub fn moto() -> &'static LocalStack {
    MOTO.get_or_init(|| start("motoserver/start.sh", "moto"))
}

/// The test binary's LocalStack, started on first use.
pub fn localstack() -> &'static LocalStack {
    LOCALSTACK.get_or_init(|| {
        if let Ok(endpoint) = std::env::var("PGTIER_TEST_S3_ENDPOINT") {
            return LocalStack { endpoint };
        }
        start("localstack/start.sh", "LocalStack")
    })
}

/// Starts an S3 server with its start script on a free port; it stops when this process exits.
fn start(script: &str, what: &str) -> LocalStack {
    let port = free_port();
    let out = Command::new(repo().join(script))
        .arg(port.to_string())
        .arg("--parent")
        .arg(std::process::id().to_string())
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    assert!(
        out.status.success(),
        "{what} could not be started (run scripts/setup --tests to install it): {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    LocalStack { endpoint: String::from_utf8(out.stdout).unwrap().trim().to_string() }
}

/// The aws CLI: the one scripts/setup installed, else the one on PATH.
pub fn aws_cli() -> PathBuf {
    let local = repo().join(".state/awscli/bin/aws");
    if local.is_file() {
        return local;
    }
    super::require_tool("aws", "install the aws CLI (scripts/setup does)")
}

/// Credentials LocalStack accepts (it does not check signatures), and no instance-metadata lookups.
pub fn aws_env(cmd: &mut Command) -> &mut Command {
    cmd.env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
}

impl LocalStack {
    /// Runs `aws ARGS --endpoint-url ...`.
    pub fn aws(&self, args: &[&str]) -> Output {
        let mut c = Command::new(aws_cli());
        aws_env(&mut c).args(args).args(["--endpoint-url", &self.endpoint]);
        c.output().expect("run aws")
    }

    /// Runs `aws ...` and returns stdout as JSON, asserting success.
    pub fn aws_json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.aws(args);
        assert!(out.status.success(), "aws {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        if out.stdout.iter().all(|b| b.is_ascii_whitespace()) {
            return serde_json::Value::Null;
        }
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// A new, empty bucket of this test's own.
    pub fn bucket(&self) -> String {
        let name = format!("pgtier-{}-{}", std::process::id(), unique());
        self.aws_json(&["s3api", "create-bucket", "--bucket", &name]);
        name
    }

    /// A new bucket with versioning and Object Lock, as `pgtier remote init` makes it.
    pub fn locked_bucket(&self) -> String {
        let name = format!("pgtier-lock-{}-{}", std::process::id(), unique());
        self.aws_json(&["s3api", "create-bucket", "--bucket", &name, "--object-lock-enabled-for-bucket"]);
        name
    }

    /// A name for a bucket that does not exist yet.
    pub fn bucket_name(&self) -> String {
        format!("pgtier-new-{}-{}", std::process::id(), unique())
    }

    /// The `remote:` block of pgtier.yml for `bucket` and `prefix`.
    pub fn remote_yaml(&self, bucket: &str, prefix: &str) -> String {
        remote_yaml_at(&self.endpoint, bucket, prefix)
    }
}

/// The `remote:` block for `bucket` and `prefix` at `endpoint` (LocalStack, or a proxy in front of it).
pub fn remote_yaml_at(endpoint: &str, bucket: &str, prefix: &str) -> String {
    format!("remote:\n  url: s3://{bucket}/{prefix}\n  endpoint_url: {endpoint}\n  region: us-east-1\n  force_path_style: true\n")
}

impl LocalStack {
    /// Every object under `prefix` in `bucket`: (key, storage class, size).
    pub fn objects(&self, bucket: &str, prefix: &str) -> Vec<(String, String, u64)> {
        let v = self.aws_json(&["s3api", "list-objects-v2", "--bucket", bucket, "--prefix", prefix]);
        let mut out: Vec<(String, String, u64)> = v["Contents"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|o| {
                        (
                            o["Key"].as_str().unwrap().to_string(),
                            o["StorageClass"].as_str().unwrap_or("STANDARD").to_string(),
                            o["Size"].as_u64().unwrap(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }
}
