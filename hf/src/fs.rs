//! File-system helpers: atomic writes (a temporary file in the same directory, then a rename).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A temporary sibling of `path` (same directory, so the rename is atomic), named after the
/// process so that concurrent writers do not collide.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Writes a file through `write` into a temporary sibling, syncs it and renames it over `path`;
/// on any error the temporary file is removed and `path` is left as it was.
pub(crate) fn write_file_atomic(path: &Path, write: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut file = File::create(&tmp).map_err(|e| Error::io(&tmp, "creating", e))?;
        write(&mut file)?;
        file.sync_all().map_err(|e| Error::io(&tmp, "syncing", e))?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, "renaming the temporary file onto", e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `path` atomically (see [`write_file_atomic`]).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_file_atomic(path, |f| f.write_all(bytes).map_err(|e| Error::io(path, "writing", e)))
}
