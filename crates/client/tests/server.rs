//! The client against Hematite's REST front, in-process on port 0 over the memory store.
//!
//! The server runs on the system clock (not the manual one of the front's own tests) because
//! the client signs with real time and the server refuses dates more than 15 minutes off.
//! Every operation is covered, and so are error mapping and both kinds of SAS.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use hematite_client::connection_string::DEV_KEY;
use hematite_client::protocol::{
    AccountPermissions, AccountSasBuilder, CorsRule, ErrorCode, ResourceTypes, ServicePermissions,
    ServiceProperties, ServiceSasBuilder, SignedIdentifier,
};
use hematite_client::{
    ClientOptions, CreateOutcome, Credential, Error, ListQueuesOptions, Metadata,
    QueueServiceClient, SendMessageOptions, TimeToLive,
};
use hematite_engine::{Engine, MemoryStore, SystemClock};
use hematite_queue_api::{serve, Accounts, Options, QueueApi};
use time::macros::datetime;
use time::OffsetDateTime;
use tokio::sync::oneshot;

struct Server {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl Server {
    async fn start() -> Self {
        let engine = Engine::new(Arc::new(MemoryStore::new()), Arc::new(SystemClock));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let api = Arc::new(QueueApi::new(
            engine,
            Accounts::development(),
            Options::default(),
        ));
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(serve(listener, api, async {
            let _ = rx.await;
        }));
        Self { addr, _stop: tx }
    }

    fn endpoint(&self) -> String {
        format!("http://{}/devstoreaccount1", self.addr)
    }

    fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEV_KEY};QueueEndpoint={};",
            self.endpoint()
        )
    }

    fn client(&self) -> QueueServiceClient {
        QueueServiceClient::from_connection_string_with_options(&self.connection_string(), fast())
            .unwrap()
    }

    fn sas_client(&self, token: &str) -> QueueServiceClient {
        QueueServiceClient::with_options(&self.endpoint(), Credential::sas(token).unwrap(), fast())
            .unwrap()
    }
}

fn fast() -> ClientOptions {
    ClientOptions {
        max_retries: 1,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(10),
        timeout: Duration::from_secs(10),
    }
}

fn md(pairs: &[(&str, &str)]) -> Metadata {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[track_caller]
fn assert_service_error(e: &Error, status: u16, code: &str) {
    assert_eq!(e.status(), Some(status), "{e}");
    assert_eq!(e.code(), Some(code), "{e}");
    assert!(e.request_id().is_some_and(|id| !id.is_empty()), "{e}");
}

#[tokio::test]
async fn queue_lifecycle_and_metadata() {
    let server = Server::start().await;
    let service = server.client();
    let q = service.queue_client("orders");

    assert_eq!(
        q.create(&md(&[("color", "red")])).await.unwrap(),
        CreateOutcome::Created
    );
    // Identical metadata: 204, nothing changes.
    assert_eq!(
        q.create(&md(&[("color", "red")])).await.unwrap(),
        CreateOutcome::AlreadyExists
    );
    // Different metadata: 409.
    let e = q.create(&Metadata::new()).await.unwrap_err();
    assert_service_error(&e, 409, "QueueAlreadyExists");
    assert!(!q.create_if_not_exists(&Metadata::new()).await.unwrap());
    assert!(service
        .queue_client("fresh")
        .create_if_not_exists(&Metadata::new())
        .await
        .unwrap());

    let props = q.get_properties().await.unwrap();
    assert_eq!(props.approximate_message_count, 0);
    assert_eq!(props.metadata, md(&[("color", "red")]));

    q.set_metadata(&md(&[("a1", "x"), ("b_2", "y  z")]))
        .await
        .unwrap();
    assert_eq!(
        q.get_properties().await.unwrap().metadata,
        md(&[("a1", "x"), ("b_2", "y  z")])
    );
    q.set_metadata(&Metadata::new()).await.unwrap();
    assert!(q.get_properties().await.unwrap().metadata.is_empty());

    q.delete().await.unwrap();
    assert!(!q.delete_if_exists().await.unwrap());
    assert!(service
        .queue_client("fresh")
        .delete_if_exists()
        .await
        .unwrap());
    let e = q.get_properties().await.unwrap_err();
    assert_service_error(&e, 404, "QueueNotFound");
}

#[tokio::test]
async fn metadata_names_are_sent_lowercase() {
    // The documented limitation: reqwest lowercases header names, so "Color" is stored as
    // "color" (List Queues returns stored names verbatim, so it shows what the server kept).
    let server = Server::start().await;
    let service = server.client();
    let q = service.queue_client("cased");
    q.create(&md(&[("Color", "Red")])).await.unwrap();
    let listed = service
        .list_all_queues(ListQueuesOptions {
            include_metadata: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed[0].metadata, Some(md(&[("color", "Red")])));
}

#[tokio::test]
async fn list_queues_pages_and_prefix() {
    let server = Server::start().await;
    let service = server.client();
    for name in [
        "alpha-1", "alpha-2", "alpha-3", "alpha-4", "alpha-5", "beta",
    ] {
        service
            .queue_client(name)
            .create(&md(&[("n", name)]))
            .await
            .unwrap();
    }

    let page = service
        .list_queues_segment(&ListQueuesOptions {
            prefix: Some("alpha".into()),
            max_results: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    let names: Vec<_> = page.queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["alpha-1", "alpha-2"]);
    assert!(page.queues.iter().all(|q| q.metadata.is_none()));
    let marker = page.next_marker.clone().expect("more pages");

    let rest = service
        .list_queues_segment(&ListQueuesOptions {
            prefix: Some("alpha".into()),
            marker: Some(marker),
            max_results: Some(10),
            include_metadata: true,
        })
        .await
        .unwrap();
    let names: Vec<_> = rest.queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["alpha-3", "alpha-4", "alpha-5"]);
    assert_eq!(rest.queues[0].metadata, Some(md(&[("n", "alpha-3")])));
    assert!(rest.next_marker.is_none());

    // The stream follows markers by itself.
    let all: Vec<_> = service
        .list_queues(ListQueuesOptions {
            max_results: Some(2),
            ..Default::default()
        })
        .map_ok(|q| q.name)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        all,
        ["alpha-1", "alpha-2", "alpha-3", "alpha-4", "alpha-5", "beta"]
    );
    let none = service
        .list_all_queues(ListQueuesOptions {
            prefix: Some("zzz".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn message_lifecycle() {
    let server = Server::start().await;
    let q = server.client().queue_client("work");
    q.create(&Metadata::new()).await.unwrap();

    let text = "a <b> & c\r\nline 2 😀";
    let sent = q
        .send_message(
            text,
            &SendMessageOptions {
                visibility_timeout: None,
                time_to_live: Some(TimeToLive::Infinite),
            },
        )
        .await
        .unwrap();
    assert_eq!(sent.expiration_time.year(), 9999);
    assert!(!sent.pop_receipt.is_empty());
    let hidden = q
        .send_message(
            "later",
            &SendMessageOptions {
                visibility_timeout: Some(Duration::from_secs(60)),
                time_to_live: Some(Duration::from_secs(3600).into()),
            },
        )
        .await
        .unwrap();
    assert!(hidden.time_next_visible > OffsetDateTime::now_utc() + Duration::from_secs(50));
    assert!(hidden.expiration_time < OffsetDateTime::now_utc() + Duration::from_secs(3700));
    assert_eq!(
        q.get_properties().await.unwrap().approximate_message_count,
        2
    );

    // Peek sees only the visible one and leases nothing.
    let peeked = q.peek_messages(32).await.unwrap();
    assert_eq!(peeked.len(), 1);
    assert_eq!(peeked[0].message_id, sent.message_id);
    assert_eq!(peeked[0].text, text);
    assert_eq!(peeked[0].dequeue_count, 0);

    let got = q
        .receive_messages(10, Some(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(
        (m.message_id.as_str(), m.text.as_str()),
        (sent.message_id.as_str(), text)
    );
    assert_eq!(m.dequeue_count, 1);
    assert!(q.peek_messages(1).await.unwrap().is_empty(), "leased");
    assert!(q.receive_messages(1, None).await.unwrap().is_empty());

    // Update: new text, visible again now, new receipt.
    let upd = q
        .update_message(
            &m.message_id,
            &m.pop_receipt,
            Some("changed"),
            Duration::ZERO,
        )
        .await
        .unwrap();
    assert_ne!(upd.pop_receipt, m.pop_receipt);
    assert!(upd.time_next_visible <= OffsetDateTime::now_utc() + Duration::from_secs(1));
    let peeked = q.peek_messages(1).await.unwrap();
    assert_eq!(peeked[0].text, "changed");
    assert_eq!(peeked[0].dequeue_count, 1);

    // Update without text keeps it and only moves visibility.
    let upd2 = q
        .update_message(
            &m.message_id,
            &upd.pop_receipt,
            None,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert!(q.peek_messages(1).await.unwrap().is_empty());

    // The old receipts are stale.
    let e = q
        .delete_message(&m.message_id, &m.pop_receipt)
        .await
        .unwrap_err();
    assert_service_error(&e, 404, "MessageNotFound");
    q.delete_message(&m.message_id, &upd2.pop_receipt)
        .await
        .unwrap();

    // The sender's receipt works before anyone receives the message.
    q.delete_message(&hidden.message_id, &hidden.pop_receipt)
        .await
        .unwrap();
    assert_eq!(
        q.get_properties().await.unwrap().approximate_message_count,
        0
    );

    for i in 0..5 {
        q.send_message(&format!("m{i}"), &SendMessageOptions::default())
            .await
            .unwrap();
    }
    assert_eq!(q.receive_messages(32, None).await.unwrap().len(), 5);
    q.clear_messages().await.unwrap();
    assert_eq!(
        q.get_properties().await.unwrap().approximate_message_count,
        0
    );

    // Text XML cannot carry is refused before sending.
    let e = q
        .send_message("bell\u{7}", &SendMessageOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
}

#[tokio::test]
async fn access_policies() {
    let server = Server::start().await;
    let q = server.client().queue_client("acl");
    q.create(&Metadata::new()).await.unwrap();
    assert!(q.get_access_policy().await.unwrap().is_empty());

    let policies = vec![
        SignedIdentifier {
            id: "readers".into(),
            start: Some(datetime!(2024-01-01 00:00:00 UTC)),
            expiry: Some(datetime!(2030-01-01 00:00:00 UTC)),
            permission: Some("r".into()),
        },
        SignedIdentifier {
            id: "bare".into(),
            start: None,
            expiry: None,
            permission: None,
        },
    ];
    q.set_access_policy(&policies).await.unwrap();
    assert_eq!(q.get_access_policy().await.unwrap(), policies);
    q.set_access_policy(&[]).await.unwrap();
    assert!(q.get_access_policy().await.unwrap().is_empty());
}

#[tokio::test]
async fn service_properties_and_statistics() {
    let server = Server::start().await;
    let service = server.client();
    let mut props = service.get_properties().await.unwrap();
    assert_eq!(props, ServiceProperties::default());

    props.cors = vec![CorsRule {
        allowed_origins: vec!["http://a.example".into()],
        allowed_methods: vec!["GET".into(), "PUT".into()],
        allowed_headers: vec!["x-ms-meta-*".into()],
        exposed_headers: vec!["x-ms-request-id".into()],
        max_age_seconds: 60,
    }];
    props.logging.read = true;
    service.set_properties(&props).await.unwrap();
    assert_eq!(service.get_properties().await.unwrap(), props);

    // Stats answer only on the secondary, which the client derives for path-style endpoints.
    let stats = service.get_statistics().await.unwrap();
    assert_eq!(stats.geo_replication_status, "live");
    assert!(stats.last_sync_time.is_some());
}

#[tokio::test]
async fn errors_carry_status_code_message_and_request_id() {
    let server = Server::start().await;
    let service = server.client();
    let q = service.queue_client("missing");

    let e = q.get_properties().await.unwrap_err();
    assert_service_error(&e, 404, "QueueNotFound");
    assert_eq!(e.error_code(), Some(ErrorCode::QueueNotFound));
    assert!(e.is_not_found());
    let svc = e.service().unwrap();
    assert_eq!(svc.message, "The specified queue does not exist.");
    assert_eq!(
        e.to_string(),
        format!(
            "QueueNotFound (404): The specified queue does not exist. [request id {}]",
            svc.request_id.as_deref().unwrap()
        )
    );

    for e in [
        q.send_message("x", &SendMessageOptions::default())
            .await
            .unwrap_err(),
        q.clear_messages().await.unwrap_err(),
        q.delete().await.unwrap_err(),
    ] {
        assert_service_error(&e, 404, "QueueNotFound");
    }

    // Server-side validation errors come through with their codes.
    let e = service
        .queue_client("Bad_Name")
        .create(&Metadata::new())
        .await
        .unwrap_err();
    assert_service_error(&e, 400, "InvalidResourceName");
    let ok = service.queue_client("ok-queue");
    ok.create(&Metadata::new()).await.unwrap();
    let e = ok.receive_messages(33, None).await.unwrap_err();
    assert_service_error(&e, 400, "OutOfRangeQueryParameterValue");

    // A wrong key is an authentication failure, not retried.
    let wrong = QueueServiceClient::with_options(
        &server.endpoint(),
        Credential::shared_key("devstoreaccount1", "d3Jvbmcga2V5").unwrap(),
        fast(),
    )
    .unwrap();
    let e = wrong.list_all_queues(Default::default()).await.unwrap_err();
    assert_service_error(&e, 403, "AuthenticationFailed");

    // Nothing listens: a transport error.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let nowhere = QueueServiceClient::from_connection_string_with_options(
        &format!(
            "AccountName=devstoreaccount1;AccountKey={DEV_KEY};QueueEndpoint=http://{closed}/devstoreaccount1"
        ),
        fast(),
    )
    .unwrap();
    let e = nowhere.get_properties().await.unwrap_err();
    assert!(matches!(e, Error::Transport(_)), "{e}");
    assert_eq!(e.status(), None);
}

fn service_sas(perms: &str) -> ServiceSasBuilder {
    ServiceSasBuilder {
        permissions: Some(perms.parse::<ServicePermissions>().unwrap()),
        start: Some(OffsetDateTime::now_utc() - Duration::from_secs(300)),
        expiry: Some(OffsetDateTime::now_utc() + Duration::from_secs(3600)),
        ..Default::default()
    }
}

#[tokio::test]
async fn service_sas_round_trip() {
    let server = Server::start().await;
    let owner = server.client();
    let q = owner.queue_client("shared");
    q.create(&Metadata::new()).await.unwrap();

    let token = q.generate_sas(&service_sas("raup")).unwrap();
    assert!(
        token.contains("sp=raup") && token.contains("sig="),
        "{token}"
    );
    let via_sas = server.sas_client(&token).queue_client("shared");
    via_sas
        .send_message("through a SAS", &SendMessageOptions::default())
        .await
        .unwrap();
    assert_eq!(
        via_sas.peek_messages(1).await.unwrap()[0].text,
        "through a SAS"
    );
    let got = via_sas.receive_messages(1, None).await.unwrap();
    let upd = via_sas
        .update_message(
            &got[0].message_id,
            &got[0].pop_receipt,
            None,
            Duration::ZERO,
        )
        .await
        .unwrap();
    via_sas
        .delete_message(&got[0].message_id, &upd.pop_receipt)
        .await
        .unwrap();
    assert_eq!(
        via_sas
            .get_properties()
            .await
            .unwrap()
            .approximate_message_count,
        0
    );

    // A service SAS can never delete the queue or clear it.
    let e = via_sas.delete().await.unwrap_err();
    assert_eq!(e.status(), Some(403), "{e}");
    let e = via_sas.clear_messages().await.unwrap_err();
    assert_eq!(e.status(), Some(403), "{e}");

    // Read-only: adding is refused.
    let ro = server
        .sas_client(&q.generate_sas(&service_sas("r")).unwrap())
        .queue_client("shared");
    let e = ro
        .send_message("x", &SendMessageOptions::default())
        .await
        .unwrap_err();
    assert_service_error(&e, 403, "AuthorizationPermissionMismatch");

    // Signed for another queue: refused.
    let other = owner.queue_client("other");
    other.create(&Metadata::new()).await.unwrap();
    let e = server
        .sas_client(&token)
        .queue_client("other")
        .peek_messages(1)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(403), "{e}");

    // A stored policy named by the token supplies the permissions and times.
    q.set_access_policy(&[SignedIdentifier {
        id: "pol".into(),
        start: None,
        expiry: Some(OffsetDateTime::now_utc() + Duration::from_secs(3600)),
        permission: Some("a".into()),
    }])
    .await
    .unwrap();
    let by_policy = q
        .generate_sas(&ServiceSasBuilder {
            identifier: Some("pol".into()),
            ..Default::default()
        })
        .unwrap();
    server
        .sas_client(&by_policy)
        .queue_client("shared")
        .send_message("via policy", &SendMessageOptions::default())
        .await
        .unwrap();

    // A SAS credential cannot mint SAS tokens.
    let e = via_sas.generate_sas(&service_sas("r")).unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
}

#[tokio::test]
async fn account_sas_round_trip() {
    let server = Server::start().await;
    let owner = server.client();
    let token = owner
        .generate_account_sas(&AccountSasBuilder {
            resource_types: "sco".parse::<ResourceTypes>().unwrap(),
            permissions: "rwdlacup".parse::<AccountPermissions>().unwrap(),
            expiry: Some(OffsetDateTime::now_utc() + Duration::from_secs(3600)),
            ..Default::default()
        })
        .unwrap();
    assert!(
        token.contains("ss=q") && token.contains("srt=sco"),
        "{token}"
    );

    // Through a SAS connection string, as users paste them.
    let service = QueueServiceClient::from_connection_string_with_options(
        &format!(
            "QueueEndpoint={};SharedAccessSignature={token}",
            server.endpoint()
        ),
        fast(),
    )
    .unwrap();
    assert_eq!(service.account_name(), None);
    let q = service.queue_client("by-account-sas");
    q.create(&md(&[("k", "v")])).await.unwrap();
    let names: Vec<_> = service
        .list_all_queues(Default::default())
        .await
        .unwrap()
        .into_iter()
        .map(|q| q.name)
        .collect();
    assert_eq!(names, ["by-account-sas"]);
    q.send_message("hi", &SendMessageOptions::default())
        .await
        .unwrap();
    q.clear_messages().await.unwrap();
    assert_eq!(
        q.get_properties().await.unwrap().metadata,
        md(&[("k", "v")])
    );
    service.get_properties().await.unwrap();
    q.delete().await.unwrap();

    // ACLs are owner-only, whatever the SAS grants.
    owner
        .queue_client("acl-q")
        .create(&Metadata::new())
        .await
        .unwrap();
    let e = service
        .queue_client("acl-q")
        .get_access_policy()
        .await
        .unwrap_err();
    assert_service_error(&e, 403, "AuthorizationFailure");

    // List only: creating is refused.
    let list_only = owner
        .generate_account_sas(&AccountSasBuilder {
            resource_types: "s".parse::<ResourceTypes>().unwrap(),
            permissions: "l".parse::<AccountPermissions>().unwrap(),
            expiry: Some(OffsetDateTime::now_utc() + Duration::from_secs(3600)),
            ..Default::default()
        })
        .unwrap();
    let limited = server.sas_client(&list_only);
    assert_eq!(
        limited
            .list_all_queues(Default::default())
            .await
            .unwrap()
            .len(),
        1
    );
    let e = limited
        .queue_client("nope")
        .create(&Metadata::new())
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(403), "{e}");

    // Expired: authentication fails.
    let expired = owner
        .generate_account_sas(&AccountSasBuilder {
            resource_types: "sco".parse::<ResourceTypes>().unwrap(),
            permissions: "rl".parse::<AccountPermissions>().unwrap(),
            expiry: Some(OffsetDateTime::now_utc() - Duration::from_secs(60)),
            ..Default::default()
        })
        .unwrap();
    let e = server
        .sas_client(&expired)
        .list_all_queues(Default::default())
        .await
        .unwrap_err();
    assert_service_error(&e, 403, "AuthenticationFailed");
}
