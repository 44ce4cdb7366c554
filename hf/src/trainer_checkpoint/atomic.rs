//! Writing a whole directory atomically: into a temporary sibling, then renamed into place.
//!
//! `save` writes `<parent>/.<name>.tmp-<pid>`; only when it is complete (every file synced) is
//! an existing `<name>` renamed aside to `<parent>/.<name>.old-<pid>`, the new one renamed to
//! `<name>`, and the old one removed. A reader of `<name>` thus sees the previous checkpoint or
//! the new one, never a partial one. A process that dies while writing leaves a `.tmp-` sibling
//! (removed by the next save of that name); one that dies between the two renames leaves the
//! previous checkpoint as `.old-` ([`interrupted_swap`] finds it for the error message).

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The parent directory and the file name of `dir` (a relative name's parent is `.`).
fn split(dir: &Path) -> Result<(PathBuf, String)> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::invalid(dir, "a checkpoint path must end in a UTF-8 directory name"))?;
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Ok((parent.to_path_buf(), name.to_string()))
}

/// The sibling `<parent>/.<name>.<kind>-<pid>` of `dir`.
fn sibling(dir: &Path, kind: &str) -> Result<PathBuf> {
    let (parent, name) = split(dir)?;
    Ok(parent.join(format!(".{name}.{kind}-{}", std::process::id())))
}

/// Siblings of `dir` left by earlier saves of the same name: `.<name>.<kind>-*`.
fn leftovers(dir: &Path, kind: &str) -> Result<Vec<PathBuf>> {
    let (parent, name) = split(dir)?;
    let prefix = format!(".{name}.{kind}-");
    let Ok(entries) = std::fs::read_dir(&parent) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(&parent, "listing the directory", e))?;
        if entry.file_name().to_str().is_some_and(|n| n.starts_with(&prefix)) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Removes the directories in `paths`.
fn remove_all(paths: &[PathBuf]) -> Result<()> {
    for p in paths {
        std::fs::remove_dir_all(p).map_err(|e| Error::io(p, "removing a leftover of a save", e))?;
    }
    Ok(())
}

/// Syncs a directory's entries to disk (best effort: not every platform can open a directory).
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

/// A previous checkpoint left aside by a save interrupted between its two renames, if any.
pub(crate) fn interrupted_swap(dir: &Path) -> Option<PathBuf> {
    leftovers(dir, "old").ok().and_then(|v| v.into_iter().next())
}

/// Writes directory `dir` through `write` (given the temporary directory to fill) and renames
/// it into place, replacing an existing `dir` only once the new one is complete. On an error
/// the temporary directory is removed and `dir` is left as it was.
pub(crate) fn write_dir_atomic(dir: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let (parent, _) = split(dir)?;
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, "creating the directory", e))?;
    // Partial writes of crashed saves: never the only copy of anything.
    remove_all(&leftovers(dir, "tmp")?)?;
    let tmp = sibling(dir, "tmp")?;
    std::fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, "creating the temporary directory", e))?;
    let result = write(&tmp).and_then(|()| {
        sync_dir(&tmp);
        if dir.exists() {
            let old = sibling(dir, "old")?;
            if old.exists() {
                remove_all(std::slice::from_ref(&old))?;
            }
            std::fs::rename(dir, &old).map_err(|e| {
                Error::io(dir, format!("moving the previous checkpoint aside to {}", old.display()), e)
            })?;
        } else if dir.symlink_metadata().is_ok() {
            return Err(Error::invalid(dir, "exists but is not a directory, refusing to replace it"));
        }
        std::fs::rename(&tmp, dir).map_err(|e| {
            Error::io(dir, format!("renaming the new checkpoint {} into place", tmp.display()), e)
        })?;
        sync_dir(&parent);
        Ok(())
    });
    match result {
        Ok(()) => remove_all(&leftovers(dir, "old")?),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("orz-atomic-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn write_a(dir: &Path, text: &str) -> Result<()> {
        std::fs::write(dir.join("a"), text).map_err(|e| Error::io(dir, "writing", e))
    }

    #[test]
    fn replaces_only_when_complete_and_cleans_leftovers() {
        let root = scratch("replace");
        let dir = root.join("ck");
        write_dir_atomic(&dir, |t| write_a(t, "1")).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "1");
        // A failing write leaves the previous content and no temporary directory.
        let e = write_dir_atomic(&dir, |t| {
            write_a(t, "2")?;
            Err(Error::invalid(t, "disk full"))
        })
        .unwrap_err();
        assert!(e.to_string().contains("disk full"));
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "1");
        assert!(leftovers(&dir, "tmp").unwrap().is_empty());
        // Leftovers of crashed saves are removed by the next successful one.
        std::fs::create_dir(root.join(".ck.tmp-1")).unwrap();
        std::fs::create_dir(root.join(".ck.old-1")).unwrap();
        assert_eq!(interrupted_swap(&dir), Some(root.join(".ck.old-1")));
        write_dir_atomic(&dir, |t| write_a(t, "3")).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "3");
        let names: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("ck")]);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
