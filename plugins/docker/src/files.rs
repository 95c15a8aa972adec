//! A run's program files on the server's disk: written under
//! `<work_dir>/<run id>/` readable by any user (the program runs
//! unprivileged), bind-mounted read-only at `/work`, removed after the run.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use playground_executors::ProgramFile;

/// The directory of one run under `work_dir`.
pub(crate) fn run_dir(work_dir: &Path, run_id: &str) -> PathBuf {
    work_dir.join(dir_name(run_id))
}

/// Writes `files` into a fresh [`run_dir`] (replacing what an earlier
/// attempt left) and returns it; on failure nothing of it is left.
pub(crate) async fn write(
    work_dir: &Path,
    run_id: &str,
    files: &[ProgramFile],
) -> io::Result<PathBuf> {
    let dir = run_dir(work_dir, run_id);
    let (work_dir, files, target) = (work_dir.to_owned(), files.to_vec(), dir.clone());
    tokio::task::spawn_blocking(move || {
        let written = write_blocking(&work_dir, &target, &files);
        if written.is_err() {
            let _ = fs::remove_dir_all(&target);
        }
        written
    })
    .await
    .map_err(io::Error::other)??;
    Ok(dir)
}

/// Removes a run's directory; a missing one is fine.
pub(crate) async fn remove(dir: PathBuf) -> io::Result<()> {
    tokio::task::spawn_blocking(move || match fs::remove_dir_all(&dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    })
    .await
    .map_err(io::Error::other)?
}

fn write_blocking(work_dir: &Path, dir: &Path, files: &[ProgramFile]) -> io::Result<()> {
    fs::create_dir_all(work_dir)?;
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    create_dir(dir)?;
    for file in files {
        let relative = relative_path(&file.path)?;
        let path = dir.join(&relative);
        let mut parent = dir.to_owned();
        for component in relative.parent().into_iter().flat_map(Path::components) {
            parent.push(component);
            if !parent.is_dir() {
                create_dir(&parent)?;
            }
        }
        fs::write(&path, &file.content)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
    }
    Ok(())
}

fn create_dir(path: &Path) -> io::Result<()> {
    fs::create_dir(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
}

/// A program file's path, refused if it could leave the run's directory.
fn relative_path(path: &str) -> io::Result<PathBuf> {
    let relative = Path::new(path);
    let normal = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if path.is_empty() || !normal {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("the program file path {path:?} is not a relative path inside the program"),
        ));
    }
    Ok(relative.to_owned())
}

/// A directory name for a run id: the id itself when it is plain, else its
/// hex encoding.
fn dir_name(run_id: &str) -> String {
    let plain = !run_id.is_empty()
        && run_id != "."
        && run_id != ".."
        && run_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if plain {
        run_id.to_owned()
    } else {
        format!("x{}", hex::encode(run_id))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use bytes::Bytes;

    use super::*;

    fn file(path: &str, content: &str) -> ProgramFile {
        ProgramFile {
            path: path.to_owned(),
            content: Bytes::from(content.to_owned()),
        }
    }

    #[tokio::test]
    async fn files_are_world_readable_and_replaced_per_attempt() {
        let root = tempfile::tempdir().unwrap();
        let work = root.path().join("work");
        let dir = write(&work, "run-1", &[file("stale.txt", "old")])
            .await
            .unwrap();
        let dir2 = write(
            &work,
            "run-1",
            &[file("main.py", "print(1)"), file("pkg/sub/mod.py", "X = 1")],
        )
        .await
        .unwrap();
        assert_eq!(dir, dir2);
        assert!(!dir.join("stale.txt").exists());
        assert_eq!(
            fs::read_to_string(dir.join("pkg/sub/mod.py")).unwrap(),
            "X = 1"
        );
        for (path, mode) in [
            (dir.clone(), 0o755),
            (dir.join("pkg"), 0o755),
            (dir.join("pkg/sub"), 0o755),
            (dir.join("main.py"), 0o644),
        ] {
            let actual = fs::metadata(&path).unwrap().mode() & 0o777;
            assert_eq!(actual, mode, "{}", path.display());
        }
        remove(dir.clone()).await.unwrap();
        assert!(!dir.exists());
        remove(dir).await.unwrap();
    }

    #[tokio::test]
    async fn paths_leaving_the_directory_are_refused() {
        let root = tempfile::tempdir().unwrap();
        for path in ["../x", "/etc/passwd", "a/../../x", ""] {
            let error = write(root.path(), "run", &[file(path, "x")])
                .await
                .unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{path}");
            assert!(!run_dir(root.path(), "run").exists(), "{path}");
        }
    }

    #[test]
    fn odd_run_ids_become_plain_names() {
        assert_eq!(dir_name("0190-abc"), "0190-abc");
        assert_eq!(dir_name("../x"), format!("x{}", hex::encode("../x")));
        assert_eq!(dir_name(".."), format!("x{}", hex::encode("..")));
    }
}
