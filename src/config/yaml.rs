//! Reading YAML into raw structs with errors that name the file and the key path.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Config files are small; anything bigger is a mistake or an attack on the parser.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Reads `file` (at most 1 MiB) as UTF-8 text.
pub fn read_text(file: &Path) -> Result<String> {
    let meta = std::fs::metadata(file).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound && file.file_name().is_some_and(|n| n == "pgtier.yml") {
            " (pgtier looks for ./pgtier.yml; give --config FILE or set PGTIER_CONFIG, e.g. /etc/pgtier/pgtier.yml; `pgtier config init DIR` writes a commented one to start from)"
        } else {
            ""
        };
        Error::config(file, "(file)", format!("cannot read: {e}{hint}"))
    })?;
    if !meta.is_file() {
        return Err(Error::config(file, "(file)", "is not a regular file"));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(Error::config(file, "(file)", format!("is {} bytes; config files are limited to 1 MiB", meta.len())));
    }
    let bytes = std::fs::read(file).map_err(|e| Error::config(file, "(file)", format!("cannot read: {e}")))?;
    String::from_utf8(bytes).map_err(|_| Error::config(file, "(file)", "is not valid UTF-8"))
}

/// Parses YAML text into `T`; an empty document parses as `T::default()` where `T` allows it.
pub fn parse<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T> {
    let de = serde_norway::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = key_path(e.path(), "");
        Error::config(file, key, e.into_inner().to_string())
    })
}

/// Deserializes an already-parsed YAML value found at `prefix` in `file`.
pub fn from_value<T: DeserializeOwned>(file: &Path, prefix: &str, value: serde_norway::Value) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let key = key_path(e.path(), prefix);
        Error::config(file, key, e.into_inner().to_string())
    })
}

fn key_path(path: &serde_path_to_error::Path, prefix: &str) -> String {
    let inner = path.to_string();
    match (prefix.is_empty(), inner == ".") {
        (true, true) => "(top level)".into(),
        (true, false) => inner,
        (false, true) => prefix.into(),
        (false, false) => format!("{prefix}.{inner}"),
    }
}

/// Parses "300s", "5m", "2h", "500ms" or a bare number of seconds.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => return Some(std::time::Duration::from_millis(n)),
        "m" | "min" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86400)?,
        _ => return None,
    };
    Some(std::time::Duration::from_secs(secs))
}

/// Parses "10GB", "512MiB", "1.5 GB" or a bare number of bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let v = n * mult;
    (v.is_finite() && v >= 0.0 && v < u64::MAX as f64).then_some(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("300s"), Some(std::time::Duration::from_secs(300)));
        assert_eq!(parse_duration("5m"), Some(std::time::Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Some(std::time::Duration::from_millis(250)));
        assert_eq!(parse_duration("5 parsecs"), None);
        assert_eq!(parse_size("10GB"), Some(10_000_000_000));
        assert_eq!(parse_size("1MiB"), Some(1 << 20));
        assert_eq!(parse_size("ten"), None);
    }
}
