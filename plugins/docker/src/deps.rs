//! The dependency layer of PYTHON programs with a `requirements.txt`: an
//! image `playground-deps:<hash>` built on the environment's image by the
//! engine (without network) from `requirements.txt` and the program's local
//! wheel and sdist files, shared by every run with the same hash.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use bollard::models::BuildInfo;
use bollard::query_parameters::BuildImageOptionsBuilder;
use futures::{Stream, StreamExt};
use playground_executors::{ExecutorError, LogSink, ProgramFile};
use sha2::{Digest, Sha256};

use crate::engine::{Engine, describe, is_connection_error};
use crate::image::image_id;

/// The repository of dependency layer images.
pub const DEPS_REPOSITORY: &str = "playground-deps";

/// The longest a dependency layer may take to build.
const BUILD_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The file that asks for a dependency layer.
pub(crate) const REQUIREMENTS: &str = "requirements.txt";

/// What a dependency layer is built from.
pub(crate) struct LayerSpec<'a> {
    /// The environment's image, as named and as its id.
    pub base_image: &'a str,
    pub base_id: &'a str,
    pub install_command: &'a str,
    pub requirements: &'a [u8],
    /// Local distributions by file name, sorted, to copy into `/deps`.
    pub packages: Vec<(String, &'a [u8])>,
}

impl<'a> LayerSpec<'a> {
    /// The layer a program needs, if it has a `requirements.txt`.
    pub(crate) fn of_program(
        files: &'a [ProgramFile],
        base_image: &'a str,
        base_id: &'a str,
        install_command: &'a str,
    ) -> Result<Option<Self>, ExecutorError> {
        let Some(requirements) = files.iter().find(|f| f.path == REQUIREMENTS) else {
            return Ok(None);
        };
        let mut packages: Vec<(String, &[u8])> = Vec::new();
        for file in files {
            if !(file.path.ends_with(".whl") || file.path.ends_with(".tar.gz")) {
                continue;
            }
            let name = file.path.rsplit('/').next().unwrap_or(&file.path);
            if packages.iter().any(|(n, _)| n == name) {
                return Err(ExecutorError::new(format!(
                    "two of the program's files are named {name}: the dependency layer needs distinct wheel and sdist names"
                )));
            }
            packages.push((name.to_owned(), &file.content));
        }
        packages.sort();
        Ok(Some(Self {
            base_image,
            base_id,
            install_command,
            requirements: &requirements.content,
            packages,
        }))
    }

    /// sha256 over everything the layer is built from.
    pub(crate) fn hash(&self) -> String {
        let mut hasher = Sha256::new();
        let mut field = |bytes: &[u8]| {
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        };
        field(b"playground-deps/1");
        field(self.base_id.as_bytes());
        field(self.install_command.as_bytes());
        field(self.requirements);
        for (name, content) in &self.packages {
            field(name.as_bytes());
            field(content);
        }
        hex::encode(hasher.finalize())
    }

    /// The build context: a Dockerfile and `deps/` (requirements.txt and
    /// the local distributions), nothing else of the program.
    fn context(&self) -> std::io::Result<Vec<u8>> {
        let dockerfile = format!(
            "FROM {base}\nUSER root\nCOPY deps /deps\nRUN {install}\nRUN rm -rf /deps\n",
            base = self.base_image,
            install = self.install_command,
        );
        let mut tar = tar::Builder::new(Vec::new());
        let mut add = |path: &str, content: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut header, path, content)
        };
        add("Dockerfile", dockerfile.as_bytes())?;
        add(&format!("deps/{REQUIREMENTS}"), self.requirements)?;
        for (name, content) in &self.packages {
            add(&format!("deps/{name}"), content)?;
        }
        tar.into_inner()
    }
}

/// The dependency layers this executor built or found, one build per hash
/// at a time.
#[derive(Default)]
pub(crate) struct DependencyLayers {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    n_builds: AtomicU64,
}

impl DependencyLayers {
    /// How many builds were performed (found layers do not count).
    pub(crate) fn n_builds(&self) -> u64 {
        self.n_builds.load(Ordering::Relaxed)
    }

    /// The image of `spec`'s layer, built now unless the engine has it.
    /// Build output goes to `sink` as lines.
    pub(crate) async fn ensure(
        &self,
        engine: &Engine,
        docker: &Docker,
        spec: &LayerSpec<'_>,
        sink: &dyn LogSink,
    ) -> Result<String, ExecutorError> {
        let hash = spec.hash();
        let tag = format!("{DEPS_REPOSITORY}:{hash}");
        let lock = self
            .locks
            .lock()
            .expect("the lock map is never poisoned")
            .entry(hash.clone())
            .or_default()
            .clone();
        let _building = lock.lock().await;
        if image_id(engine, docker, &tag).await?.is_some() {
            sink.system(&format!("using the dependency layer {tag}"));
            return Ok(tag);
        }
        sink.system(&format!(
            "building the dependency layer {tag} from {REQUIREMENTS} on {}",
            spec.base_image
        ));
        self.n_builds.fetch_add(1, Ordering::Relaxed);
        let context = spec.context().map_err(|e| {
            ExecutorError::new(format!("could not pack the dependency layer's files: {e}"))
        })?;
        let options = BuildImageOptionsBuilder::new()
            .t(&tag)
            .networkmode("none")
            .rm(true)
            .forcerm(true)
            .labels(&HashMap::from([("playground.deps", hash.as_str())]))
            .build();
        let build = docker.build_image(
            options,
            None,
            Some(bollard::body_full(bytes::Bytes::from(context))),
        );
        let mut lines = LineBuffer::default();
        let failure =
            match tokio::time::timeout(BUILD_TIMEOUT, follow(build, &mut lines, sink)).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) if is_connection_error(&e) => Some(engine.explain(&e).await.message),
                Ok(Err(e)) => Some(describe(&e)),
                Err(_) => Some(format!(
                    "it took longer than {} minutes",
                    BUILD_TIMEOUT.as_secs() / 60
                )),
            };
        lines.finish(sink);
        if let Some(reason) = failure {
            let mut message =
                format!("building the dependency layer from {REQUIREMENTS} failed: {reason}");
            if !lines.last.is_empty() {
                message.push_str("; its last output: ");
                message.push_str(&Vec::from(lines.last).join(" | "));
            }
            return Err(ExecutorError::new(message));
        }
        match image_id(engine, docker, &tag).await? {
            Some(_) => Ok(tag),
            None => Err(ExecutorError::new(format!(
                "building the dependency layer from {REQUIREMENTS} ended without the image {tag}"
            ))),
        }
    }
}

/// Passes a build's output to `lines` until it ends or fails.
async fn follow(
    mut build: impl Stream<Item = Result<BuildInfo, bollard::errors::Error>> + Unpin,
    lines: &mut LineBuffer,
    sink: &dyn LogSink,
) -> Result<(), bollard::errors::Error> {
    while let Some(info) = build.next().await {
        if let Some(text) = info?.stream {
            lines.push(&text, sink);
        }
    }
    Ok(())
}

/// How many of the last build output lines a failure message quotes.
const N_LAST_LINES: usize = 3;

/// Build output arrives in chunks; the sink gets whole lines, and the last
/// few are kept for an error message.
#[derive(Default)]
struct LineBuffer {
    partial: String,
    last: VecDeque<String>,
}

impl LineBuffer {
    fn push(&mut self, text: &str, sink: &dyn LogSink) {
        self.partial.push_str(text);
        while let Some(end) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=end).collect();
            self.emit(&line, sink);
        }
    }

    fn finish(&mut self, sink: &dyn LogSink) {
        let rest = std::mem::take(&mut self.partial);
        self.emit(&rest, sink);
    }

    fn emit(&mut self, line: &str, sink: &dyn LogSink) {
        let line = strip_colours(line);
        let line = line.trim_end();
        if line.trim().is_empty() {
            return;
        }
        sink.system(line);
        let line = line.trim();
        if line.starts_with("--->") || line.starts_with("Removing intermediate container") {
            return;
        }
        if self.last.len() == N_LAST_LINES {
            self.last.pop_front();
        }
        self.last.push_back(line.to_owned());
    }
}

/// `text` without the terminal colour codes (`ESC [ … m`) the builder
/// wraps error output in.
fn strip_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn file(path: &str, content: &str) -> ProgramFile {
        ProgramFile {
            path: path.to_owned(),
            content: Bytes::from(content.to_owned()),
        }
    }

    fn hash_of(files: &[ProgramFile], base_id: &str, install: &str) -> String {
        LayerSpec::of_program(files, "base", base_id, install)
            .unwrap()
            .unwrap()
            .hash()
    }

    #[test]
    fn programs_without_requirements_need_no_layer() {
        let files = [file("main.py", "print(1)"), file("lib/x.whl", "zip")];
        assert!(
            LayerSpec::of_program(&files, "b", "id", "pip")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn the_hash_covers_base_requirements_command_and_packages_only() {
        let files = vec![
            file("main.py", "print(1)"),
            file(REQUIREMENTS, "x==1"),
            file("wheels/x-1-py3-none-any.whl", "zip"),
        ];
        let hash = hash_of(&files, "sha256:a", "pip");
        let mut other_program = files.clone();
        other_program[0] = file("main.py", "print(2)");
        other_program.push(file("util.py", ""));
        assert_eq!(hash_of(&other_program, "sha256:a", "pip"), hash);
        assert_ne!(hash_of(&files, "sha256:b", "pip"), hash);
        assert_ne!(hash_of(&files, "sha256:a", "pip3"), hash);
        let mut other_requirements = files.clone();
        other_requirements[1] = file(REQUIREMENTS, "x==2");
        assert_ne!(hash_of(&other_requirements, "sha256:a", "pip"), hash);
        let mut other_wheel = files.clone();
        other_wheel[2] = file("wheels/x-1-py3-none-any.whl", "zip2");
        assert_ne!(hash_of(&other_wheel, "sha256:a", "pip"), hash);
        let mut sdist = files.clone();
        sdist.push(file("x-1.tar.gz", "gz"));
        assert_ne!(hash_of(&sdist, "sha256:a", "pip"), hash);
    }

    #[test]
    fn the_context_carries_requirements_and_packages_only() {
        let files = vec![
            file("main.py", "print(1)"),
            file(REQUIREMENTS, "x==1"),
            file("wheels/x-1-py3-none-any.whl", "zip"),
        ];
        let spec = LayerSpec::of_program(&files, "python:3.12", "id", "pip install")
            .unwrap()
            .unwrap();
        let context = spec.context().unwrap();
        let mut archive = tar::Archive::new(context.as_slice());
        let mut names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "Dockerfile",
                "deps/requirements.txt",
                "deps/x-1-py3-none-any.whl"
            ]
        );
    }

    #[test]
    fn colour_codes_are_stripped() {
        assert_eq!(
            strip_colours("\u{1b}[91mWARNING: x\u{1b}[0m done"),
            "WARNING: x done"
        );
        assert_eq!(strip_colours("plain [1m]"), "plain [1m]");
    }

    #[test]
    fn duplicate_package_names_are_refused() {
        let files = [
            file(REQUIREMENTS, "x"),
            file("a/x.whl", "1"),
            file("b/x.whl", "2"),
        ];
        assert!(LayerSpec::of_program(&files, "b", "id", "pip").is_err());
    }
}
