//! Recognising what a stream holds from its first bytes, so hand-made files restore too.

/// One layer of a stored backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Gzip,
    Zstd,
    Age,
    AgeArmored,
    Pgp,
    PgpArmored,
    /// A pg_dump custom-format archive (`PGDMP`).
    CustomArchive,
    /// A tar stream (a directory-format dump, `pg_dump -Fd`, as one object).
    Tar,
    /// Plain SQL text (pg_dump -Fp, pg_dumpall --globals-only).
    Sql,
    Empty,
    Unknown,
}

impl Layer {
    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Layer::Gzip => "gzip",
            Layer::Zstd => "zstd",
            Layer::Age | Layer::AgeArmored => "age",
            Layer::Pgp | Layer::PgpArmored => "OpenPGP",
            Layer::CustomArchive => "custom archive",
            Layer::Tar => "tar",
            Layer::Sql => "SQL",
            Layer::Empty => "empty",
            Layer::Unknown => "unknown",
        }
    }
}

/// Decides what `head` (the first bytes of a stream) is.
pub fn sniff(head: &[u8]) -> Layer {
    if head.is_empty() {
        return Layer::Empty;
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        return Layer::Gzip;
    }
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Layer::Zstd;
    }
    if head.starts_with(b"age-encryption.org/") {
        return Layer::Age;
    }
    let text = trim_leading_space(head);
    if text.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----") {
        return Layer::AgeArmored;
    }
    if text.starts_with(b"-----BEGIN PGP MESSAGE-----") {
        return Layer::PgpArmored;
    }
    if head.starts_with(b"PGDMP") {
        return Layer::CustomArchive;
    }
    // POSIX tar: "ustar" at offset 257 of the first 512-byte header.
    if head.len() >= 262 && &head[257..262] == b"ustar" {
        return Layer::Tar;
    }
    if is_pgp_packet(head[0]) {
        return Layer::Pgp;
    }
    if looks_like_text(head) {
        return Layer::Sql;
    }
    Layer::Unknown
}

fn trim_leading_space(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

/// An OpenPGP message starts with a session-key packet (PKESK 1, SKESK 3), a compressed (8) or
/// encrypted (9, 18, 20) packet, in the old or the new packet format.
fn is_pgp_packet(first: u8) -> bool {
    if first & 0x80 == 0 {
        return false;
    }
    let tag = if first & 0x40 != 0 { first & 0x3f } else { (first >> 2) & 0x0f };
    matches!(tag, 1 | 3 | 8 | 9 | 18 | 20)
}

fn looks_like_text(head: &[u8]) -> bool {
    // A UTF-8 boundary may cut the last character of the sample.
    let valid = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && e.valid_up_to() + 4 > head.len(),
    };
    valid && !head.contains(&0) && head.iter().filter(|&&b| b < 0x20 && !b"\t\r\n".contains(&b)).count() == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_layers() {
        assert_eq!(sniff(b""), Layer::Empty);
        assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]), Layer::Gzip);
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Layer::Zstd);
        assert_eq!(sniff(b"age-encryption.org/v1\n-> X25519"), Layer::Age);
        assert_eq!(sniff(b"-----BEGIN AGE ENCRYPTED FILE-----\n"), Layer::AgeArmored);
        assert_eq!(sniff(b"-----BEGIN PGP MESSAGE-----\n"), Layer::PgpArmored);
        assert_eq!(sniff(&[0x8c, 0x0d, 0x04, 0x09]), Layer::Pgp); // gpg --symmetric, old format SKESK
        assert_eq!(sniff(&[0xc3, 0x0d]), Layer::Pgp); // new format SKESK
        assert_eq!(sniff(&[0x85, 0x01, 0x0c]), Layer::Pgp); // old format PKESK
        assert_eq!(sniff(b"PGDMP\x01\x0e\x00"), Layer::CustomArchive);
        assert_eq!(sniff(b"--\n-- PostgreSQL database dump\n"), Layer::Sql);
        assert_eq!(sniff(&[0x00, 0x01, 0x02]), Layer::Unknown);
        assert_eq!(sniff(&[0xff, 0xfe, 0x00]), Layer::Unknown);
    }
}
