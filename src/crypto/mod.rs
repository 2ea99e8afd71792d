//! Encryption stages: age (X25519 / ssh recipients, or an scrypt passphrase) and OpenPGP that
//! `gpg` reads and writes (a passphrase, as `gpg --symmetric --cipher-algo AES256`, or public
//! keys). Encryption is one more streaming stage after compression; decryption sniffs the layer
//! by its magic bytes. Secrets are read from files, zeroized where the crates allow, and never
//! printed; errors name the file, never its contents.

mod age_scheme;
mod gpg_scheme;

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};
use crate::pipeline::{FinishWrite, Layer};
use crate::vocab::{EncryptionConfig, EncryptionInfo};

/// Checks an encryption block at load time: keys parse, files are readable, something can
/// encrypt. Errors name the config file and the key path.
pub fn check_config(file: &Path, key: &str, cfg: &EncryptionConfig) -> Result<()> {
    match cfg {
        EncryptionConfig::Age { .. } => age_scheme::check(file, key, cfg),
        EncryptionConfig::Gpg { .. } => gpg_scheme::check(file, key, cfg),
    }
}

/// The file extension an encryption block gives (`age` or `gpg`).
pub fn extension(cfg: &EncryptionConfig) -> &'static str {
    match cfg {
        EncryptionConfig::Age { .. } => "age",
        EncryptionConfig::Gpg { .. } => "gpg",
    }
}

/// Wraps `inner` in an encryption stage; returns what the manifest records about it.
pub fn encryptor(cfg: &EncryptionConfig, inner: Box<dyn FinishWrite>) -> Result<(Box<dyn FinishWrite>, EncryptionInfo)> {
    match cfg {
        EncryptionConfig::Age { .. } => age_scheme::encryptor(cfg, inner),
        EncryptionConfig::Gpg { .. } => gpg_scheme::encryptor(cfg, inner),
    }
}

/// Keys available for decryption, loaded from the configured identity or secret key files.
#[derive(Default)]
pub struct Keys {
    age: Option<age_scheme::AgeKeys>,
    gpg: Option<gpg_scheme::GpgKeys>,
    /// Where the keys came from, for messages ("identity_file /etc/pgtier/key.txt").
    sources: Vec<String>,
}

impl Keys {
    /// No keys: encrypted input is refused with a clear message.
    pub fn none() -> Keys {
        Keys::default()
    }

    /// The decryption keys of an encryption block (none configured is not an error: a host may
    /// hold only public keys; an encrypted input then fails naming what is missing).
    pub fn for_block(block: Option<&EncryptionConfig>) -> Result<Keys> {
        let mut keys = Keys::none();
        if let Some(cfg) = block {
            keys.add(cfg)?;
        }
        Ok(keys)
    }

    /// Adds the decryption keys of an encryption block.
    pub fn add(&mut self, cfg: &EncryptionConfig) -> Result<()> {
        match cfg {
            EncryptionConfig::Age { identity_file, passphrase_file, .. } => {
                let k = age_scheme::AgeKeys::load(identity_file.as_deref(), passphrase_file.as_deref())?;
                self.sources.extend(identity_file.iter().map(|p| format!("identity_file {}", p.display())));
                self.sources.extend(passphrase_file.iter().map(|p| format!("passphrase_file {}", p.display())));
                if !k.is_empty() {
                    self.age = Some(k);
                }
            }
            EncryptionConfig::Gpg { passphrase_file, secret_key_file, secret_key_passphrase_file, .. } => {
                let k = gpg_scheme::GpgKeys::load(
                    passphrase_file.as_deref(),
                    secret_key_file.as_deref(),
                    secret_key_passphrase_file.as_deref(),
                )?;
                self.sources.extend(secret_key_file.iter().map(|p| format!("secret_key_file {}", p.display())));
                self.sources.extend(passphrase_file.iter().map(|p| format!("passphrase_file {}", p.display())));
                if !k.is_empty() {
                    self.gpg = Some(k);
                }
            }
        }
        Ok(())
    }

    /// Adds an age identity file or an OpenPGP secret key file given on the command line.
    pub fn add_key_file(&mut self, path: &Path) -> Result<()> {
        let text = crate::fsutil::read_small(path, crate::fsutil::SMALL_FILE_MAX)
            .map_err(|e| Error::Failed(format!("{}: cannot read: {e}", path.display())))?;
        // An armored PGP block, or a binary OpenPGP packet; anything else is an age identity file.
        let looks_pgp = text.trim_ascii_start().starts_with(b"-----BEGIN PGP") || text.first().is_some_and(|b| b & 0x80 != 0);
        if looks_pgp {
            self.add(&EncryptionConfig::Gpg {
                passphrase_file: None,
                recipient_keys: Vec::new(),
                secret_key_file: Some(path.to_path_buf()),
                secret_key_passphrase_file: None,
            })
        } else {
            self.add(&EncryptionConfig::Age {
                recipients: Vec::new(),
                recipients_file: None,
                identity_file: Some(path.to_path_buf()),
                passphrase_file: None,
            })
        }
    }

    fn describe(&self) -> String {
        if self.sources.is_empty() { "no key is configured".into() } else { self.sources.join(", ") }
    }

    /// A reader of the plaintext of `input`, whose outer layer is `layer`.
    pub fn decryptor(&self, layer: Layer, input: Box<dyn Read + Send>, source: &str) -> Result<Box<dyn Read + Send>> {
        match layer {
            Layer::Age | Layer::AgeArmored => match &self.age {
                Some(k) => k.decrypt(input, source, &self.describe()),
                None => Err(crate::failed!(
                    "{source}: is age-encrypted and {}: set encryption.identity_file (or passphrase_file) for this project",
                    self.describe_for("age")
                )
                .remedy(crate::error::Remedy::ExtraKey)),
            },
            Layer::Pgp | Layer::PgpArmored => match &self.gpg {
                Some(k) => k.decrypt(input, source, &self.describe()),
                None => Err(crate::failed!(
                    "{source}: is OpenPGP-encrypted and {}: set encryption.secret_key_file or passphrase_file (type: gpg)",
                    self.describe_for("gpg")
                )
                .remedy(crate::error::Remedy::ExtraKey)),
            },
            other => Err(crate::failed!("{source}: {} is not an encryption layer", other.name())),
        }
    }

    fn describe_for(&self, scheme: &str) -> String {
        if self.sources.is_empty() {
            "no key is configured".into()
        } else {
            format!("no {scheme} key is configured (have {})", self.describe())
        }
    }

    /// Whether any decryption key is loaded.
    pub fn is_empty(&self) -> bool {
        self.age.is_none() && self.gpg.is_none()
    }
}

/// Reads a passphrase file: its first line, line ending stripped; warns if others can read it.
pub fn read_passphrase(path: &Path) -> Result<zeroize::Zeroizing<String>> {
    crate::fsutil::warn_if_loose(path, "passphrase file");
    crate::fsutil::read_secret_line(path)
}

/// A config error for a key path inside an encryption block.
fn key_error(file: &Path, key: &str, sub: &str, msg: impl Into<String>) -> Error {
    Error::config(file, format!("{key}.{sub}"), msg)
}

/// Lines of a recipients file that are not blank or comments.
fn recipient_lines(path: &Path) -> std::io::Result<Vec<String>> {
    let bytes = crate::fsutil::read_small(path, crate::fsutil::SMALL_FILE_MAX).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(String::from_utf8_lossy(&bytes)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

impl crate::pipeline::Decrypt for Keys {
    fn decryptor(&self, layer: Layer, input: Box<dyn Read + Send>, source: &str) -> Result<Box<dyn Read + Send>> {
        Keys::decryptor(self, layer, input, source)
    }
}
