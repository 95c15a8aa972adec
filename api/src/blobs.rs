//! The blob store: program files by SHA-256, as files under
//! `<data-dir>/blobs/<first two hex digits>/<sha256>`. Writes go to a
//! temporary file and are renamed into place, so a blob is whole or absent.

use std::io;
use std::path::PathBuf;

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// Content-addressed storage on the local disk.
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    pub fn open(root: PathBuf) -> io::Result<Self> {
        std::fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    /// The hex SHA-256 of `bytes`, the name they are stored under.
    pub fn digest(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.root.join(&sha256[..2]).join(sha256)
    }

    /// Stores `bytes` (once: an existing blob is kept) and returns its name.
    pub async fn put(&self, bytes: Bytes) -> io::Result<String> {
        let sha256 = Self::digest(&bytes);
        let path = self.path(&sha256);
        if tokio::fs::try_exists(&path).await? {
            return Ok(sha256);
        }
        let dir = path.parent().expect("blob paths have a parent").to_owned();
        tokio::fs::create_dir_all(&dir).await?;
        let temporary = dir.join(format!(".{}.{}", sha256, uuid::Uuid::new_v4().simple()));
        tokio::fs::write(&temporary, &bytes).await?;
        tokio::fs::rename(&temporary, &path).await?;
        Ok(sha256)
    }

    /// Reads a blob. A missing blob is an error: rows only name stored
    /// blobs.
    pub async fn get(&self, sha256: &str) -> io::Result<Bytes> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a sha256"));
        }
        Ok(Bytes::from(tokio::fs::read(self.path(sha256)).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blobs_round_trip_and_are_named_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().join("blobs")).unwrap();
        let name = store.put(Bytes::from_static(b"hello")).await.unwrap();
        assert_eq!(
            name,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(store.put(Bytes::from_static(b"hello")).await.unwrap(), name);
        assert_eq!(&store.get(&name).await.unwrap()[..], b"hello");
        assert!(store.get("../../etc/passwd").await.is_err());
    }
}
