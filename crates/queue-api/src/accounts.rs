//! The accounts this server answers for, and their keys.
//!
//! Accounts come from configuration, not from the store: a key is a secret of the deployment.
//! The `AZURITE_ACCOUNTS` format (`name1:key1[:key2];name2:key1`) is accepted so existing setups
//! move over unchanged.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hematite_queue_protocol::auth::SigningKey;

/// The emulator's well-known account (Microsoft's "Use the Azurite emulator" page).
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
pub const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    /// Decoded keys; a request signed with any of them is accepted.
    pub keys: Vec<Vec<u8>>,
    /// `keys`, each made ready to sign with (the HMAC key schedule done once).
    pub signing_keys: Vec<SigningKey>,
    /// The first key as configured, for printing a connection string.
    pub key_b64: String,
}

#[derive(Debug, Clone, Default)]
pub struct Accounts(HashMap<String, Account>);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccountSpecError {
    #[error("account spec {0:?} is not NAME:BASE64KEY[:BASE64KEY2]")]
    Shape(String),
    #[error("the key of account {0:?} is not valid base64")]
    Key(String),
    #[error("account name {0:?} must be 3 to 24 lowercase letters and digits")]
    Name(String),
}

impl Accounts {
    /// Only the well-known development account.
    pub fn development() -> Self {
        let mut a = Accounts::default();
        a.add_spec(&format!("{DEV_ACCOUNT}:{DEV_KEY}"))
            .expect("the well-known key is valid base64");
        a
    }

    /// Adds `NAME:KEY[:KEY2]`.
    pub fn add_spec(&mut self, spec: &str) -> Result<(), AccountSpecError> {
        let mut parts = spec.trim().split(':');
        let name = parts.next().unwrap_or_default().to_owned();
        let keys_b64: Vec<&str> = parts.collect();
        if name.is_empty() || keys_b64.is_empty() || keys_b64.len() > 2 {
            return Err(AccountSpecError::Shape(spec.to_owned()));
        }
        // Azure's rule is 3-24 lowercase alphanumerics; Azurite allows a little more, and so do
        // we for names it accepted, but never characters that break URL routing.
        if name.len() < 3
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        {
            return Err(AccountSpecError::Name(name));
        }
        let keys = keys_b64
            .iter()
            .map(|k| STANDARD.decode(k.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| AccountSpecError::Key(name.clone()))?;
        self.0.insert(
            name.clone(),
            Account {
                name,
                signing_keys: keys.iter().map(|k| SigningKey::new(k)).collect(),
                keys,
                key_b64: keys_b64[0].trim().to_owned(),
            },
        );
        Ok(())
    }

    /// Parses Azurite's `AZURITE_ACCOUNTS` value.
    pub fn add_azurite_list(&mut self, list: &str) -> Result<(), AccountSpecError> {
        for spec in list.split(';').filter(|s| !s.trim().is_empty()) {
            self.add_spec(spec)?;
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Account> {
        self.0.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Account> {
        let mut v: Vec<&Account> = self.0.values().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v.into_iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azurite_list_format() {
        let mut a = Accounts::default();
        a.add_azurite_list("acc1:a2V5MQ==:a2V5Mg==;acc2:a2V5Mw==;")
            .expect("valid");
        assert_eq!(
            a.get("acc1").expect("acc1").keys,
            vec![b"key1".to_vec(), b"key2".to_vec()]
        );
        assert_eq!(a.get("acc2").expect("acc2").keys, vec![b"key3".to_vec()]);
        assert!(matches!(
            a.add_spec("acc3"),
            Err(AccountSpecError::Shape(_))
        ));
        assert!(matches!(
            a.add_spec("acc3:!!"),
            Err(AccountSpecError::Key(_))
        ));
        assert!(matches!(
            a.add_spec("Bad_Name:a2V5"),
            Err(AccountSpecError::Name(_))
        ));
        assert_eq!(
            Accounts::development().get(DEV_ACCOUNT).expect("dev").keys[0].len(),
            64
        );
    }
}
