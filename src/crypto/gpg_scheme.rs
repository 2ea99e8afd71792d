//! OpenPGP as `gpg` writes it: SEIPD v1 (AES-256, MDC) with a passphrase (iterated-salted S2K,
//! as `gpg --symmetric --cipher-algo AES256`) and/or public-key recipients; no signatures, no
//! compression (the payload is already compressed).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use pgp::composed::{DecryptionOptions, Deserializable, Message, MessageBuilder, SignedPublicKey, SignedSecretKey, TheRing};
use pgp::crypto::hash::HashAlgorithm;
use pgp::crypto::sym::SymmetricKeyAlgorithm;
use pgp::types::{KeyDetails, Password, StringToKey};

use super::{key_error, read_passphrase};
use crate::error::Result;
use crate::pipeline::FinishWrite;
use crate::vocab::EncryptionConfig;
use crate::vocab::EncryptionInfo;

/// gpg's default S2K iteration count (65011712 bytes), coded.
const S2K_COUNT: u8 = 255;

/// Reads an armored or binary public key and picks its encryption key.
fn load_public(path: &Path) -> std::result::Result<(SignedPublicKey, usize), String> {
    let f = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (key, _) = SignedPublicKey::from_reader_single(BufReader::new(f))
        .map_err(|e| format!("{}: not an OpenPGP public key: {e}", path.display()))?;
    let idx = encryption_subkey(&key).ok_or_else(|| format!("{}: key {:X} has no encryption subkey", path.display(), key.fingerprint()))?;
    Ok((key, idx))
}

/// The first subkey that may encrypt (by algorithm and, when present, by key flags).
fn encryption_subkey(key: &SignedPublicKey) -> Option<usize> {
    key.public_subkeys.iter().position(|s| {
        s.key.algorithm().can_encrypt()
            && (s.signatures.is_empty()
                || s.signatures.iter().any(|sig| sig.key_flags().encrypt_comms() || sig.key_flags().encrypt_storage()))
    })
}

fn load_secret(path: &Path) -> std::result::Result<SignedSecretKey, String> {
    let bytes = zeroize::Zeroizing::new(
        crate::fsutil::read_small(path, crate::fsutil::SMALL_FILE_MAX).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
    );
    let (key, _) =
        SignedSecretKey::from_reader_single(&bytes[..]).map_err(|e| format!("{}: not an OpenPGP secret key: {e}", path.display()))?;
    Ok(key)
}

/// Load-time checks of a gpg block.
pub fn check(file: &Path, key: &str, cfg: &EncryptionConfig) -> Result<()> {
    let EncryptionConfig::Gpg { passphrase_file, recipient_keys, secret_key_file, secret_key_passphrase_file } = cfg else {
        unreachable!("gpg block")
    };
    if passphrase_file.is_none() && recipient_keys.is_empty() {
        return Err(key_error(file, key, "recipient_keys", "a gpg block needs recipient_keys or a passphrase_file"));
    }
    for (i, p) in recipient_keys.iter().enumerate() {
        load_public(p).map_err(|m| key_error(file, key, &format!("recipient_keys[{i}]"), m))?;
    }
    if let Some(p) = passphrase_file {
        read_passphrase(p).map_err(|e| key_error(file, key, "passphrase_file", e.to_string()))?;
    }
    if let Some(p) = secret_key_file {
        crate::fsutil::warn_if_loose(p, "secret_key_file");
        load_secret(p).map_err(|m| key_error(file, key, "secret_key_file", m))?;
    }
    if let Some(p) = secret_key_passphrase_file {
        read_passphrase(p).map_err(|e| key_error(file, key, "secret_key_passphrase_file", e.to_string()))?;
    }
    Ok(())
}

/// Wraps `inner` in OpenPGP encryption. rpgp's builder pulls from a reader, so it runs on its
/// own thread, fed through a bounded channel by this stage's `write`.
pub fn encryptor(cfg: &EncryptionConfig, inner: Box<dyn FinishWrite>) -> Result<(Box<dyn FinishWrite>, EncryptionInfo)> {
    let EncryptionConfig::Gpg { passphrase_file, recipient_keys, .. } = cfg else { unreachable!("gpg block") };
    let mut publics = Vec::new();
    let mut ids = Vec::new();
    for p in recipient_keys {
        let (k, idx) = load_public(p).map_err(crate::error::Error::Failed)?;
        ids.push(format!("{:X}", k.fingerprint()));
        publics.push((k, idx));
    }
    let password = passphrase_file.as_deref().map(read_passphrase).transpose()?.map(|p| Password::from(p.as_str()));
    if password.is_some() {
        ids.push("passphrase".into());
    }
    let (tx, rx) = sync_channel::<Vec<u8>>(4);
    let worker = std::thread::Builder::new()
        .name("gpg-encrypt".into())
        .spawn(move || -> io::Result<Box<dyn FinishWrite>> {
            let mut rng = rand::thread_rng();
            let mut out = inner;
            let source = ChannelReader { rx, buf: Vec::new(), pos: 0 };
            let mut builder = MessageBuilder::from_reader("", source).seipd_v1(&mut rng, SymmetricKeyAlgorithm::AES256);
            for (k, idx) in &publics {
                builder.encrypt_to_key(&mut rng, &k.public_subkeys[*idx]).map_err(io::Error::other)?;
            }
            if let Some(pw) = &password {
                builder
                    .encrypt_with_password(StringToKey::new_iterated(&mut rng, HashAlgorithm::Sha256, S2K_COUNT), pw)
                    .map_err(io::Error::other)?;
            }
            builder.to_writer(&mut rng, &mut out).map_err(io::Error::other)?;
            Ok(out)
        })
        .map_err(|e| crate::failed!("cannot start the encryption thread: {e}"))?;
    let writer = GpgWriter { tx: Some(tx), buf: Vec::with_capacity(CHUNK), worker: Some(worker) };
    Ok((Box::new(writer), EncryptionInfo { scheme: "gpg".into(), recipients: ids }))
}

const CHUNK: usize = 256 * 1024;

struct GpgWriter {
    tx: Option<SyncSender<Vec<u8>>>,
    buf: Vec<u8>,
    worker: Option<JoinHandle<io::Result<Box<dyn FinishWrite>>>>,
}

impl GpgWriter {
    fn send(&mut self) -> io::Result<()> {
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        if self.tx.as_ref().expect("open").send(chunk).is_err() {
            return Err(self.join().err().unwrap_or_else(|| io::Error::other("the encryption thread stopped")));
        }
        Ok(())
    }

    fn join(&mut self) -> io::Result<Box<dyn FinishWrite>> {
        self.tx.take();
        match self.worker.take() {
            Some(w) => w.join().map_err(|_| io::Error::other("the encryption thread panicked"))?,
            None => Err(io::Error::other("encryption already finished")),
        }
    }
}

impl Write for GpgWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl FinishWrite for GpgWriter {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        self.join()?.finish()
    }
}

impl Drop for GpgWriter {
    fn drop(&mut self) {
        if self.worker.is_some() {
            let _ = self.join();
        }
    }
}

/// The reading end of the channel, for rpgp's builder.
struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.recv() {
                Ok(b) => {
                    self.buf = b;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Message passwords and secret keys, for decryption.
pub struct GpgKeys {
    passwords: Vec<Password>,
    secret_keys: Vec<SignedSecretKey>,
    key_passwords: Vec<Password>,
}

impl GpgKeys {
    /// Loads the configured passphrase and secret key (either may be absent).
    pub fn load(
        passphrase_file: Option<&Path>,
        secret_key_file: Option<&Path>,
        secret_key_passphrase_file: Option<&Path>,
    ) -> Result<GpgKeys> {
        let passwords = passphrase_file.map(read_passphrase).transpose()?.map(|p| Password::from(p.as_str())).into_iter().collect();
        let secret_keys = secret_key_file.map(load_secret).transpose().map_err(crate::error::Error::Failed)?.into_iter().collect();
        let key_passwords = vec![
            secret_key_passphrase_file
                .map(read_passphrase)
                .transpose()?
                .map(|p| Password::from(p.as_str()))
                .unwrap_or_else(|| Password::from("")),
        ];
        Ok(GpgKeys { passwords, secret_keys, key_passwords })
    }

    pub fn is_empty(&self) -> bool {
        self.passwords.is_empty() && self.secret_keys.is_empty()
    }

    /// Decrypts `input` (binary or armored). SEIPD v1 plaintext is streamed: integrity is
    /// checked at the end of the stream, and callers trust nothing until the stream has ended
    /// cleanly and its SHA-256 matched.
    pub fn decrypt(&self, input: Box<dyn Read + Send>, source: &str, keys: &str) -> Result<Box<dyn Read + Send>> {
        let reader = DebugRead(BufReader::with_capacity(256 * 1024, input));
        let (msg, _) = Message::from_reader(reader).map_err(|e| crate::failed!("{source}: not a valid OpenPGP message: {e}"))?;
        let ring = TheRing {
            secret_keys: self.secret_keys.iter().collect(),
            key_passwords: self.key_passwords.iter().collect(),
            message_password: self.passwords.iter().collect(),
            session_keys: Vec::new(),
            decrypt_options: DecryptionOptions::new().set_seipdv1_read_mode(pgp::types::Seipdv1ReadMode::Streaming),
        };
        // A wrong passphrase and a key for someone else look alike to OpenPGP: word it by what was tried.
        let (msg, _) = msg.decrypt_the_ring(ring, true).map_err(|e| {
            if self.passwords.is_empty() {
                crate::failed!("{source}: none of the configured OpenPGP keys can open it ({keys}): it was encrypted to someone else ({e})")
            } else {
                crate::failed!("{source}: cannot decrypt it with the configured OpenPGP keys ({keys}): wrong passphrase or key ({e})")
            }
        })?;
        let msg = if msg.is_compressed() { msg.decompress().map_err(|e| crate::failed!("{source}: {e}"))? } else { msg };
        Ok(Box::new(MessageRead(msg)))
    }
}

/// rpgp wants a `Debug` reader.
struct DebugRead(BufReader<Box<dyn Read + Send>>);

impl std::fmt::Debug for DebugRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("backup stream")
    }
}

impl Read for DebugRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl BufRead for DebugRead {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.0.fill_buf()
    }
    fn consume(&mut self, n: usize) {
        self.0.consume(n)
    }
}

struct MessageRead(Message<'static>);

impl Read for MessageRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}
