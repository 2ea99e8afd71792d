//! age: X25519 and ssh recipients, or one scrypt passphrase (age cannot mix the two).

use std::io::{self, BufReader, Read, Write};
use std::path::Path;
use std::str::FromStr;

use age::secrecy::SecretString;

use super::{key_error, read_passphrase, recipient_lines};
use crate::error::Result;
use crate::pipeline::FinishWrite;
use crate::vocab::EncryptionConfig;
use crate::vocab::EncryptionInfo;

/// A parsed age recipient with the public string recorded in manifests.
struct Parsed {
    recipient: Box<dyn age::Recipient + Send>,
    public: String,
}

fn parse_recipient(s: &str) -> Option<Parsed> {
    let s = s.trim();
    if let Ok(r) = age::x25519::Recipient::from_str(s) {
        return Some(Parsed { public: r.to_string(), recipient: Box::new(r) });
    }
    if let Ok(r) = age::ssh::Recipient::from_str(s) {
        // Record the key type and its base64 body, not the comment (which may name a person).
        let public = s.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        return Some(Parsed { public, recipient: Box::new(r) });
    }
    None
}

fn recipients(cfg: &EncryptionConfig) -> std::result::Result<Vec<Parsed>, (String, String)> {
    let EncryptionConfig::Age { recipients, recipients_file, .. } = cfg else { unreachable!("age block") };
    let mut out = Vec::new();
    for (i, r) in recipients.iter().enumerate() {
        out.push(
            parse_recipient(r)
                .ok_or_else(|| (format!("recipients[{i}]"), format!("{r:?} is not an age (age1...) or ssh-ed25519/ssh-rsa public key")))?,
        );
    }
    if let Some(path) = recipients_file {
        let lines = recipient_lines(path).map_err(|e| ("recipients_file".to_string(), format!("cannot read {}: {e}", path.display())))?;
        for (i, line) in lines.iter().enumerate() {
            out.push(parse_recipient(line).ok_or_else(|| {
                ("recipients_file".to_string(), format!("{} line {} is not an age or ssh public key", path.display(), i + 1))
            })?);
        }
    }
    Ok(out)
}

/// Load-time checks of an age block.
pub fn check(file: &Path, key: &str, cfg: &EncryptionConfig) -> Result<()> {
    let EncryptionConfig::Age { identity_file, passphrase_file, .. } = cfg else { unreachable!("age block") };
    let parsed = recipients(cfg).map_err(|(k, m)| key_error(file, key, &k, m))?;
    match (parsed.is_empty(), passphrase_file) {
        (true, None) => {
            return Err(key_error(file, key, "recipients", "an age block needs recipients, a recipients_file or a passphrase_file"));
        }
        (false, Some(_)) => {
            return Err(key_error(file, key, "passphrase_file", "age encrypts to recipients or to a passphrase, not both: remove one"));
        }
        _ => {}
    }
    if let Some(p) = passphrase_file {
        read_passphrase(p).map_err(|e| key_error(file, key, "passphrase_file", e.to_string()))?;
    }
    if let Some(p) = identity_file {
        crate::fsutil::warn_if_loose(p, "identity_file");
        let ids = load_identities(p).map_err(|e| key_error(file, key, "identity_file", e))?;
        if ids.is_empty() {
            return Err(key_error(file, key, "identity_file", format!("{} holds no age identity", p.display())));
        }
    }
    Ok(())
}

/// Reads an identity file: age identities (one per line, several for key rotation) or an
/// unencrypted ssh private key.
fn load_identities(path: &Path) -> std::result::Result<Vec<Box<dyn age::Identity + Send + Sync>>, String> {
    let bytes = zeroize::Zeroizing::new(
        crate::fsutil::read_small(path, crate::fsutil::SMALL_FILE_MAX).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
    );
    if bytes.starts_with(b"-----BEGIN") {
        let id = age::ssh::Identity::from_buffer(&bytes[..], Some(path.display().to_string()))
            .map_err(|e| format!("{}: not an ssh private key: {e}", path.display()))?;
        return match id {
            age::ssh::Identity::Unencrypted(_) => Ok(vec![Box::new(id)]),
            _ => Err(format!(
                "{}: encrypted or unsupported ssh keys cannot be used unattended; use an unencrypted ed25519 or rsa key",
                path.display()
            )),
        };
    }
    let file = age::IdentityFile::from_buffer(&bytes[..])
        .map_err(|_| format!("{}: is not an age identity file (AGE-SECRET-KEY-1... lines)", path.display()))?;
    file.into_identities().map_err(|e| format!("{}: {e}", path.display()))
}

/// Wraps `inner` in age encryption.
pub fn encryptor(cfg: &EncryptionConfig, inner: Box<dyn FinishWrite>) -> Result<(Box<dyn FinishWrite>, EncryptionInfo)> {
    let EncryptionConfig::Age { passphrase_file, .. } = cfg else { unreachable!("age block") };
    let (encryptor, info) = match passphrase_file {
        Some(p) => {
            let pass = read_passphrase(p)?;
            (
                age::Encryptor::with_user_passphrase(SecretString::from(pass.to_string())),
                EncryptionInfo { scheme: "age".into(), recipients: vec!["passphrase".into()] },
            )
        }
        None => {
            let parsed = recipients(cfg).map_err(|(k, m)| crate::failed!("encryption.{k}: {m}"))?;
            let enc = age::Encryptor::with_recipients(parsed.iter().map(|p| p.recipient.as_ref() as &dyn age::Recipient))
                .map_err(|e| crate::failed!("age: {e}"))?;
            (enc, EncryptionInfo { scheme: "age".into(), recipients: parsed.into_iter().map(|p| p.public).collect() })
        }
    };
    let writer = encryptor.wrap_output(inner).map_err(|e| crate::failed!("age: {e}"))?;
    Ok((Box::new(AgeWriter(writer)), info))
}

struct AgeWriter(age::stream::StreamWriter<Box<dyn FinishWrite>>);

impl Write for AgeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl FinishWrite for AgeWriter {
    fn finish(self: Box<Self>) -> io::Result<()> {
        self.0.finish()?.finish()
    }
}

/// age identities and an optional passphrase, for decryption.
pub struct AgeKeys {
    identities: Vec<Box<dyn age::Identity + Send + Sync>>,
    passphrase: Option<SecretString>,
}

impl AgeKeys {
    /// Loads the configured identity file and passphrase (either may be absent).
    pub fn load(identity_file: Option<&Path>, passphrase_file: Option<&Path>) -> Result<AgeKeys> {
        let identities = match identity_file {
            Some(p) => load_identities(p).map_err(crate::error::Error::Failed)?,
            None => Vec::new(),
        };
        let passphrase = passphrase_file.map(read_passphrase).transpose()?.map(|p| SecretString::from(p.to_string()));
        Ok(AgeKeys { identities, passphrase })
    }

    pub fn is_empty(&self) -> bool {
        self.identities.is_empty() && self.passphrase.is_none()
    }

    /// Decrypts `input` (binary or armored); a key that does not fit is named, not guessed at.
    pub fn decrypt(&self, input: Box<dyn Read + Send>, source: &str, keys: &str) -> Result<Box<dyn Read + Send>> {
        let armored = age::armor::ArmoredReader::new(BufReader::with_capacity(256 * 1024, input));
        let dec =
            age::Decryptor::new_buffered(BufReader::new(armored)).map_err(|e| crate::failed!("{source}: not a valid age file: {e}"))?;
        let scrypt;
        let ids: Vec<&dyn age::Identity> = if dec.is_scrypt() {
            let pass = self.passphrase.clone().ok_or_else(|| {
                crate::failed!("{source}: is encrypted to an age passphrase and no passphrase_file is configured ({keys})")
            })?;
            scrypt = age::scrypt::Identity::new(pass);
            vec![&scrypt]
        } else {
            self.identities.iter().map(|i| i.as_ref() as &dyn age::Identity).collect()
        };
        match dec.decrypt(ids.into_iter()) {
            Ok(r) => Ok(Box::new(r)),
            Err(age::DecryptError::NoMatchingKeys) => {
                Err(crate::failed!("{source}: none of the configured age keys can open it ({keys}): it was encrypted to someone else"))
            }
            Err(age::DecryptError::DecryptionFailed) => Err(crate::failed!("{source}: wrong age passphrase ({keys})")),
            Err(e) => Err(crate::failed!("{source}: age: {e}")),
        }
    }
}
