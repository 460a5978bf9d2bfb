//! Link addresses: which node of the namespace a link is for.
//!
//! Clients spell the same entity several ways: the Python SDK as `amqps://host:port/queue`
//! (always `amqps`, even against a plain-TCP emulator), the JS SDK as the bare `queue`,
//! others as `/queue`. Entity names are case-insensitive in Service Bus, so the path is
//! compared in lowercase.

use hematite_engine::SubQueue;

/// A node of the namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A queue or its dead-letter sub-queue.
    Entity { name: String, sub: SubQueue },
    /// The request/response node of an entity.
    Management { name: String, sub: SubQueue },
    /// Claims-based security: where clients put their tokens.
    Cbs,
}

/// The path of an address: scheme, authority and query removed, no leading or trailing
/// slash, lowercase. (Tokens for the administration API are signed for URLs with a query.)
pub fn path(address: &str) -> String {
    let address = address.split_once('?').map_or(address, |(p, _)| p);
    let rest = match address.find("://") {
        Some(i) => {
            let after = &address[i + 3..];
            after.find('/').map_or("", |j| &after[j..])
        }
        None => address,
    };
    rest.trim_matches('/').to_ascii_lowercase()
}

/// The path of entity `name`'s queue or dead-letter sub-queue, as tokens are scoped to it.
pub fn entity_path(name: &str, sub: SubQueue) -> String {
    match sub {
        SubQueue::Main => name.to_owned(),
        SubQueue::DeadLetter => format!("{name}/$deadletterqueue"),
    }
}

/// The path of that queue's `$management` node.
pub fn management_path(name: &str, sub: SubQueue) -> String {
    format!("{}/$management", entity_path(name, sub))
}

/// The node `address` names, or `None` for an address no node answers to (a topic or
/// subscription, a transfer dead-letter queue, an empty address).
pub fn parse(address: &str) -> Option<Node> {
    let p = path(address);
    if p == "$cbs" {
        return Some(Node::Cbs);
    }
    let (p, management) = match p.strip_suffix("/$management") {
        Some(entity) => (entity.to_owned(), true),
        None => (p, false),
    };
    let (name, sub) = match p.strip_suffix("/$deadletterqueue") {
        Some(entity) => (entity.to_owned(), SubQueue::DeadLetter),
        None => (p, SubQueue::Main),
    };
    if name.is_empty() || name.contains('$') || name.contains("/subscriptions/") {
        return None;
    }
    Some(if management {
        Node::Management { name, sub }
    } else {
        Node::Entity { name, sub }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(name: &str, sub: SubQueue) -> Option<Node> {
        Some(Node::Entity {
            name: name.into(),
            sub,
        })
    }

    #[test]
    fn every_spelling_of_an_entity_names_it() {
        for a in [
            "amqps://localhost:5672/Queue.1",
            "amqp://localhost/queue.1",
            "queue.1",
            "/queue.1",
            "sb://ns.servicebus.windows.net/QUEUE.1/",
        ] {
            assert_eq!(parse(a), entity("queue.1", SubQueue::Main), "{a}");
        }
    }

    #[test]
    fn sub_queues_and_nodes() {
        assert_eq!(
            parse("amqps://localhost/orders/$DeadLetterQueue"),
            entity("orders", SubQueue::DeadLetter)
        );
        assert_eq!(
            parse("orders/$management"),
            Some(Node::Management {
                name: "orders".into(),
                sub: SubQueue::Main
            })
        );
        assert_eq!(
            parse("orders/$DeadLetterQueue/$management"),
            Some(Node::Management {
                name: "orders".into(),
                sub: SubQueue::DeadLetter
            })
        );
        assert_eq!(parse("$cbs"), Some(Node::Cbs));
    }

    #[test]
    fn addresses_no_node_answers_to() {
        for a in [
            "",
            "amqps://localhost/",
            "orders/$Transfer/$DeadLetterQueue",
            "topic/Subscriptions/sub",
        ] {
            assert_eq!(parse(a), None, "{a}");
        }
    }
}
