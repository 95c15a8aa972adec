//! Credentials: secrets a user keeps for runs, encrypted at rest with
//! AES-256-GCM (a fresh random nonce per value). Values are write-only
//! through the API.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use chrono::Utc;
use playground_entities::credentials;
use playground_policies::{Action, Grant, Kind};
use rand::RngCore;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::app::App;
use crate::auth::Principal;
use crate::authz;
use crate::error::{ApiError, ApiResult};
use crate::validation;

pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// Encrypts and decrypts credential values.
pub struct Vault {
    cipher: Aes256Gcm,
}

impl Vault {
    /// A vault keyed by the SHA-256 of `secret`.
    pub fn new(secret: &[u8]) -> Self {
        let key: [u8; 32] = Sha256::digest(secret).into();
        Self {
            cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(key)),
        }
    }

    /// (nonce, ciphertext) of `plaintext`.
    pub fn seal(&self, plaintext: &[u8]) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(&Nonce::from(nonce), plaintext)
            .map_err(|_| anyhow::anyhow!("encrypting a credential failed"))?;
        Ok((nonce.to_vec(), ciphertext))
    }

    pub fn open(&self, nonce: &[u8], ciphertext: &[u8]) -> anyhow::Result<Vec<u8>> {
        let Ok(nonce) = <[u8; 12]>::try_from(nonce) else {
            anyhow::bail!("a stored credential has a malformed nonce");
        };
        self.cipher
            .decrypt(&Nonce::from(nonce), ciphertext)
            .map_err(|_| {
                anyhow::anyhow!(
                    "a stored credential cannot be decrypted with this server's secret key"
                )
            })
    }
}

pub async fn create(
    app: &App,
    principal: &Principal,
    name: &str,
    value: &str,
) -> ApiResult<credentials::Model> {
    authz::require(app, principal, Kind::Credential, Action::Create)?;
    let name = validation::env_var_name("name", name.trim())?;
    if value.is_empty() || value.len() > MAX_VALUE_BYTES {
        return Err(ApiError::bad_input(format!(
            "value must be 1 to {MAX_VALUE_BYTES} bytes long"
        )));
    }
    let exists = credentials::Entity::find()
        .filter(credentials::Column::OwnerId.eq(principal.id()))
        .filter(credentials::Column::Name.eq(&name))
        .one(&app.read)
        .await?
        .is_some();
    if exists {
        return Err(ApiError::conflict(format!(
            "you already have a credential named {name}: delete it first or pick another name"
        )));
    }
    let (nonce, ciphertext) = app
        .vault
        .seal(value.as_bytes())
        .map_err(ApiError::internal)?;
    Ok(credentials::ActiveModel {
        id: Set(Uuid::now_v7()),
        owner_id: Set(principal.id()),
        name: Set(name),
        nonce: Set(nonce),
        ciphertext: Set(ciphertext),
        created_at: Set(Utc::now()),
    }
    .insert(&app.db)
    .await?)
}

pub async fn list(app: &App, principal: &Principal) -> ApiResult<Vec<credentials::Model>> {
    authz::require(app, principal, Kind::Credential, Action::Create)?;
    Ok(credentials::Entity::find()
        .filter(credentials::Column::OwnerId.eq(principal.id()))
        .order_by_asc(credentials::Column::Name)
        .all(&app.read)
        .await?)
}

pub async fn delete(app: &App, principal: &Principal, id: Uuid) -> ApiResult<bool> {
    let Some(credential) = credentials::Entity::find_by_id(id).one(&app.read).await? else {
        return Err(ApiError::not_found("credential"));
    };
    let grant = if credential.owner_id == principal.id() {
        Grant::Admin
    } else {
        Grant::None
    };
    authz::check(app, principal, Kind::Credential, Action::Delete, grant)?;
    credentials::Entity::delete_by_id(id).exec(&app.db).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::Vault;

    #[test]
    fn sealed_values_open_only_with_the_same_key() {
        let vault = Vault::new(b"key one");
        let (nonce, ciphertext) = vault.seal(b"hunter2").unwrap();
        assert!(!ciphertext.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(vault.open(&nonce, &ciphertext).unwrap(), b"hunter2");
        assert!(Vault::new(b"key two").open(&nonce, &ciphertext).is_err());
    }
}
