//! Encryption stages (age and OpenPGP). Filled in by the encryption work; for now backups are
//! stored unencrypted and encrypted inputs are refused with a clear message.

use std::io::Read;
use std::path::Path;

use crate::config::EncryptionConfig;
use crate::error::Result;
use crate::pipeline::Layer;

/// Keys available for decryption.
#[derive(Default)]
pub struct Keys {}

impl Keys {
    /// No keys: encrypted input is refused.
    pub fn none() -> Keys {
        Keys {}
    }

    /// A reader of the plaintext of `input`, whose outer layer is `layer`.
    pub fn decryptor(&self, layer: Layer, _input: Box<dyn Read + Send>, source: &str) -> Result<Box<dyn Read + Send>> {
        Err(crate::failed!("{source}: is {}-encrypted and no decryption key is configured", layer.name()))
    }
}

/// Checks an encryption block at load time.
pub fn check_config(_file: &Path, _key: &str, _cfg: &EncryptionConfig) -> Result<()> {
    Ok(())
}

/// The file extension an encryption block gives (`age` or `gpg`).
pub fn extension(cfg: &EncryptionConfig) -> &'static str {
    match cfg {
        EncryptionConfig::Age { .. } => "age",
        EncryptionConfig::Gpg { .. } => "gpg",
    }
}

/// Wraps `inner` in an encryption stage; returns what the manifest records about it.
pub fn encryptor(
    cfg: &EncryptionConfig,
    _inner: Box<dyn crate::pipeline::FinishWrite>,
) -> Result<(Box<dyn crate::pipeline::FinishWrite>, crate::manifest::EncryptionInfo)> {
    Err(crate::failed!("{} encryption is not available in this build", extension(cfg)))
}

/// The key part of the audit: the configured identity opens the newest backup's header.
pub fn audit_keys(_cfg: &crate::config::Config, _project: &crate::config::Project, _env: &str) -> Vec<crate::audit::Finding> {
    Vec::new()
}
