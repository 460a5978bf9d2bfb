//! Who is calling, and may they do this?
//!
//! Authentication (digest §6): Shared Key and Shared Key Lite signatures over the request, account
//! SAS and service SAS tokens in the query (with stored access policies through `si`). Every
//! signature is compared in constant time. The tolerant retries the digest recommends (ordinal
//! header order, `+` as space, the `-secondary` account name in the resource) are tried only after
//! the exact form fails, so a correct client costs one HMAC.
//!
//! Authorization maps each operation to what a SAS must grant (digest §6.4, §6.5).

use std::borrow::Cow;
use std::net::IpAddr;

use hematite_engine::{Engine, QueueRef, Timestamp};
use hematite_queue_protocol::auth::sas::{
    self, AccountPermissions, ResourceTypes, SasParams, ServicePermissions,
};
use hematite_queue_protocol::auth::shared_key::{
    self, AuthScheme, AuthorizationHeader, SignableRequest, Variant,
};
use hematite_queue_protocol::datetime;
use hematite_queue_protocol::error::ErrorCode;
use hematite_queue_protocol::version::ApiVersion;
use time::OffsetDateTime;

use crate::accounts::Account;
use crate::error::ApiError;
use crate::http1::Request;
use crate::params::Query;
use crate::routing::{Operation, Target};

/// How far a request's date may be from now.
const MAX_CLOCK_SKEW_SECS: i64 = 15 * 60;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub enum Principal {
    /// Signed with an account key: may do anything.
    Owner,
    AccountSas {
        resource_types: ResourceTypes,
        permissions: AccountPermissions,
    },
    ServiceSas {
        permissions: ServicePermissions,
    },
}

pub struct Authenticated {
    pub principal: Principal,
    /// The version the request runs under: `sv` for a SAS, else the `x-ms-version` header.
    pub version: Option<ApiVersion>,
}

pub fn to_offset(t: Timestamp) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.as_millis()) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub fn to_timestamp(t: OffsetDateTime) -> Timestamp {
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    Timestamp::from_millis(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// Authenticates a request to `account` (already known to exist).
pub async fn authenticate(
    engine: &Engine,
    account: &Account,
    req: &Request,
    target: &Target,
    query: &Query,
    header_version: Option<ApiVersion>,
    now: OffsetDateTime,
) -> Result<Authenticated, ApiError> {
    match SasParams::from_query(&query.0) {
        Some(Ok(params)) => {
            return authenticate_sas(engine, account, req, target, params, now).await;
        }
        Some(Err(_)) => {
            return Err(ApiError::auth_failed(
                "The SAS token in the request is malformed.",
            ))
        }
        None => {}
    }
    let Some(header) = req.header("Authorization") else {
        // Current Azure answers an anonymous queue request with 401 and a Bearer challenge.
        return Err(ApiError::new(ErrorCode::NoAuthenticationInformation).header(
            "WWW-Authenticate",
            "Bearer authorization_uri=https://login.microsoftonline.com/common/oauth2/authorize resource_id=https://storage.azure.com",
        ));
    };
    let parsed: AuthorizationHeader = header
        .parse()
        .map_err(|_| ApiError::new(ErrorCode::InvalidAuthenticationInfo))?;
    let signed = match parsed {
        AuthorizationHeader::Signed(s) => s,
        AuthorizationHeader::Bearer(_) => {
            return Err(ApiError::auth_failed(
                "Bearer tokens are not supported by this server; use Shared Key or SAS.",
            ))
        }
    };
    let signed_as = signed.account.as_str();
    let signed_as_secondary = signed_as
        .strip_suffix("-secondary")
        .is_some_and(|a| a == account.name);
    if signed_as != account.name && !signed_as_secondary {
        return Err(ApiError::auth_failed(format!(
            "The account {signed_as} in the Authorization header does not match the account {} in the request URI.",
            account.name
        )));
    }
    check_date(req, now)?;

    let headers: Vec<(&str, &str)> = req.headers().collect();
    let signable = SignableRequest {
        method: req.method(),
        path: req.path(),
        raw_query: req.query(),
        headers: &headers,
    };
    let variants = [
        Variant::default(),
        Variant {
            keep_whitespace: true,
            ..Variant::default()
        },
        Variant {
            ordinal_header_sort: true,
            ..Variant::default()
        },
        Variant {
            plus_as_space: true,
            ..Variant::default()
        },
    ];
    let mut sts = String::new();
    let mut first_sts = None;
    for variant in variants {
        for secondary in [false, true] {
            if secondary && !target.secondary {
                continue;
            }
            let name: Cow<'_, str> = if secondary {
                Cow::Owned(format!("{}-secondary", account.name))
            } else {
                Cow::Borrowed(&account.name)
            };
            shared_key::string_to_sign_into(
                &mut sts,
                &signable,
                &name,
                header_version,
                signed.scheme,
                variant,
            );
            if account
                .signing_keys
                .iter()
                .any(|k| k.verify(&sts, &signed.signature))
            {
                return Ok(Authenticated {
                    principal: Principal::Owner,
                    version: header_version,
                });
            }
            first_sts.get_or_insert_with(|| sts.clone());
        }
    }
    let scheme = match signed.scheme {
        AuthScheme::SharedKey => "SharedKey",
        AuthScheme::SharedKeyLite => "SharedKeyLite",
    };
    Err(ApiError::auth_failed(format!(
        "The MAC signature found in the HTTP request '{}' is not the same as any computed signature. Server used following string to sign: '{}'. ({scheme})",
        signed.signature,
        first_sts.unwrap_or_default()
    )))
}

/// `x-ms-date` (or `Date`) must be present and within 15 minutes of now.
fn check_date(req: &Request, now: OffsetDateTime) -> Result<(), ApiError> {
    let raw = req
        .header("x-ms-date")
        .filter(|v| !v.is_empty())
        .or_else(|| req.header("Date"))
        .ok_or_else(|| {
            ApiError::auth_failed(
                "Request date header not specified: x-ms-date or Date is required.",
            )
        })?;
    let date = datetime::parse_http_date(raw).ok_or_else(|| {
        ApiError::auth_failed(format!("The date header '{raw}' is not a valid HTTP date."))
    })?;
    let skew = (now - date).whole_seconds();
    if skew > MAX_CLOCK_SKEW_SECS {
        return Err(ApiError::auth_failed(format!(
            "Request date header too old: '{raw}'"
        )));
    }
    if skew < -MAX_CLOCK_SKEW_SECS {
        return Err(ApiError::auth_failed(format!(
            "Request date header too far in the future: '{raw}'"
        )));
    }
    Ok(())
}

async fn authenticate_sas(
    engine: &Engine,
    account: &Account,
    req: &Request,
    target: &Target,
    mut p: SasParams,
    now: OffsetDateTime,
) -> Result<Authenticated, ApiError> {
    let version: ApiVersion = p.sv.parse().map_err(|_| {
        ApiError::auth_failed(format!("The signed version '{}' is not valid.", p.sv))
    })?;
    let is_account = p.is_account_sas();
    if is_account && version < ApiVersion::V2015_04_05 {
        return Err(ApiError::auth_failed(
            "Account SAS requires sv 2015-04-05 or later.",
        ));
    }
    if !is_account && version < ApiVersion::V2012_02_12 {
        return Err(ApiError::auth_failed(
            "Queue SAS requires sv 2012-02-12 or later.",
        ));
    }

    // The signature covers the fields as sent, so check it before merging a stored policy.
    let sts = if is_account {
        sas::account_sas_string_to_sign(&p, &account.name)
    } else {
        let Some(queue) = target.resource.queue() else {
            return Err(ApiError::new(ErrorCode::AuthorizationFailure)
                .message("A service SAS cannot be used on the account."));
        };
        sas::service_sas_string_to_sign(&p, &account.name, &queue.to_ascii_lowercase())
    };
    if !account.signing_keys.iter().any(|k| k.verify(&sts, &p.sig)) {
        return Err(ApiError::auth_failed(format!(
            "Signature did not match. String to sign used was {sts}"
        )));
    }

    if let (Some(id), false) = (p.si.clone(), is_account) {
        let queue = target.resource.queue().unwrap_or_default();
        // A queue that does not exist has no policies; a store that cannot answer is an
        // outage (503, which clients retry), not a refusal they would believe.
        let policies = match engine
            .access_policies(QueueRef::new(&account.name, queue))
            .await
        {
            Ok(p) => p,
            Err(hematite_engine::Error::QueueNotFound) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let Some(policy) = policies.into_iter().find(|x| x.id == id) else {
            return Err(ApiError::auth_failed(format!(
                "The specified signed identifier '{id}' does not exist."
            )));
        };
        let doubled = (policy.start.is_some() && p.st.is_some())
            || (policy.expiry.is_some() && p.se.is_some())
            || (policy.permissions.is_some() && p.sp.is_some());
        if doubled {
            return Err(ApiError::auth_failed(
                "A field is specified both in the SAS and in the stored access policy.",
            ));
        }
        if let Some(s) = policy.start {
            p.st = Some(datetime::format_iso8601_7(to_offset(s)));
        }
        if let Some(e) = policy.expiry {
            p.se = Some(datetime::format_iso8601_7(to_offset(e)));
        }
        if let Some(perm) = policy.permissions {
            p.sp = Some(perm);
        }
    }

    let start = match &p.st {
        Some(s) => Some(parse_sas_time(s)?),
        None => None,
    };
    let expiry = match &p.se {
        Some(s) => parse_sas_time(s)?,
        None => return Err(ApiError::auth_failed("Signed expiry (se) is missing.")),
    };
    if start.is_some_and(|s| now < s) || now >= expiry {
        let fmt = |t: Option<OffsetDateTime>| t.map(datetime::format_rfc1123).unwrap_or_default();
        return Err(ApiError::auth_failed(format!(
            "Signature not valid in the specified time frame: Start [{}] - Expiry [{}] - Current [{}]",
            fmt(start),
            fmt(Some(expiry)),
            fmt(Some(now))
        )));
    }
    if let Some(range) = &p.sip {
        let (lo, hi) = sas::parse_ip_range(range)
            .ok_or_else(|| ApiError::auth_failed(format!("Signed IP '{range}' is not valid.")))?;
        if !ip_in(req.peer.ip(), lo, hi) {
            return Err(ApiError::new(ErrorCode::AuthorizationSourceIPMismatch));
        }
    }
    if let Some(spr) = &p.spr {
        // This server speaks plain HTTP; a token restricted to HTTPS cannot be honoured.
        if !spr.split(',').any(|s| s.trim() == "http") {
            return Err(ApiError::new(ErrorCode::AuthorizationProtocolMismatch));
        }
    }
    let sp =
        p.sp.as_deref()
            .ok_or_else(|| ApiError::auth_failed("Signed permissions (sp) are missing."))?;
    let principal =
        if is_account {
            if !p.ss.as_deref().unwrap_or_default().contains('q') {
                return Err(ApiError::new(ErrorCode::AuthorizationServiceMismatch));
            }
            Principal::AccountSas {
                resource_types: p.srt.as_deref().unwrap_or_default().parse().map_err(|_| {
                    ApiError::auth_failed("Signed resource types (srt) are not valid.")
                })?,
                permissions: sp
                    .parse()
                    .map_err(|_| ApiError::auth_failed("Signed permissions (sp) are not valid."))?,
            }
        } else {
            Principal::ServiceSas {
                permissions: sp
                    .parse()
                    .map_err(|_| ApiError::auth_failed("Signed permissions (sp) are not valid."))?,
            }
        };
    Ok(Authenticated {
        principal,
        version: Some(version),
    })
}

fn parse_sas_time(s: &str) -> Result<OffsetDateTime, ApiError> {
    datetime::parse_iso8601(s).ok_or_else(|| {
        ApiError::auth_failed(format!("The signed time '{s}' is not valid ISO 8601."))
    })
}

fn ip_in(ip: IpAddr, lo: IpAddr, hi: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (ip, lo, hi) {
        (IpAddr::V4(i), IpAddr::V4(l), IpAddr::V4(h)) => l <= i && i <= h,
        (IpAddr::V6(i), IpAddr::V6(l), IpAddr::V6(h)) => l <= i && i <= h,
        _ => false,
    }
}

/// What an account SAS must grant for an operation: resource types accepted, and the permission
/// letters of which any one suffices. `None` means no account SAS may do it.
fn account_sas_needs(op: Operation) -> Option<(&'static [char], &'static [char])> {
    use Operation::*;
    Some(match op {
        GetServiceProperties | GetServiceStats => (&['s'], &['r']),
        SetServiceProperties => (&['s'], &['w']),
        ListQueues => (&['s'], &['l']),
        CreateQueue => (&['c'], &['c', 'w']),
        DeleteQueue => (&['c'], &['d']),
        GetQueueMetadata => (&['c'], &['r']),
        SetQueueMetadata => (&['c'], &['w']),
        PutMessage => (&['o'], &['a']),
        GetMessages => (&['o'], &['p']),
        PeekMessages => (&['o'], &['r']),
        // The docs say `o` and Azurite checks `c`: accept either (digest §9.13).
        DeleteMessage => (&['o', 'c'], &['p']),
        ClearMessages => (&['o', 'c'], &['d']),
        UpdateMessage => (&['o', 'c'], &['u']),
        GetQueueAcl | SetQueueAcl | GetUserDelegationKey | Preflight => return None,
    })
}

/// What a service SAS must grant; `None` means a service SAS can never do it.
fn service_sas_needs(op: Operation) -> Option<char> {
    use Operation::*;
    match op {
        GetQueueMetadata | PeekMessages => Some('r'),
        PutMessage => Some('a'),
        UpdateMessage => Some('u'),
        GetMessages | DeleteMessage => Some('p'),
        _ => None,
    }
}

/// Checks that `principal` may perform `op`.
pub fn authorize(principal: &Principal, op: Operation) -> Result<(), ApiError> {
    match principal {
        Principal::Owner => Ok(()),
        Principal::AccountSas {
            resource_types,
            permissions,
        } => {
            let (types, letters) = account_sas_needs(op)
                .ok_or_else(|| ApiError::new(ErrorCode::AuthorizationFailure))?;
            if !types.iter().any(|t| resource_types.allows(*t)) {
                return Err(ApiError::new(ErrorCode::AuthorizationResourceTypeMismatch));
            }
            if !letters.iter().any(|l| permissions.allows(*l)) {
                return Err(ApiError::new(ErrorCode::AuthorizationPermissionMismatch));
            }
            Ok(())
        }
        Principal::ServiceSas { permissions } => {
            let letter = service_sas_needs(op)
                .ok_or_else(|| ApiError::new(ErrorCode::AuthorizationFailure))?;
            if permissions.allows(letter) {
                Ok(())
            } else {
                Err(ApiError::new(ErrorCode::AuthorizationPermissionMismatch))
            }
        }
    }
}
