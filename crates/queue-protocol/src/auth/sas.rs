//! Shared access signatures: service SAS (one queue), account SAS, and user delegation SAS (one
//! queue, signed with a key the service derived for an OAuth caller).
//!
//! The signature is over a string rebuilt from the decoded parameter values, never over the
//! raw query, because clients order and encode parameters as they like. Deciding whether
//! a valid token allows an operation (times, IPs, permissions, stored policies) is left to
//! the front; this module parses, builds strings to sign, and generates tokens.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use time::OffsetDateTime;

use super::sign;
use crate::datetime::format_iso8601_seconds;
use crate::error::ErrorCode;
use crate::version::{ApiVersion, LATEST_KNOWN};

/// The SAS parameters, decoded. Absent optional fields sign as empty strings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SasParams {
    pub sv: String,
    pub st: Option<String>,
    pub se: Option<String>,
    pub sp: Option<String>,
    pub si: Option<String>,
    pub sip: Option<String>,
    pub spr: Option<String>,
    pub ss: Option<String>,
    pub srt: Option<String>,
    pub ses: Option<String>,
    /// The user delegation key a user delegation SAS was signed with: its caller's object id
    /// and tenant, validity, service and version, and the delegated user's tenant.
    pub skoid: Option<String>,
    pub sktid: Option<String>,
    pub skt: Option<String>,
    pub ske: Option<String>,
    pub sks: Option<String>,
    pub skv: Option<String>,
    pub skdutid: Option<String>,
    /// The one user who may use the token (with a bearer token of their own).
    pub sduoid: Option<String>,
    pub sig: String,
}

/// A query that carries `sig` but is not a usable SAS; the service answers 403
/// `AuthenticationFailed`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SasError {
    #[error("the signed version (sv) is missing")]
    MissingVersion,
    #[error("the signed version (sv) {0:?} is not a valid version")]
    InvalidVersion(String),
    #[error("SAS parameter {0} is given more than once")]
    Duplicate(&'static str),
}

impl SasError {
    pub fn code(&self) -> ErrorCode {
        ErrorCode::AuthenticationFailed
    }
}

/// Parameter names in the order the Python SDK emits them, which [`SasParams::to_query`]
/// reproduces so generated tokens match the SDK's byte for byte.
const QUERY_ORDER: [&str; 19] = [
    "st", "se", "sp", "sip", "spr", "sv", "si", "ss", "srt", "ses", "skoid", "sktid", "skt", "ske",
    "sks", "skv", "skdutid", "sduoid", "sig",
];

impl SasParams {
    /// Reads the SAS parameters out of decoded query pairs. `None` when there is no `sig`,
    /// i.e. the request is not using a SAS at all. Names match case-insensitively; other
    /// parameters are ignored.
    pub fn from_query(pairs: &[(String, String)]) -> Option<Result<Self, SasError>> {
        if !pairs.iter().any(|(n, _)| n.eq_ignore_ascii_case("sig")) {
            return None;
        }
        Some(Self::parse(pairs))
    }

    fn parse(pairs: &[(String, String)]) -> Result<Self, SasError> {
        let mut p = SasParams::default();
        let mut sv = None;
        let mut sig = None;
        for (name, value) in pairs {
            let Some(&key) = QUERY_ORDER.iter().find(|k| name.eq_ignore_ascii_case(k)) else {
                continue;
            };
            let slot = match key {
                "sv" => &mut sv,
                "sig" => &mut sig,
                _ => p.field_mut(key),
            };
            if slot.is_some() {
                return Err(SasError::Duplicate(key));
            }
            *slot = Some(value.clone());
        }
        let sv = sv.ok_or(SasError::MissingVersion)?;
        if sv.parse::<ApiVersion>().is_err() {
            return Err(SasError::InvalidVersion(sv));
        }
        p.sv = sv;
        // `from_query` only calls this when a sig is present.
        p.sig = sig.unwrap_or_default();
        Ok(p)
    }

    fn field_mut(&mut self, key: &str) -> &mut Option<String> {
        match key {
            "st" => &mut self.st,
            "se" => &mut self.se,
            "sp" => &mut self.sp,
            "si" => &mut self.si,
            "sip" => &mut self.sip,
            "spr" => &mut self.spr,
            "ss" => &mut self.ss,
            "srt" => &mut self.srt,
            "ses" => &mut self.ses,
            "skoid" => &mut self.skoid,
            "sktid" => &mut self.sktid,
            "skt" => &mut self.skt,
            "ske" => &mut self.ske,
            "sks" => &mut self.sks,
            "skv" => &mut self.skv,
            "skdutid" => &mut self.skdutid,
            _ => &mut self.sduoid,
        }
    }

    fn field(&self, key: &str) -> Option<&str> {
        match key {
            "sv" => Some(&self.sv),
            "sig" => Some(&self.sig),
            "st" => self.st.as_deref(),
            "se" => self.se.as_deref(),
            "sp" => self.sp.as_deref(),
            "si" => self.si.as_deref(),
            "sip" => self.sip.as_deref(),
            "spr" => self.spr.as_deref(),
            "ss" => self.ss.as_deref(),
            "srt" => self.srt.as_deref(),
            "ses" => self.ses.as_deref(),
            "skoid" => self.skoid.as_deref(),
            "sktid" => self.sktid.as_deref(),
            "skt" => self.skt.as_deref(),
            "ske" => self.ske.as_deref(),
            "sks" => self.sks.as_deref(),
            "skv" => self.skv.as_deref(),
            "skdutid" => self.skdutid.as_deref(),
            "sduoid" => self.sduoid.as_deref(),
            _ => None,
        }
    }

    /// A user delegation SAS names the key it was signed with.
    pub fn is_user_delegation(&self) -> bool {
        self.skoid.is_some()
    }

    /// An account SAS names services or resource types; a service SAS never does.
    pub fn is_account_sas(&self) -> bool {
        self.ss.is_some() || self.srt.is_some()
    }

    /// The signed version; an unparsable one (impossible after `from_query`) reads as the
    /// newest rules.
    pub fn version(&self) -> ApiVersion {
        self.sv.parse().unwrap_or(LATEST_KNOWN)
    }

    /// The token as a query string (no leading `?`), values percent-encoded.
    pub fn to_query(&self) -> String {
        QUERY_ORDER
            .iter()
            .filter_map(|&k| self.field(k).map(|v| format!("{k}={}", encode(v))))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// What Python's `urllib.parse.quote` leaves alone: letters, digits, `-_.~` and `/`.
const SAS_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

fn encode(v: &str) -> String {
    utf8_percent_encode(v, SAS_VALUE).to_string()
}

/// The service SAS string to sign for `queue` in `account` (the primary name, without
/// `-secondary`). The layout depends on `sv`: `sip`/`spr` lines from 2015-04-05, and the
/// `/queue` prefix on the resource from 2015-02-21.
pub fn service_sas_string_to_sign(p: &SasParams, account: &str, queue: &str) -> String {
    let sv = p.version();
    let queue = queue.to_ascii_lowercase();
    let resource = if sv >= ApiVersion::V2015_02_21 {
        format!("/queue/{account}/{queue}")
    } else {
        format!("/{account}/{queue}")
    };
    let opt = |o: &Option<String>| o.clone().unwrap_or_default();
    let mut lines = vec![opt(&p.sp), opt(&p.st), opt(&p.se), resource, opt(&p.si)];
    if sv >= ApiVersion::V2015_04_05 {
        lines.push(opt(&p.sip));
        lines.push(opt(&p.spr));
    }
    lines.push(p.sv.clone());
    lines.join("\n")
}

/// The user delegation SAS string to sign for `queue` in `account`: fifteen lines, as the
/// Python, JavaScript and .NET SDKs sign it (`sp st se resource skoid sktid skt ske sks skv
/// skdutid sduoid sip spr sv`).
pub fn user_delegation_string_to_sign(p: &SasParams, account: &str, queue: &str) -> String {
    fn opt(o: &Option<String>) -> &str {
        o.as_deref().unwrap_or("")
    }
    let resource = format!("/queue/{account}/{}", queue.to_ascii_lowercase());
    [
        opt(&p.sp),
        opt(&p.st),
        opt(&p.se),
        &resource,
        opt(&p.skoid),
        opt(&p.sktid),
        opt(&p.skt),
        opt(&p.ske),
        opt(&p.sks),
        opt(&p.skv),
        opt(&p.skdutid),
        opt(&p.sduoid),
        opt(&p.sip),
        opt(&p.spr),
        &p.sv,
    ]
    .join("\n")
}

/// A user delegation key as Get User Delegation Key hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegationKey {
    pub object_id: String,
    pub tenant_id: String,
    /// `YYYY-MM-DDTHH:MM:SSZ`, exactly as signed into the key and echoed by SAS tokens.
    pub start: String,
    pub expiry: String,
    pub service: String,
    pub version: String,
    pub delegated_tenant_id: Option<String>,
}

impl DelegationKey {
    /// The key's value: an HMAC of its fields under the account key. The server derives it
    /// again from a SAS's `sk*` fields to check a token signed with it, so it stores nothing,
    /// and rotating the account key revokes every key derived from it.
    pub fn value(&self, account_key: &super::SigningKey) -> String {
        let fields = [
            self.object_id.as_str(),
            &self.tenant_id,
            &self.start,
            &self.expiry,
            &self.service,
            &self.version,
            self.delegated_tenant_id.as_deref().unwrap_or(""),
        ];
        account_key.sign(&fields.join("\n"))
    }

    /// The key a user delegation SAS names, if it names one whole.
    pub fn from_sas(p: &SasParams) -> Option<Self> {
        Some(DelegationKey {
            object_id: p.skoid.clone()?,
            tenant_id: p.sktid.clone()?,
            start: p.skt.clone()?,
            expiry: p.ske.clone()?,
            service: p.sks.clone()?,
            version: p.skv.clone()?,
            delegated_tenant_id: p.skdutid.clone().filter(|t| !t.is_empty()),
        })
    }
}

/// The account SAS string to sign. Every line ends in `\n`; from 2020-12-06 an encryption
/// scope line (empty for queues) follows the version.
pub fn account_sas_string_to_sign(p: &SasParams, account: &str) -> String {
    fn opt(o: &Option<String>) -> &str {
        o.as_deref().unwrap_or("")
    }
    let mut s = format!(
        "{account}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
        opt(&p.sp),
        opt(&p.ss),
        opt(&p.srt),
        opt(&p.st),
        opt(&p.se),
        opt(&p.sip),
        opt(&p.spr),
        p.sv
    );
    if p.version() >= ApiVersion::V2020_12_06 {
        s.push_str(opt(&p.ses));
        s.push('\n');
    }
    s
}

/// A letter that is not a permission (or resource type) of this kind of SAS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown SAS letter {0:?}")]
pub struct UnknownSasLetter(pub char);

/// Service SAS permissions for a queue: `r` read/peek, `a` add, `u` update, `p` process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServicePermissions {
    pub read: bool,
    pub add: bool,
    pub update: bool,
    pub process: bool,
}

/// Letters are accepted in any order (the SDKs always send `raup` order, so strictness
/// would only break hand-written tokens); the signature covers the string as sent anyway.
impl FromStr for ServicePermissions {
    type Err = UnknownSasLetter;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut p = Self::default();
        for c in s.chars() {
            match c {
                'r' => p.read = true,
                'a' => p.add = true,
                'u' => p.update = true,
                'p' => p.process = true,
                _ => return Err(UnknownSasLetter(c)),
            }
        }
        Ok(p)
    }
}

/// Canonical `raup` order.
impl fmt::Display for ServicePermissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_flags(f, &self.flags())
    }
}

impl ServicePermissions {
    /// Each letter with whether it is granted, in canonical order.
    fn flags(&self) -> [(bool, char); 4] {
        [
            (self.read, 'r'),
            (self.add, 'a'),
            (self.update, 'u'),
            (self.process, 'p'),
        ]
    }

    /// Whether the letter `c` is granted.
    pub fn allows(&self, c: char) -> bool {
        self.flags().iter().any(|&(on, l)| on && l == c)
    }
}

/// Account SAS permissions that matter for queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccountPermissions {
    pub read: bool,
    pub write: bool,
    pub delete: bool,
    pub list: bool,
    pub add: bool,
    pub create: bool,
    pub update: bool,
    pub process: bool,
}

/// Accepts every account SAS letter; those without meaning for queues (`x y t f i`: version
/// delete, permanent delete, tags, filter, immutability) are ignored so a token minted for
/// several services still works here.
impl FromStr for AccountPermissions {
    type Err = UnknownSasLetter;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut p = Self::default();
        for c in s.chars() {
            match c {
                'r' => p.read = true,
                'w' => p.write = true,
                'd' => p.delete = true,
                'l' => p.list = true,
                'a' => p.add = true,
                'c' => p.create = true,
                'u' => p.update = true,
                'p' => p.process = true,
                'x' | 'y' | 't' | 'f' | 'i' => {}
                _ => return Err(UnknownSasLetter(c)),
            }
        }
        Ok(p)
    }
}

/// SDK order: `rwdlacup`.
impl fmt::Display for AccountPermissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_flags(f, &self.flags())
    }
}

impl AccountPermissions {
    /// Each letter with whether it is granted, in canonical order.
    fn flags(&self) -> [(bool, char); 8] {
        [
            (self.read, 'r'),
            (self.write, 'w'),
            (self.delete, 'd'),
            (self.list, 'l'),
            (self.add, 'a'),
            (self.create, 'c'),
            (self.update, 'u'),
            (self.process, 'p'),
        ]
    }

    /// Whether the letter `c` is granted.
    pub fn allows(&self, c: char) -> bool {
        self.flags().iter().any(|&(on, l)| on && l == c)
    }
}

/// Account SAS resource types: `s` service, `c` container (queue), `o` object (message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResourceTypes {
    pub service: bool,
    pub container: bool,
    pub object: bool,
}

impl FromStr for ResourceTypes {
    type Err = UnknownSasLetter;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut t = Self::default();
        for c in s.chars() {
            match c {
                's' => t.service = true,
                'c' => t.container = true,
                'o' => t.object = true,
                _ => return Err(UnknownSasLetter(c)),
            }
        }
        Ok(t)
    }
}

impl fmt::Display for ResourceTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_flags(f, &self.flags())
    }
}

impl ResourceTypes {
    /// Each letter with whether it is granted, in canonical order.
    fn flags(&self) -> [(bool, char); 3] {
        [
            (self.service, 's'),
            (self.container, 'c'),
            (self.object, 'o'),
        ]
    }

    /// Whether the letter `c` is granted.
    pub fn allows(&self, c: char) -> bool {
        self.flags().iter().any(|&(on, l)| on && l == c)
    }
}

fn write_flags(f: &mut fmt::Formatter<'_>, flags: &[(bool, char)]) -> fmt::Result {
    for &(on, c) in flags {
        if on {
            fmt::Write::write_char(f, c)?;
        }
    }
    Ok(())
}

/// Parses `sip`: one address, or `start-end`. Both ends must be the same family.
pub fn parse_ip_range(s: &str) -> Option<(IpAddr, IpAddr)> {
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
        None => {
            let a: IpAddr = s.parse().ok()?;
            (a, a)
        }
    };
    match (a, b) {
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => Some((a, b)),
        _ => None,
    }
}

/// Whether `ip` falls in an inclusive range from [`parse_ip_range`]. An IPv4-mapped IPv6
/// client address (dual-stack sockets) is compared as IPv4.
pub fn ip_in_range(ip: IpAddr, range: (IpAddr, IpAddr)) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (ip, range.0, range.1) {
        (IpAddr::V4(x), IpAddr::V4(lo), IpAddr::V4(hi)) => lo <= x && x <= hi,
        (IpAddr::V6(x), IpAddr::V6(lo), IpAddr::V6(hi)) => lo <= x && x <= hi,
        _ => false,
    }
}

/// Generates a service SAS for one queue, like the SDKs' `generate_queue_sas`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSasBuilder {
    pub version: ApiVersion,
    pub permissions: Option<ServicePermissions>,
    pub start: Option<OffsetDateTime>,
    pub expiry: Option<OffsetDateTime>,
    /// A stored access policy id (`si`).
    pub identifier: Option<String>,
    /// `sip`: an address or `a-b` range.
    pub ip: Option<String>,
    /// `spr`: `https` or `https,http`.
    pub protocol: Option<String>,
}

impl Default for ServiceSasBuilder {
    fn default() -> Self {
        Self {
            version: LATEST_KNOWN,
            permissions: None,
            start: None,
            expiry: None,
            identifier: None,
            ip: None,
            protocol: None,
        }
    }
}

impl ServiceSasBuilder {
    /// The signed parameters, `sig` included.
    pub fn to_params(&self, account: &str, queue: &str, key: &[u8]) -> SasParams {
        let mut p = SasParams {
            sv: self.version.to_string(),
            st: self.start.map(format_iso8601_seconds),
            se: self.expiry.map(format_iso8601_seconds),
            sp: self.permissions.map(|p| p.to_string()),
            si: self.identifier.clone(),
            sip: self.ip.clone(),
            spr: self.protocol.clone(),
            ..SasParams::default()
        };
        p.sig = sign(key, &service_sas_string_to_sign(&p, account, queue));
        p
    }

    /// The token as a query string, without the leading `?`.
    pub fn to_query(&self, account: &str, queue: &str, key: &[u8]) -> String {
        self.to_params(account, queue, key).to_query()
    }
}

/// Generates an account SAS, like the SDKs' `generate_account_sas`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSasBuilder {
    pub version: ApiVersion,
    /// `ss`, e.g. `q`.
    pub services: String,
    pub resource_types: ResourceTypes,
    pub permissions: AccountPermissions,
    pub start: Option<OffsetDateTime>,
    pub expiry: Option<OffsetDateTime>,
    pub ip: Option<String>,
    pub protocol: Option<String>,
    /// `ses`; unused by queues, signed as an empty line when absent.
    pub encryption_scope: Option<String>,
}

impl Default for AccountSasBuilder {
    fn default() -> Self {
        Self {
            version: LATEST_KNOWN,
            services: "q".into(),
            resource_types: ResourceTypes::default(),
            permissions: AccountPermissions::default(),
            start: None,
            expiry: None,
            ip: None,
            protocol: None,
            encryption_scope: None,
        }
    }
}

impl AccountSasBuilder {
    /// The signed parameters, `sig` included.
    pub fn to_params(&self, account: &str, key: &[u8]) -> SasParams {
        let mut p = SasParams {
            sv: self.version.to_string(),
            st: self.start.map(format_iso8601_seconds),
            se: self.expiry.map(format_iso8601_seconds),
            sp: Some(self.permissions.to_string()),
            sip: self.ip.clone(),
            spr: self.protocol.clone(),
            ss: Some(self.services.clone()),
            srt: Some(self.resource_types.to_string()),
            ses: self.encryption_scope.clone(),
            ..SasParams::default()
        };
        p.sig = sign(key, &account_sas_string_to_sign(&p, account));
        p
    }

    /// The token as a query string, without the leading `?`.
    pub fn to_query(&self, account: &str, key: &[u8]) -> String {
        self.to_params(account, key).to_query()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::test_support::dev_key;
    use crate::auth::verify;
    use crate::query::decode_query;
    use time::macros::datetime;

    const ACCOUNT: &str = "devstoreaccount1";

    fn params_of(query: &str) -> SasParams {
        SasParams::from_query(&decode_query(query, false))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn vector_6_service_sas() {
        let b = ServiceSasBuilder {
            permissions: Some("raup".parse().unwrap()),
            start: Some(datetime!(2024-01-01 00:00:00 UTC)),
            expiry: Some(datetime!(2030-01-01 00:00:00 UTC)),
            protocol: Some("https,http".into()),
            ..ServiceSasBuilder::default()
        };
        let token = b.to_query(ACCOUNT, "myqueue", &dev_key());
        assert_eq!(
            token,
            "st=2024-01-01T00%3A00%3A00Z&se=2030-01-01T00%3A00%3A00Z&sp=raup&spr=https%2Chttp&sv=2026-10-06&sig=/WjM2Q3ERoPxcSJ6MLYViU5ZGXZ2opBixlqQfjcb0GA%3D"
        );
        // The server side: parse the token back and verify it.
        let p = params_of(&token);
        assert!(!p.is_account_sas());
        let sts = service_sas_string_to_sign(&p, ACCOUNT, "myqueue");
        assert_eq!(
            sts,
            "raup\n2024-01-01T00:00:00Z\n2030-01-01T00:00:00Z\n/queue/devstoreaccount1/myqueue\n\n\nhttps,http\n2026-10-06"
        );
        assert!(verify(&dev_key(), &sts, &p.sig));
        assert_eq!(p.sig, "/WjM2Q3ERoPxcSJ6MLYViU5ZGXZ2opBixlqQfjcb0GA=");
    }

    #[test]
    fn vector_7_stored_policy_only() {
        let b = ServiceSasBuilder {
            identifier: Some("policy1".into()),
            ..ServiceSasBuilder::default()
        };
        let token = b.to_query(ACCOUNT, "myqueue", &dev_key());
        assert_eq!(
            token,
            "sv=2026-10-06&si=policy1&sig=RUizo2YvikpGsc55h5tWeW8UaCt1brG27jKAF%2B2PTLU%3D"
        );
        let p = params_of(&token);
        let sts = service_sas_string_to_sign(&p, ACCOUNT, "MyQueue");
        assert_eq!(
            sts,
            "\n\n\n/queue/devstoreaccount1/myqueue\npolicy1\n\n\n2026-10-06"
        );
        assert!(verify(&dev_key(), &sts, &p.sig));
    }

    #[test]
    fn vector_8_account_sas() {
        let b = AccountSasBuilder {
            resource_types: "sco".parse().unwrap(),
            permissions: "rwdlacup".parse().unwrap(),
            start: Some(datetime!(2024-01-01 00:00:00 UTC)),
            expiry: Some(datetime!(2030-01-01 00:00:00 UTC)),
            ..AccountSasBuilder::default()
        };
        let token = b.to_query(ACCOUNT, &dev_key());
        assert_eq!(
            token,
            "st=2024-01-01T00%3A00%3A00Z&se=2030-01-01T00%3A00%3A00Z&sp=rwdlacup&sv=2026-10-06&ss=q&srt=sco&sig=4C4uLMY8dDmiUi3D30SuH4k9KU6AP60V3YRhNgk4wo0%3D"
        );
        let p = params_of(&token);
        assert!(p.is_account_sas());
        let sts = account_sas_string_to_sign(&p, ACCOUNT);
        assert_eq!(
            sts,
            "devstoreaccount1\nrwdlacup\nq\nsco\n2024-01-01T00:00:00Z\n2030-01-01T00:00:00Z\n\n\n2026-10-06\n\n"
        );
        assert!(verify(&dev_key(), &sts, &p.sig));
    }

    #[test]
    fn service_sas_version_forms() {
        let mut p = SasParams {
            sv: "2015-02-21".into(),
            st: Some("s".into()),
            se: Some("e".into()),
            sp: Some("r".into()),
            si: Some("i".into()),
            sip: Some("1.2.3.4".into()),
            spr: Some("https".into()),
            ..SasParams::default()
        };
        // 2015-02-21: /queue prefix, no sip/spr lines.
        assert_eq!(
            service_sas_string_to_sign(&p, "a", "q"),
            "r\ns\ne\n/queue/a/q\ni\n2015-02-21"
        );
        p.sv = "2014-02-14".into();
        assert_eq!(
            service_sas_string_to_sign(&p, "a", "q"),
            "r\ns\ne\n/a/q\ni\n2014-02-14"
        );
        p.sv = "2012-02-12".into();
        assert_eq!(
            service_sas_string_to_sign(&p, "a", "q"),
            "r\ns\ne\n/a/q\ni\n2012-02-12"
        );
        p.sv = "2015-04-05".into();
        assert_eq!(
            service_sas_string_to_sign(&p, "a", "q"),
            "r\ns\ne\n/queue/a/q\ni\n1.2.3.4\nhttps\n2015-04-05"
        );
    }

    #[test]
    fn account_sas_version_forms() {
        let mut p = SasParams {
            sv: "2020-10-02".into(),
            sp: Some("r".into()),
            ss: Some("bq".into()),
            srt: Some("s".into()),
            se: Some("e".into()),
            ses: Some("scope".into()),
            ..SasParams::default()
        };
        assert_eq!(
            account_sas_string_to_sign(&p, "a"),
            "a\nr\nbq\ns\n\ne\n\n\n2020-10-02\n"
        );
        p.sv = "2020-12-06".into();
        assert_eq!(
            account_sas_string_to_sign(&p, "a"),
            "a\nr\nbq\ns\n\ne\n\n\n2020-12-06\nscope\n"
        );
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn from_query_cases() {
        assert_eq!(SasParams::from_query(&pairs(&[("sv", "2020-01-01")])), None);
        assert_eq!(SasParams::from_query(&pairs(&[])), None);
        assert_eq!(
            SasParams::from_query(&pairs(&[("sig", "x")])),
            Some(Err(SasError::MissingVersion))
        );
        assert_eq!(
            SasParams::from_query(&pairs(&[("sig", "x"), ("sv", "2020-1-1")])),
            Some(Err(SasError::InvalidVersion("2020-1-1".into())))
        );
        assert_eq!(
            SasParams::from_query(&pairs(&[
                ("sig", "x"),
                ("sv", "2020-01-01"),
                ("sp", "r"),
                ("SP", "a")
            ])),
            Some(Err(SasError::Duplicate("sp")))
        );
        assert_eq!(
            SasParams::from_query(&pairs(&[("sig", "x"), ("sig", "y"), ("sv", "2020-01-01")])),
            Some(Err(SasError::Duplicate("sig")))
        );
        let p = SasParams::from_query(&pairs(&[
            ("comp", "metadata"),
            ("SV", "2020-01-01"),
            ("Sig", "s"),
            ("srt", "c"),
            ("timeout", "5"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            p,
            SasParams {
                sv: "2020-01-01".into(),
                srt: Some("c".into()),
                sig: "s".into(),
                ..SasParams::default()
            }
        );
        assert!(p.is_account_sas());
        assert_eq!(p.version(), ApiVersion::new(2020, 1, 1));
        assert_eq!(
            SasError::MissingVersion.code(),
            ErrorCode::AuthenticationFailed
        );
    }

    #[test]
    fn query_encoding_round_trips() {
        let p = SasParams {
            sv: "2026-10-06".into(),
            si: Some("a b&c=d+é".into()),
            sig: "x/+=".into(),
            ..SasParams::default()
        };
        let q = p.to_query();
        assert_eq!(q, "sv=2026-10-06&si=a%20b%26c%3Dd%2B%C3%A9&sig=x/%2B%3D");
        assert_eq!(params_of(&q), p);
    }

    #[test]
    fn permissions_parse_and_display() {
        let p: ServicePermissions = "pura".parse().unwrap();
        assert_eq!(
            p,
            ServicePermissions {
                read: true,
                add: true,
                update: true,
                process: true
            }
        );
        assert_eq!(p.to_string(), "raup");
        assert_eq!(
            "".parse::<ServicePermissions>().map(|p| p.to_string()),
            Ok(String::new())
        );
        assert_eq!(
            "rw".parse::<ServicePermissions>(),
            Err(UnknownSasLetter('w'))
        );
        assert_eq!(
            "R".parse::<ServicePermissions>(),
            Err(UnknownSasLetter('R'))
        );

        let a: AccountPermissions = "rwdxylacuptfi".parse().unwrap();
        assert_eq!(a.to_string(), "rwdlacup");
        let only_list: AccountPermissions = "l".parse().unwrap();
        assert_eq!(
            only_list,
            AccountPermissions {
                list: true,
                ..Default::default()
            }
        );
        assert_eq!(
            "rz".parse::<AccountPermissions>(),
            Err(UnknownSasLetter('z'))
        );

        let t: ResourceTypes = "os".parse().unwrap();
        assert_eq!(
            t,
            ResourceTypes {
                service: true,
                container: false,
                object: true
            }
        );
        assert_eq!(t.to_string(), "so");
        assert_eq!("sct".parse::<ResourceTypes>(), Err(UnknownSasLetter('t')));
    }

    #[test]
    fn ip_ranges() {
        let v4 = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            parse_ip_range("1.2.3.4"),
            Some((v4("1.2.3.4"), v4("1.2.3.4")))
        );
        assert_eq!(
            parse_ip_range("1.2.3.4-1.2.3.9"),
            Some((v4("1.2.3.4"), v4("1.2.3.9")))
        );
        assert_eq!(parse_ip_range("::1"), Some((v4("::1"), v4("::1"))));
        assert_eq!(parse_ip_range("::1-::ff"), Some((v4("::1"), v4("::ff"))));
        for bad in [
            "",
            "1.2.3",
            "1.2.3.4-",
            "-1.2.3.4",
            "1.2.3.4-::1",
            "a-b",
            "1.2.3.4 - 1.2.3.5",
        ] {
            assert_eq!(parse_ip_range(bad), None, "{bad}");
        }
        let r = parse_ip_range("10.0.0.5-10.0.0.9").unwrap();
        assert!(ip_in_range(v4("10.0.0.5"), r));
        assert!(ip_in_range(v4("10.0.0.9"), r));
        assert!(!ip_in_range(v4("10.0.0.10"), r));
        assert!(!ip_in_range(v4("10.0.0.4"), r));
        assert!(ip_in_range(v4("::ffff:10.0.0.7"), r));
        assert!(!ip_in_range(v4("::1"), r));
        assert!(ip_in_range(v4("::5"), parse_ip_range("::1-::ff").unwrap()));
    }

    #[test]
    fn builder_options_reach_the_token() {
        let b = ServiceSasBuilder {
            version: ApiVersion::V2015_04_05,
            permissions: Some(ServicePermissions {
                read: true,
                ..Default::default()
            }),
            expiry: Some(datetime!(2030-01-01 00:00:00 UTC)),
            ip: Some("1.2.3.4".into()),
            protocol: Some("https".into()),
            ..ServiceSasBuilder::default()
        };
        let p = b.to_params("acct", "q", b"key");
        assert_eq!(
            service_sas_string_to_sign(&p, "acct", "q"),
            "r\n\n2030-01-01T00:00:00Z\n/queue/acct/q\n\n1.2.3.4\nhttps\n2015-04-05"
        );
        assert!(verify(
            b"key",
            &service_sas_string_to_sign(&p, "acct", "q"),
            &p.sig
        ));
        assert_eq!(
            p.to_query(),
            format!(
                "se=2030-01-01T00%3A00%3A00Z&sp=r&sip=1.2.3.4&spr=https&sv=2015-04-05&sig={}",
                encode(&p.sig)
            )
        );
        let a = AccountSasBuilder {
            encryption_scope: Some("sc".into()),
            ..AccountSasBuilder::default()
        };
        let ap = a.to_params("acct", b"key");
        assert_eq!(ap.ses.as_deref(), Some("sc"));
        assert_eq!(ap.sp.as_deref(), Some(""));
        assert!(verify(
            b"key",
            &account_sas_string_to_sign(&ap, "acct"),
            &ap.sig
        ));
    }
}
