//! The module cache: each module (a program's `.wasm`/`.wat`, or the Python
//! interpreter) is compiled once, serialized to disk under a key made of the
//! SHA-256 of its content and the engine's compatibility hash, and kept in
//! memory as a linked [`InstancePre`] so a run only instantiates.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use wasmtime::{Engine, InstancePre, Linker, Module};

use crate::run::State;

/// Past this many modules in memory the map is emptied (they stay on disk).
const MAX_IN_MEMORY: usize = 4096;

/// Where a module's bytes come from.
pub(crate) enum Source {
    /// A binary module from a program's files.
    Binary(bytes::Bytes),
    /// A text module from a program's files.
    Text(bytes::Bytes),
    /// A binary module in a file on the server (the Python interpreter).
    File(PathBuf),
}

type Slot = Arc<OnceCell<Result<InstancePre<State>, String>>>;

/// A file's length, modification time and content hash.
type FileStamp = (u64, Option<SystemTime>, String);

/// Compiled modules in memory and on disk, for one engine.
pub(crate) struct ModuleCache {
    engine: Engine,
    linker: Linker<State>,
    dir: PathBuf,
    /// The engine's compatibility hash, part of every key.
    engine_hash: String,
    modules: Mutex<HashMap<String, Slot>>,
    /// Content hashes of server files, by path, valid while the file's
    /// length and modification time stay the same.
    file_hashes: Mutex<HashMap<PathBuf, FileStamp>>,
    compilations: AtomicU64,
}

impl ModuleCache {
    pub(crate) fn new(engine: Engine, linker: Linker<State>, dir: PathBuf) -> Self {
        let mut hasher = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_hash = hex::encode(&hasher.0.finalize()[..8]);
        Self {
            engine,
            linker,
            dir,
            engine_hash,
            modules: Mutex::new(HashMap::new()),
            file_hashes: Mutex::new(HashMap::new()),
            compilations: AtomicU64::new(0),
        }
    }

    /// How many modules this cache compiled (not counting loads from disk).
    pub(crate) fn compilations(&self) -> u64 {
        self.compilations.load(Ordering::Relaxed)
    }

    /// The on-disk file of a content hash.
    pub(crate) fn disk_path(&self, content_hash: &str) -> PathBuf {
        self.dir
            .join(format!("{content_hash}-{}.cwasm", self.engine_hash))
    }

    /// The linked module for `source`, compiling or loading it at most once.
    pub(crate) async fn get(
        self: &Arc<Self>,
        source: Source,
    ) -> Result<InstancePre<State>, String> {
        let from_file = matches!(source, Source::File(_));
        let content_hash = match &source {
            Source::Binary(bytes) => sha256_hex(b"wasm", bytes),
            Source::Text(bytes) => sha256_hex(b"wat", bytes),
            Source::File(path) => self.file_hash(path).await?,
        };
        let slot = {
            let mut modules = self.modules.lock().unwrap_or_else(|e| e.into_inner());
            if modules.len() >= MAX_IN_MEMORY && !modules.contains_key(&content_hash) {
                modules.clear();
            }
            modules.entry(content_hash.clone()).or_default().clone()
        };
        let this = self.clone();
        let result = slot
            .get_or_init(|| async move {
                tokio::task::spawn_blocking(move || this.load(&content_hash, source))
                    .await
                    .unwrap_or_else(|e| Err(format!("compiling the module failed: {e}")))
            })
            .await
            .clone();
        if result.is_err() && from_file {
            // A server file may be replaced or fixed later: do not remember.
            self.forget_failed();
        }
        result
    }

    fn forget_failed(&self) {
        let mut modules = self.modules.lock().unwrap_or_else(|e| e.into_inner());
        modules.retain(|_, slot| !matches!(slot.get(), Some(Err(_))));
    }

    /// The content hash of a server file, recomputed only when it changed.
    async fn file_hash(&self, path: &Path) -> Result<String, String> {
        let meta = tokio::fs::metadata(path)
            .await
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let stamp = (meta.len(), meta.modified().ok());
        if let Some((len, modified, hash)) = self
            .file_hashes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
            && (*len, *modified) == stamp
        {
            return Ok(hash.clone());
        }
        let owned = path.to_owned();
        let hash = tokio::task::spawn_blocking(move || {
            std::fs::read(&owned)
                .map(|bytes| sha256_hex(b"wasm", &bytes))
                .map_err(|e| format!("cannot read {}: {e}", owned.display()))
        })
        .await
        .map_err(|e| format!("hashing {} failed: {e}", path.display()))??;
        self.file_hashes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_owned(), (stamp.0, stamp.1, hash.clone()));
        Ok(hash)
    }

    /// Loads a module from disk or compiles (and stores) it, then links it.
    /// Blocking: runs on a blocking thread.
    fn load(&self, content_hash: &str, source: Source) -> Result<InstancePre<State>, String> {
        let path = self.disk_path(content_hash);
        let module = match self.deserialize(&path) {
            Some(module) => module,
            None => {
                let module = self.compile(source)?;
                self.store(&path, &module);
                module
            }
        };
        self.linker
            .instantiate_pre(&module)
            .map_err(|e| format!("the module cannot be linked against WASI preview 1: {e:#}"))
    }

    fn deserialize(&self, path: &Path) -> Option<Module> {
        if !path.is_file() {
            return None;
        }
        // SAFETY: `Module::deserialize_file` trusts the file to be compiled
        // code made by a compatible engine. This file is one this cache
        // wrote itself with `Module::serialize` (written to a temporary name
        // and renamed into place, so it is never seen half-written), under
        // a name made of the SHA-256 of the module's content and this
        // engine's precompile compatibility hash (wasmtime version and
        // settings), in a directory that belongs to the server. Wasmtime
        // also checks the version and settings recorded in the file and
        // refuses a mismatch, which we then treat as a cache miss.
        #[allow(unsafe_code)]
        let loaded = unsafe { Module::deserialize_file(&self.engine, path) };
        match loaded {
            Ok(module) => Some(module),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "discarding an unusable cached module");
                let _ = std::fs::remove_file(path);
                None
            }
        }
    }

    fn compile(&self, source: Source) -> Result<Module, String> {
        let binary = match source {
            Source::Binary(bytes) => bytes.to_vec(),
            Source::Text(text) => wat::parse_bytes(&text)
                .map_err(|e| format!("the module is not valid WebAssembly text: {e}"))?
                .into_owned(),
            Source::File(path) => {
                std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
            }
        };
        self.compilations.fetch_add(1, Ordering::Relaxed);
        Module::new(&self.engine, &binary)
            .map_err(|e| format!("the module is not valid WebAssembly: {e:#}"))
    }

    /// Writes a compiled module to disk; failures only cost a recompile.
    fn store(&self, path: &Path, module: &Module) {
        let result = (|| -> std::io::Result<()> {
            let bytes = module.serialize().map_err(std::io::Error::other)?;
            std::fs::create_dir_all(&self.dir)?;
            let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
            tmp.write_all(&bytes)?;
            tmp.as_file().sync_all()?;
            tmp.persist(path).map_err(|e| e.error)?;
            Ok(())
        })();
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "could not cache a compiled module on disk");
        }
    }
}

/// A stable [`Hasher`] (SHA-256) for the engine's compatibility hash, so the
/// key does not change with the Rust release like `DefaultHasher` may.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
    }
}

fn sha256_hex(kind: &[u8], bytes: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(kind);
    hasher.update([0]);
    hasher.update(bytes);
    hex::encode(hasher.finalize())
}
