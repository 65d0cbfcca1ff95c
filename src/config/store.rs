//! The configuration file on disk: its revision (for `ETag`/`If-Match`)
//! and atomic replacement that keeps the previous good file beside it.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// Temporary files of a write in progress are named so, beside the file.
pub const TEMPORARY_PREFIX: &str = ".edgecam-config-";

/// A short, stable name for one exact text of the file.
pub fn revision(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Where the previous good file is kept: `config.toml` → `config.toml.prev`.
pub fn previous_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".prev");
    path.with_file_name(name)
}

/// Replaces `path` with `text` so that a crash at any instant leaves either
/// the old or the new file, never a torn one: the text goes to a temporary
/// file in the same directory, is flushed to disk, and is renamed over the
/// original; the directory is flushed so the rename itself survives a power
/// cut. The old text is first kept as `<name>.prev` the same way.
pub fn replace(path: &Path, text: &str) -> Result<()> {
    if let Ok(old) = std::fs::read_to_string(path) {
        write_atomically(&previous_path(path), &old)?;
    }
    write_atomically(path, text)
}

fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut file = tempfile::Builder::new()
        .prefix(TEMPORARY_PREFIX)
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.as_file().sync_all())
        .with_context(|| format!("writing {}", file.path().display()))?;
    // Keep the file's mode (e.g. 0640 for a config holding tokens).
    if let Ok(metadata) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(file.path(), metadata.permissions());
    }
    file.persist(path)
        .with_context(|| format!("replacing {}", path.display()))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("flushing {}", dir.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_differ_with_the_text() {
        assert_eq!(revision("a"), revision("a"));
        assert_ne!(revision("a"), revision("b"));
        assert_eq!(revision("a").len(), 16);
    }

    #[test]
    fn replacing_keeps_the_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "old").unwrap();
        replace(&path, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("config.toml.prev")).unwrap(),
            "old"
        );
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 2, "temporary files were left behind");
    }
}
