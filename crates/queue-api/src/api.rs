//! The front door: one request in, one Azure-shaped response out.
//!
//! Order of checks, as the service does them: route, (CORS preflight is anonymous), version
//! header, authentication, read-only secondary, authorization, common parameters, resource name,
//! body size; then the operation's handler. Every response, success or error, gets the common
//! headers (`x-ms-request-id`, `x-ms-version`, `Date`, echoed `x-ms-client-request-id`) and, when
//! the request carried `Origin`, the CORS headers the account's rules call for.

use std::borrow::Cow;

use std::sync::Arc;

use hematite_engine::{Engine, QueueRef};
use hematite_net::budget::Budget;
use hematite_queue_protocol::datetime;
use hematite_queue_protocol::error::ErrorCode;
use hematite_queue_protocol::names::{self, QueueNameError};
use hematite_queue_protocol::version::{ApiVersion, LATEST_KNOWN};
use hematite_queue_protocol::xml::CorsRule;
use time::OffsetDateTime;

use crate::accounts::Accounts;
use crate::auth::{self, to_offset};
use crate::error::ApiError;
use crate::http1::{Handler, HeaderText, Request, Response};
use crate::oauth::OAuth;
use crate::ops;
use crate::params::{parse_int, Query};
use crate::routing::{self, Operation, Resource, RouteError, Target};
use crate::{cors, properties};

/// The largest request body accepted; the live service answered 413 with this `MaxLimit`.
pub const MAX_BODY_BYTES: usize = 131_584;

/// Settings of the REST front.
#[derive(Debug, Clone)]
pub struct Options {
    /// Reject `x-ms-version` values newer than any this build knows.
    pub strict_api_version: bool,
    /// Bounds the memory large responses may hold while they are written.
    pub budget: Arc<Budget>,
    /// How bearer tokens are checked; `None` refuses them.
    pub oauth: Option<Arc<OAuth>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            strict_api_version: false,
            budget: Budget::new(256 << 20, None),
            oauth: None,
        }
    }
}

pub struct QueueApi {
    engine: Engine,
    accounts: Accounts,
    options: Options,
}

/// Everything a handler needs to know about the call it serves.
pub struct Call<'a> {
    pub engine: &'a Engine,
    /// Where large responses reserve their memory before they are produced.
    pub budget: &'a Budget,
    pub req: &'a Request,
    pub query: &'a Query,
    pub target: &'a Target,
    /// The version whose behaviour applies (2009-09-19 when the request named none).
    pub version: ApiVersion,
    pub now: OffsetDateTime,
    /// Who is calling, to which account.
    pub principal: &'a auth::Principal,
    pub account: &'a crate::accounts::Account,
}

impl Call<'_> {
    pub fn queue(&self) -> QueueRef<'_> {
        QueueRef::new(
            &self.target.account,
            self.target.resource.queue().unwrap_or_default(),
        )
    }
}

/// What the response decoration needs to know about how far the request got.
#[derive(Default)]
struct Progress {
    account: Option<String>,
    version: Option<ApiVersion>,
    authenticated: bool,
}

/// How far [`QueueApi::prepare`] got.
enum Step {
    /// The request is answered without running an operation (a CORS preflight).
    Answered(Response),
    Run(Prepared),
}

/// A request that passed every check made before its body is read.
struct Prepared {
    target: Target,
    query: Query,
    op: Operation,
    version: ApiVersion,
    principal: auth::Principal,
}

impl QueueApi {
    pub fn new(engine: Engine, accounts: Accounts, options: Options) -> Self {
        QueueApi {
            engine,
            accounts,
            options,
        }
    }

    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// Everything checked before a body is needed: route, version, authentication, the
    /// read-only secondary, authorization, common parameters and the resource name. A CORS
    /// preflight is answered here in full.
    async fn prepare(
        &self,
        req: &Request,
        now: OffsetDateTime,
        progress: &mut Progress,
    ) -> Result<Step, ApiError> {
        if let Some(id) = req.header("x-ms-client-request-id") {
            if id.len() > 1024 || !id.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                return Err(ApiError::invalid_header("x-ms-client-request-id", id));
            }
        }
        let mut target =
            routing::target(req.host(), req.path()).map_err(|e| route_error(e, req))?;
        // Only the CORS decoration needs it, and only for a request with `Origin`.
        if req.header("Origin").is_some() {
            progress.account = Some(target.account.clone());
        }
        let query = Query::decode(req.query());
        // Python reaches the secondary by swapping the endpoint's host part for
        // `host/{account}-secondary`, then appends the primary path: account-level requests
        // arrive as `/{account}-secondary/{account}/?restype=service…`.
        if target.secondary
            && target.path_style
            && target.resource == Resource::Queue(target.account.clone())
            && (query.get("restype").is_some() || query.get("comp") == Some("list"))
        {
            target.resource = Resource::Account;
        }
        let op = routing::operation(
            req.method(),
            &target.resource,
            query.get("comp"),
            query.get("restype"),
            query.get("peekonly"),
        )
        .map_err(|e| route_error(e, req))?;

        if op == Operation::Preflight {
            let rules = self.cors_rules(&target.account).await?;
            return cors::preflight(
                &rules,
                req.header("Origin"),
                req.header("Access-Control-Request-Method"),
                req.header("Access-Control-Request-Headers"),
            )
            .map(Step::Answered);
        }

        let header_version = match req.header("x-ms-version") {
            None => None,
            Some(raw) => {
                let v: ApiVersion = raw
                    .trim()
                    .parse()
                    .map_err(|_| ApiError::invalid_header("x-ms-version", raw))?;
                if v < ApiVersion::V2009_09_19 || (self.options.strict_api_version && !v.is_known())
                {
                    return Err(ApiError::invalid_header("x-ms-version", raw).message(
                        "The value for one of the HTTP headers is not in the correct format.",
                    ));
                }
                Some(v)
            }
        };
        progress.version = header_version;

        // Azure has no answer here (an unknown account's host does not resolve); Azurite's is
        // 404 ResourceNotFound, whatever the credential, and clients of emulators expect it.
        let account = self
            .accounts
            .get(&target.account)
            .ok_or_else(|| ApiError::new(ErrorCode::ResourceNotFound))?;
        let cx = auth::Context {
            engine: &self.engine,
            account,
            oauth: self.options.oauth.as_deref(),
            now,
        };
        let authn = auth::authenticate(&cx, req, &target, &query, header_version).await?;
        progress.version = authn.version;
        progress.authenticated = true;

        if target.secondary && !op.is_read_only() {
            return Err(ApiError::new(ErrorCode::InsufficientAccountPermissions).message(
                "The account being accessed does not have sufficient permissions to execute this operation: the secondary endpoint is read-only.",
            ));
        }
        auth::authorize(&authn.principal, op)?;
        let principal = authn.principal;

        if let Some(t) = query.get("timeout") {
            if parse_int("timeout", t)? < 0 {
                return Err(ApiError::invalid_query("timeout", t, None));
            }
        }
        if let Some(q) = target.resource.queue() {
            names::validate_queue_name(q).map_err(|e| match e {
                QueueNameError::OutOfRange => ApiError::new(ErrorCode::OutOfRangeInput).message(
                    "The specified resource name length is not within the permissible limits.",
                ),
                QueueNameError::Invalid => ApiError::new(ErrorCode::InvalidResourceName),
            })?;
        }
        Ok(Step::Run(Prepared {
            target,
            query,
            op,
            version: authn.version.unwrap_or(ApiVersion::V2009_09_19),
            principal,
        }))
    }

    async fn dispatch(
        &self,
        req: &Request,
        now: OffsetDateTime,
        progress: &mut Progress,
    ) -> Result<Response, ApiError> {
        let p = match self.prepare(req, now, progress).await? {
            Step::Answered(resp) => return Ok(resp),
            Step::Run(p) => p,
        };
        if req.body_too_large {
            return Err(ApiError::body_too_large(MAX_BODY_BYTES));
        }
        // `prepare` authenticated against this account, so it exists.
        let account = self
            .accounts
            .get(&p.target.account)
            .ok_or_else(|| ApiError::new(ErrorCode::InternalError))?;
        let call = Call {
            engine: &self.engine,
            budget: &self.options.budget,
            req,
            query: &p.query,
            target: &p.target,
            version: p.version,
            now,
            principal: &p.principal,
            account,
        };
        match p.op {
            Operation::ListQueues => ops::service::list_queues(&call).await,
            Operation::GetServiceProperties => ops::service::get_properties(&call).await,
            Operation::SetServiceProperties => ops::service::set_properties(&call).await,
            Operation::GetServiceStats => ops::service::get_stats(&call),
            Operation::GetUserDelegationKey => ops::service::get_user_delegation_key(&call),
            Operation::Preflight => unreachable_preflight(),
            Operation::CreateQueue => ops::queues::create(&call).await,
            Operation::DeleteQueue => ops::queues::delete(&call).await,
            Operation::GetQueueMetadata => ops::queues::get_metadata(&call).await,
            Operation::SetQueueMetadata => ops::queues::set_metadata(&call).await,
            Operation::GetQueueAcl => ops::queues::get_acl(&call).await,
            Operation::SetQueueAcl => ops::queues::set_acl(&call).await,
            Operation::PutMessage => ops::messages::put(&call).await,
            Operation::GetMessages => ops::messages::get(&call).await,
            Operation::PeekMessages => ops::messages::peek(&call).await,
            Operation::ClearMessages => ops::messages::clear(&call).await,
            Operation::UpdateMessage => ops::messages::update(&call).await,
            Operation::DeleteMessage => ops::messages::delete(&call).await,
        }
    }

    async fn cors_rules(&self, account: &str) -> Result<Vec<CorsRule>, ApiError> {
        if self.accounts.get(account).is_none() {
            return Ok(Vec::new());
        }
        Ok(properties::load(&self.engine, account).await?.cors)
    }

    fn error_response(&self, e: ApiError, request_id: &str, now: OffsetDateTime) -> Response {
        let code = e.response.code;
        let mut resp = Response::new(e.response.status())
            .header("x-ms-error-code", code.as_str())
            .xml(e.response.to_xml(request_id, now));
        for (k, v) in e.headers {
            resp.push_header(k, v);
        }
        resp
    }
}

/// Preflight returns before dispatching; kept as a function so the match above stays exhaustive.
fn unreachable_preflight() -> Result<Response, ApiError> {
    Err(ApiError::new(ErrorCode::InternalError))
}

fn route_error(e: RouteError, req: &Request) -> ApiError {
    match e {
        RouteError::InvalidUri => {
            ApiError::new(ErrorCode::InvalidUri).detail("UriPath", req.path())
        }
        RouteError::UnsupportedVerb => ApiError::new(ErrorCode::UnsupportedHttpVerb),
        RouteError::InvalidComp { name, value } => ApiError::invalid_query(name, &value, None),
    }
}

/// A fresh `x-ms-request-id`: a version-4 UUID from the thread's generator (no system call).
fn request_id() -> String {
    let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    id.hyphenated()
        .encode_lower(&mut uuid::Uuid::encode_buffer())
        .to_owned()
}

impl QueueApi {
    /// Turns an outcome into the response: the error body if it failed, then the common
    /// headers and, for a request with `Origin`, the CORS headers.
    async fn finish(
        &self,
        req: &Request,
        result: Result<Response, ApiError>,
        now: OffsetDateTime,
        progress: Progress,
    ) -> Response {
        let request_id = request_id();
        let failed = result.is_err();
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => {
                if e.code() == ErrorCode::InternalError {
                    tracing::warn!(method = %req.method(), path = %req.path(), "internal error");
                }
                self.error_response(e, &request_id, now)
            }
        };
        let version = match (progress.version, progress.authenticated) {
            (Some(v), _) => v,
            (None, true) => ApiVersion::V2009_09_19,
            (None, false) => LATEST_KNOWN,
        };
        let mut common: Vec<(HeaderText, HeaderText)> = Vec::with_capacity(5 + resp.headers.len());
        common.extend([
            (Cow::Borrowed("x-ms-request-id"), Cow::Owned(request_id)),
            (
                Cow::Borrowed("x-ms-version"),
                Cow::Owned(version.to_string()),
            ),
            (
                Cow::Borrowed("Date"),
                Cow::Owned(datetime::format_rfc1123(now)),
            ),
            (
                Cow::Borrowed("Server"),
                Cow::Borrowed(concat!("Hematite/", env!("CARGO_PKG_VERSION"))),
            ),
        ]);
        if let Some(id) = req.header("x-ms-client-request-id") {
            if !(failed && id.len() > 1024) {
                common.push((
                    Cow::Borrowed("x-ms-client-request-id"),
                    Cow::Owned(id.to_owned()),
                ));
            }
        }
        common.append(&mut resp.headers);
        resp.headers = common;
        if req.method() != "OPTIONS" {
            if let (Some(origin), Some(account)) =
                (req.header("Origin"), progress.account.as_deref())
            {
                if let Ok(rules) = self.cors_rules(account).await {
                    cors::decorate(&rules, origin, req.method(), &mut resp);
                }
            }
        }
        resp
    }
}

/// Whether `req` is a load balancer's health check: `GET /health`, no query, unsigned. No
/// Azure Queue request has that form (an account's path needs a query or a signature), so
/// an account called `health` loses nothing.
fn is_health_check(req: &Request) -> bool {
    req.path() == "/health" && req.query().is_empty() && req.header("Authorization").is_none()
}

impl Handler for QueueApi {
    async fn handle(&self, req: Request) -> Response {
        if is_health_check(&req) {
            // Any read reaches the store; an account no one has keeps it to one row.
            let read = self.engine.list_queues("", "", None, 1);
            return hematite_net::health::answer(&req, async { read.await.map(drop) }).await;
        }
        let now = to_offset(self.engine.now());
        let mut progress = Progress::default();
        let result = self.dispatch(&req, now, &mut progress).await;
        self.finish(&req, result, now, progress).await
    }

    /// A request sent `Expect: 100-continue`: its body is invited only if it would be served,
    /// so an unauthenticated or oversized upload is refused before a byte of it is read.
    async fn admit(&self, req: &Request) -> Option<Response> {
        let now = to_offset(self.engine.now());
        let mut progress = Progress::default();
        let refusal = match self.prepare(req, now, &mut progress).await {
            Ok(Step::Answered(_)) => None,
            Ok(Step::Run(_)) => req
                .content_length
                .filter(|n| *n > MAX_BODY_BYTES as u64)
                .map(|_| ApiError::body_too_large(MAX_BODY_BYTES)),
            Err(e) => Some(e),
        }?;
        Some(self.finish(req, Err(refusal), now, progress).await)
    }
}
