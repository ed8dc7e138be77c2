//! File writes that never leave a half-written file behind: write a temporary file in the
//! same folder, flush it to disk, then rename it over the destination.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically: after a crash either the old file or the new
/// one is there, never a torn one. Missing parent folders are created.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_all_atomic(&[(path, bytes)])
}

/// Writes several files, all or none: each is first written to a temporary file beside its
/// destination and flushed to disk; only when every one is written are they renamed over
/// their destinations. On any failure before the renames, no destination is touched and
/// no temporary file is left. Missing parent folders are created.
pub fn write_all_atomic(files: &[(&Path, &[u8])]) -> Result<()> {
    let mut staged: Vec<(PathBuf, &Path)> = Vec::new();
    let discard = |staged: &[(PathBuf, &Path)]| staged.iter().for_each(|(tmp, _)| drop(std::fs::remove_file(tmp)));
    for (i, &(path, bytes)) in files.iter().enumerate() {
        match stage(path, bytes, i) {
            Ok(tmp) => staged.push((tmp, path)),
            Err(e) => {
                discard(&staged);
                return Err(e);
            }
        }
    }
    for (i, (tmp, path)) in staged.iter().enumerate() {
        if let Err(e) = std::fs::rename(tmp, path) {
            discard(&staged[i..]);
            return Err(Error::file(path, format!("cannot write: {e}")));
        }
    }
    Ok(())
}

/// Writes `bytes` to the `k`-th temporary file beside `path`, flushed to disk; returns its
/// path.
fn stage(path: &Path, bytes: &[u8], k: usize) -> Result<PathBuf> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::file(parent, format!("cannot create the folder: {e}")))?;
    let name = path.file_name().ok_or_else(|| Error::file(path, "not a file name"))?;
    if path.is_dir() {
        return Err(Error::file(path, "is a folder; give a file name"));
    }
    let tmp = parent.join(format!(".{}.tmp-{}-{k}", name.to_string_lossy(), std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    written.map(|()| tmp.clone()).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::file(path, format!("cannot write: {e}"))
    })
}

/// Reads a whole file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))
}
