//! The blob store: program files by SHA-256, as files under
//! `<data-dir>/blobs/<first two hex digits>/<sha256>`. Writes go to a
//! temporary file and are renamed into place, so a blob is whole or absent.
//!
//! With PostgreSQL, where several servers share one database, blobs are
//! also stored in the `blobs` table and the directory is each server's
//! cache of it: a server reads a blob another server stored from the
//! database once, then from its disk.

use std::io;
use std::path::PathBuf;

use bytes::Bytes;
use playground_entities::blobs;
use sea_orm::{DatabaseConnection, EntityTrait, Set};
use sha2::{Digest, Sha256};

/// Content-addressed storage.
pub struct BlobStore {
    root: PathBuf,
    shared: Option<DatabaseConnection>,
}

impl BlobStore {
    /// A store in `root`, shared through `shared` when several servers use
    /// one database.
    pub fn open(root: PathBuf, shared: Option<DatabaseConnection>) -> io::Result<Self> {
        std::fs::create_dir_all(&root)?;
        Ok(Self { root, shared })
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
        if let Some(db) = &self.shared {
            blobs::Entity::insert(blobs::ActiveModel {
                sha256: Set(sha256.clone()),
                content: Set(bytes.to_vec()),
            })
            .on_conflict_do_nothing()
            .exec(db)
            .await
            .map_err(io::Error::other)?;
        }
        self.write_local(&sha256, &bytes).await?;
        Ok(sha256)
    }

    async fn write_local(&self, sha256: &str, bytes: &[u8]) -> io::Result<()> {
        let path = self.path(sha256);
        if tokio::fs::try_exists(&path).await? {
            return Ok(());
        }
        let dir = path.parent().expect("blob paths have a parent").to_owned();
        tokio::fs::create_dir_all(&dir).await?;
        let temporary = dir.join(format!(".{}.{}", sha256, uuid::Uuid::new_v4().simple()));
        tokio::fs::write(&temporary, bytes).await?;
        tokio::fs::rename(&temporary, &path).await
    }

    /// Reads a blob. A missing blob is an error: rows only name stored
    /// blobs.
    pub async fn get(&self, sha256: &str) -> io::Result<Bytes> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a sha256"));
        }
        match tokio::fs::read(self.path(sha256)).await {
            Ok(bytes) => return Ok(Bytes::from(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.shared.is_some() => {}
            Err(e) => return Err(e),
        }
        let db = self.shared.as_ref().expect("checked above");
        let row = blobs::Entity::find_by_id(sha256.to_owned())
            .one(db)
            .await
            .map_err(io::Error::other)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such blob"))?;
        self.write_local(sha256, &row.content).await?;
        Ok(Bytes::from(row.content))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blobs_round_trip_and_are_named_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().join("blobs"), None).unwrap();
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
