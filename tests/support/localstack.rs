//! LocalStack's S3, started by the tests through `localstack/start.sh` (filled in by the
//! off-site work).
