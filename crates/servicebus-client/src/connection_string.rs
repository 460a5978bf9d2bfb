//! Service Bus connection strings: `Endpoint=sb://host[:port];SharedAccessKeyName=…;
//! SharedAccessKey=…[;EntityPath=…][;UseDevelopmentEmulator=true]`.
//!
//! Azure's clients speak TLS (AMQPS on 5671, HTTPS on 443) unless `UseDevelopmentEmulator`
//! is set, when they speak plain AMQP and HTTP to the endpoint's port (5672 by default).

use crate::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionString {
    pub host: String,
    /// The port the endpoint names, if any.
    pub port: Option<u16>,
    pub key_name: String,
    pub key: String,
    pub entity_path: Option<String>,
    pub emulator: bool,
}

/// What `hematite serve` answers to by default.
pub const LOCAL_DEFAULT: &str = "Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;";

impl ConnectionString {
    pub fn parse(s: &str) -> Result<ConnectionString, Error> {
        let mut endpoint = None;
        let (mut key_name, mut key, mut entity_path, mut emulator) = (None, None, None, false);
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                Error::Config(format!("connection string part {part:?} has no '='"))
            })?;
            match k.to_ascii_lowercase().as_str() {
                "endpoint" => endpoint = Some(v.to_owned()),
                "sharedaccesskeyname" => key_name = Some(v.to_owned()),
                "sharedaccesskey" => key = Some(v.to_owned()),
                "entitypath" => entity_path = Some(v.to_owned()),
                "usedevelopmentemulator" => emulator = v.eq_ignore_ascii_case("true"),
                _ => {}
            }
        }
        let endpoint = endpoint
            .ok_or_else(|| Error::Config("the connection string has no Endpoint".into()))?;
        let authority = endpoint
            .split_once("://")
            .map_or(endpoint.as_str(), |(_, rest)| rest)
            .trim_end_matches('/');
        let authority = authority.split('/').next().unwrap_or_default();
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() => (
                h.to_owned(),
                Some(p.parse().map_err(|_| {
                    Error::Config(format!("the Endpoint's port {p:?} is not a number"))
                })?),
            ),
            _ => (authority.to_owned(), None),
        };
        if host.is_empty() {
            return Err(Error::Config(
                "the connection string's Endpoint has no host".into(),
            ));
        }
        Ok(ConnectionString {
            host,
            port,
            key_name: key_name.ok_or_else(|| {
                Error::Config("the connection string has no SharedAccessKeyName".into())
            })?,
            key: key.ok_or_else(|| {
                Error::Config("the connection string has no SharedAccessKey".into())
            })?,
            entity_path,
            emulator,
        })
    }

    /// Whether clients use TLS.
    pub fn tls(&self) -> bool {
        !self.emulator
    }

    /// Where AMQP goes: the endpoint's port, else 5672 (emulator) or 5671.
    pub fn amqp_port(&self) -> u16 {
        self.port.unwrap_or(if self.emulator { 5672 } else { 5671 })
    }

    /// The administration API's base URL: `http://host:port` for the emulator (the AMQP
    /// port, which Hematite also answers HTTP on), else `https://host[:port]`.
    pub fn admin_base(&self) -> String {
        match (self.emulator, self.port) {
            (true, _) => format!("http://{}:{}", self.host, self.amqp_port()),
            (false, Some(p)) => format!("https://{}:{p}", self.host),
            (false, None) => format!("https://{}", self.host),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azure_and_emulator_strings() {
        let azure = ConnectionString::parse(
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=abc=",
        )
        .expect("parses");
        assert_eq!(
            (azure.host.as_str(), azure.port, azure.tls()),
            ("ns.servicebus.windows.net", None, true)
        );
        assert_eq!(azure.key, "abc=");
        assert_eq!(
            (azure.amqp_port(), azure.admin_base().as_str()),
            (5671, "https://ns.servicebus.windows.net")
        );
        let local = ConnectionString::parse(LOCAL_DEFAULT).expect("parses");
        assert_eq!(
            (local.amqp_port(), local.admin_base().as_str()),
            (5672, "http://localhost:5672")
        );
        let port = ConnectionString::parse("Endpoint=sb://localhost:5673;SharedAccessKeyName=a;SharedAccessKey=b;UseDevelopmentEmulator=true")
            .expect("parses");
        assert_eq!(port.amqp_port(), 5673);
        for bad in [
            "",
            "Endpoint=sb://h",
            "SharedAccessKeyName=a;SharedAccessKey=b",
            "Endpoint=sb://h:x;SharedAccessKeyName=a;SharedAccessKey=b",
        ] {
            assert!(ConnectionString::parse(bad).is_err(), "{bad}");
        }
    }
}
