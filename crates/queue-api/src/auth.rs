//! Who is calling, and may they do this?
//!
//! Authentication (Microsoft's "Authorize requests to Azure Storage"): Shared Key and Shared Key Lite signatures over the request, account
//! SAS, service SAS and user delegation SAS tokens in the query (with stored access policies
//! through `si`), and OAuth bearer tokens over HTTPS ([`crate::oauth`]). Every signature is
//! compared in constant time. The tolerant retries (ordinal
//! header order, `+` as space, the `-secondary` account name in the resource) are tried only after
//! the exact form fails, so a correct client costs one HMAC.
//!
//! Authorization maps each operation to what a SAS must grant (Microsoft's "Create an account SAS" and "Create a service SAS").

use std::borrow::Cow;
use std::net::IpAddr;

use hematite_engine::{Engine, QueueRef, Timestamp};
use hematite_queue_protocol::auth::sas::{
    self, AccountPermissions, DelegationKey, ResourceTypes, SasParams, ServicePermissions,
};
use hematite_queue_protocol::auth::shared_key::{
    self, AuthScheme, AuthorizationHeader, SignableRequest, Variant,
};
use hematite_queue_protocol::auth::SigningKey;
use hematite_queue_protocol::datetime;
use hematite_queue_protocol::error::ErrorCode;
use hematite_queue_protocol::version::ApiVersion;
use time::OffsetDateTime;

use crate::accounts::Account;
use crate::error::ApiError;
use crate::http1::Request;
use crate::oauth::{self, Identity, OAuth};
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
    /// A service SAS, or a user delegation SAS (which grants the same letters).
    ServiceSas { permissions: ServicePermissions },
    /// A valid OAuth token.
    Bearer(Identity),
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

/// What authentication needs besides the request.
pub struct Context<'a> {
    pub engine: &'a Engine,
    pub account: &'a Account,
    pub oauth: Option<&'a OAuth>,
    pub now: OffsetDateTime,
}

/// Authenticates a request to `account` (already known to exist).
pub async fn authenticate(
    cx: &Context<'_>,
    req: &Request,
    target: &Target,
    query: &Query,
    header_version: Option<ApiVersion>,
) -> Result<Authenticated, ApiError> {
    let (account, now) = (cx.account, cx.now);
    match SasParams::from_query(&query.0) {
        Some(Ok(params)) => {
            return authenticate_sas(cx, req, target, params, header_version).await;
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
        AuthorizationHeader::Bearer(token) => {
            let identity = authenticate_bearer(cx, req, &token, header_version)?;
            return Ok(Authenticated {
                principal: Principal::Bearer(identity),
                version: header_version,
            });
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

/// Checks a bearer token: HTTPS only, from version 2017-11-09, valid for this account now.
fn authenticate_bearer(
    cx: &Context<'_>,
    req: &Request,
    token: &str,
    version: Option<ApiVersion>,
) -> Result<Identity, ApiError> {
    let Some(oauth) = cx.oauth else {
        return Err(ApiError::auth_failed(
            "This server does not accept bearer tokens: start it with --oauth-keys (or --oauth basic for tests).",
        ));
    };
    if !req.tls {
        return Err(ApiError::auth_failed(
            "Authentication scheme Bearer is not allowed with HTTP.",
        ));
    }
    if version.is_none_or(|v| v < ApiVersion::V2017_11_09) {
        return Err(ApiError::auth_failed(
            "Authentication scheme Bearer is not supported in this version.",
        ));
    }
    oauth
        .validate(token, &cx.account.name, cx.now)
        .map_err(|e| {
            ApiError::new(ErrorCode::InvalidAuthenticationInfo)
                .status(401)
                .message("Server failed to authenticate the request. Please refer to the information in the www-authenticate header.")
                .detail("AuthenticationErrorDetail", e.detail())
                .header(
                    "WWW-Authenticate",
                    oauth::challenge(oauth::claimed_tenant(token).as_deref()),
                )
        })
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
    cx: &Context<'_>,
    req: &Request,
    target: &Target,
    mut p: SasParams,
    header_version: Option<ApiVersion>,
) -> Result<Authenticated, ApiError> {
    let (engine, account, now) = (cx.engine, cx.account, cx.now);
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
    if p.is_user_delegation() {
        check_user_delegation(cx, req, target, &p, header_version)?;
    } else {
        let sts = if is_account {
            sas::account_sas_string_to_sign(&p, &account.name)
        } else {
            let queue = sas_queue(target)?;
            sas::service_sas_string_to_sign(&p, &account.name, &queue.to_ascii_lowercase())
        };
        if !account.signing_keys.iter().any(|k| k.verify(&sts, &p.sig)) {
            return Err(ApiError::auth_failed(format!(
                "Signature did not match. String to sign used was {sts}"
            )));
        }
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
        // `https` or `https,http`: a token restricted to HTTPS is refused over plain HTTP.
        let scheme = if req.tls { "https" } else { "http" };
        if !spr.split(',').any(|s| s.trim() == scheme) {
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

/// The queue a service or user delegation SAS is for; neither can be used on the account.
fn sas_queue(target: &Target) -> Result<&str, ApiError> {
    target.resource.queue().ok_or_else(|| {
        ApiError::new(ErrorCode::AuthorizationFailure)
            .message("A service SAS cannot be used on the account.")
    })
}

/// Checks a user delegation SAS: signed with the key this server derived for `skoid`, a key
/// for the queue service that is valid now, no stored policy, and, when it names a
/// delegated user (`sduoid`), presented together with that user's bearer token.
fn check_user_delegation(
    cx: &Context<'_>,
    req: &Request,
    target: &Target,
    p: &SasParams,
    header_version: Option<ApiVersion>,
) -> Result<(), ApiError> {
    if p.is_account_sas() || p.si.is_some() {
        return Err(ApiError::auth_failed(
            "A user delegation SAS cannot name services, resource types or a stored access policy.",
        ));
    }
    let key = DelegationKey::from_sas(p).ok_or_else(|| {
        ApiError::auth_failed(
            "The user delegation key fields (skoid, sktid, skt, ske, sks, skv) are incomplete.",
        )
    })?;
    if key.service != "q" {
        return Err(ApiError::auth_failed(format!(
            "The user delegation key is for service '{}', not the queue service.",
            key.service
        )));
    }
    let queue = sas_queue(target)?;
    let sts = sas::user_delegation_string_to_sign(p, &cx.account.name, queue);
    let signed = cx.account.signing_keys.iter().any(|account_key| {
        decode_key_value(&key.value(account_key))
            .is_some_and(|k| SigningKey::new(&k).verify(&sts, &p.sig))
    });
    if !signed {
        return Err(ApiError::auth_failed(format!(
            "Signature did not match. String to sign used was {sts}"
        )));
    }
    let start = parse_sas_time(&key.start)?;
    let expiry = parse_sas_time(&key.expiry)?;
    if cx.now < start || cx.now >= expiry {
        return Err(ApiError::auth_failed(format!(
            "The user delegation key is not valid at this time: Start [{}] - Expiry [{}] - Current [{}]",
            datetime::format_rfc1123(start),
            datetime::format_rfc1123(expiry),
            datetime::format_rfc1123(cx.now)
        )));
    }
    if let Some(user) = p.sduoid.as_deref().filter(|u| !u.is_empty()) {
        let token = match req.header("Authorization").map(str::parse::<AuthorizationHeader>) {
            Some(Ok(AuthorizationHeader::Bearer(t))) => t,
            _ => {
                return Err(ApiError::auth_failed(
                    "This SAS names a delegated user (sduoid): the request must also carry that user's bearer token.",
                ))
            }
        };
        let identity = authenticate_bearer(cx, req, &token, header_version)?;
        if identity.object_id != user {
            return Err(ApiError::auth_failed(
                "The bearer token's object id is not the delegated user the SAS names (sduoid).",
            ));
        }
    }
    Ok(())
}

fn decode_key_value(value: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(value).ok()
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
        // The docs say `o` and Azurite checks `c`: accept either.
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
    if op == Operation::GetUserDelegationKey && !matches!(principal, Principal::Bearer(_)) {
        return Err(ApiError::auth_failed(
            "Only authentication scheme Bearer is supported",
        ));
    }
    match principal {
        Principal::Owner => Ok(()),
        // A token grants every operation but the ACL's, which need the account key (as in
        // Azurite; Azure decides by the caller's RBAC roles).
        Principal::Bearer(_) => match op {
            Operation::GetQueueAcl | Operation::SetQueueAcl => Err(ApiError::auth_failed(
                "Queue access policies cannot be read or set with OAuth: use Shared Key.",
            )),
            _ => Ok(()),
        },
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
