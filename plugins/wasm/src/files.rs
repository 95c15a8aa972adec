//! Program files on disk for the `/work` preopen. A program version's files
//! never change, so each distinct set is written once to a directory named
//! by the SHA-256 of its paths and contents, under `<cache_dir>/files`, and
//! every run of it preopens that directory read-only. (A directory per run
//! cost more than the rest of a trivial run: create, write, unlink, rmdir.)
//! Each executor has its own `files-<pid>-<n>` directory, removed when it is
//! dropped; those of processes that no longer exist are removed at start.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use playground_executors::ProgramFile;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

type Slot = Arc<OnceCell<Result<PathBuf, String>>>;

/// Written file sets, by content hash.
pub(crate) struct FileSets {
    dir: PathBuf,
    sets: Mutex<HashMap<String, Slot>>,
}

impl FileSets {
    /// A fresh directory under `root`, after removing those of processes
    /// that are gone.
    pub(crate) fn new(root: &Path) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        sweep(root);
        let name = format!(
            "files-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        Self {
            dir: root.join(name),
            sets: Mutex::new(HashMap::new()),
        }
    }

    /// The directory holding exactly `files`, written on first use.
    pub(crate) async fn directory(&self, files: &[ProgramFile]) -> Result<PathBuf, String> {
        let mut hasher = Sha256::new();
        for file in files {
            hasher.update((file.path.len() as u64).to_le_bytes());
            hasher.update(file.path.as_bytes());
            hasher.update((file.content.len() as u64).to_le_bytes());
            hasher.update(&file.content);
        }
        let key = hex::encode(hasher.finalize());
        let slot = self
            .sets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let target = self.dir.join(&key);
        let (files, dir) = (files.to_vec(), self.dir.clone());
        let result = slot
            .get_or_init(|| async move {
                tokio::task::spawn_blocking(move || write_set(&dir, &target, &files))
                    .await
                    .unwrap_or_else(|e| Err(format!("writing the program files failed: {e}")))
            })
            .await
            .clone();
        if result.is_err() {
            self.sets
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
        }
        result
    }
}

impl Drop for FileSets {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes the file directories of processes that no longer run (Linux:
/// checked through `/proc`; elsewhere nothing is removed).
fn sweep(root: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("files-"))
            .and_then(|n| n.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Writes `files` to a fresh directory in `dir`, then renames it to
/// `target`, so a run never sees a half-written set.
fn write_set(dir: &Path, target: &Path, files: &[ProgramFile]) -> Result<PathBuf, String> {
    if target.is_dir() {
        return Ok(target.to_owned());
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("could not create {}: {e}", dir.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(dir)
        .map_err(|e| format!("could not create the run's directory: {e}"))?;
    for file in files {
        let relative = Path::new(&file.path);
        if !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(format!(
                "the file path {:?} is not a plain relative path",
                file.path
            ));
        }
        let path = staging.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("could not write {}: {e}", file.path))?;
        }
        std::fs::write(&path, &file.content)
            .map_err(|e| format!("could not write {}: {e}", file.path))?;
    }
    let staged = staging.keep();
    if let Err(e) = std::fs::rename(&staged, target) {
        let _ = std::fs::remove_dir_all(&staged);
        if !target.is_dir() {
            return Err(format!("could not store the program files: {e}"));
        }
    }
    Ok(target.to_owned())
}
