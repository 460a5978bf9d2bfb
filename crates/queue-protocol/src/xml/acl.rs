//! Stored access policies: the `SignedIdentifiers` body of Get/Set Queue ACL.

use std::collections::HashSet;

use time::OffsetDateTime;

use super::dom;
use super::writer::{close, empty_element, open, text_element, DECLARATION};
use super::XmlError;
use crate::datetime::{format_iso8601_7, parse_iso8601};

/// At most this many policies per queue.
pub const MAX_SIGNED_IDENTIFIERS: usize = 5;
/// Longest policy id, in characters.
pub const MAX_SIGNED_IDENTIFIER_ID_LEN: usize = 64;
/// Letters a queue policy may grant.
const QUEUE_PERMISSION_LETTERS: &str = "raup";

/// One stored access policy. Every policy field is optional, because a SAS that names the
/// policy may supply the missing ones itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIdentifier {
    pub id: String,
    pub start: Option<OffsetDateTime>,
    pub expiry: Option<OffsetDateTime>,
    pub permission: Option<String>,
}

/// Parses a Set Queue ACL body. An empty (or whitespace-only) body clears all policies, so
/// it yields an empty list.
///
/// Error choices, where the service's documentation leaves them open:
/// - more than five identifiers, a duplicate `Id`, or a permission letter outside `raup`
///   are document-level violations: `Invalid` (Azurite answers `InvalidXmlDocument`);
/// - an `Id` longer than 64 characters, or empty, is a bad node value: `InvalidValue("Id")`;
/// - an empty `Start`, `Expiry` or `Permission` element means "not set".
pub fn parse_signed_identifiers(body: &[u8]) -> Result<Vec<SignedIdentifier>, XmlError> {
    let Some(root) = dom::parse(body)? else {
        return Ok(Vec::new());
    };
    if root.name != "SignedIdentifiers" {
        return Err(XmlError::Malformed);
    }
    let count = root.children_named("SignedIdentifier").count();
    if count > MAX_SIGNED_IDENTIFIERS {
        return Err(XmlError::Invalid(format!(
            "{count} signed identifiers given, at most {MAX_SIGNED_IDENTIFIERS} are allowed"
        )));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(count);
    for si in root.children_named("SignedIdentifier") {
        let id = si.required_text("Id")?;
        let id_len = id.chars().count();
        if id_len == 0 || id_len > MAX_SIGNED_IDENTIFIER_ID_LEN {
            return Err(XmlError::InvalidValue("Id".into()));
        }
        if !seen.insert(id) {
            return Err(XmlError::Invalid(format!(
                "duplicate signed identifier {id:?}"
            )));
        }
        let policy = si.child("AccessPolicy");
        let field = |name: &str| {
            policy
                .and_then(|p| p.child_text(name))
                .filter(|s| !s.is_empty())
        };
        let date = |name: &str| {
            field(name)
                .map(|s| parse_iso8601(s).ok_or_else(|| XmlError::InvalidValue(name.into())))
                .transpose()
        };
        let permission = field("Permission");
        if let Some(p) = permission {
            if !p.chars().all(|c| QUEUE_PERMISSION_LETTERS.contains(c)) {
                return Err(XmlError::Invalid(format!(
                    "permission {p:?} has letters outside \"{QUEUE_PERMISSION_LETTERS}\""
                )));
            }
        }
        out.push(SignedIdentifier {
            id: id.to_owned(),
            start: date("Start")?,
            expiry: date("Expiry")?,
            permission: permission.map(str::to_owned),
        });
    }
    Ok(out)
}

/// The Get Queue ACL body. Unset policy fields are left out, and no policies at all is
/// `<SignedIdentifiers />`.
pub fn write_signed_identifiers(ids: &[SignedIdentifier]) -> String {
    let mut out = String::with_capacity(DECLARATION.len() + 40 + ids.len() * 250);
    out.push_str(DECLARATION);
    if ids.is_empty() {
        empty_element(&mut out, "SignedIdentifiers");
        return out;
    }
    open(&mut out, "SignedIdentifiers");
    for si in ids {
        open(&mut out, "SignedIdentifier");
        text_element(&mut out, "Id", &si.id);
        if si.start.is_none() && si.expiry.is_none() && si.permission.is_none() {
            empty_element(&mut out, "AccessPolicy");
        } else {
            open(&mut out, "AccessPolicy");
            if let Some(t) = si.start {
                text_element(&mut out, "Start", &format_iso8601_7(t));
            }
            if let Some(t) = si.expiry {
                text_element(&mut out, "Expiry", &format_iso8601_7(t));
            }
            if let Some(p) = &si.permission {
                text_element(&mut out, "Permission", p);
            }
            close(&mut out, "AccessPolicy");
        }
        close(&mut out, "SignedIdentifier");
    }
    close(&mut out, "SignedIdentifiers");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const DOC_SAMPLE: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>
<SignedIdentifiers>
  <SignedIdentifier>
    <Id>MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=</Id>
    <AccessPolicy>
      <Start>2009-09-28T08:49:37.0000000Z</Start>
      <Expiry>2009-09-29T08:49:37.0000000Z</Expiry>
      <Permission>raup</Permission>
    </AccessPolicy>
  </SignedIdentifier>
</SignedIdentifiers>";

    fn full() -> SignedIdentifier {
        SignedIdentifier {
            id: "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=".into(),
            start: Some(datetime!(2009-09-28 08:49:37 UTC)),
            expiry: Some(datetime!(2009-09-29 08:49:37 UTC)),
            permission: Some("raup".into()),
        }
    }

    #[test]
    fn parses_docs_sample() {
        assert_eq!(
            parse_signed_identifiers(DOC_SAMPLE.as_bytes()),
            Ok(vec![full()])
        );
    }

    #[test]
    fn empty_bodies_clear() {
        for body in [
            "",
            "  \n",
            "<SignedIdentifiers/>",
            "<SignedIdentifiers></SignedIdentifiers>",
        ] {
            assert_eq!(
                parse_signed_identifiers(body.as_bytes()),
                Ok(vec![]),
                "{body:?}"
            );
        }
    }

    #[test]
    fn partial_policies_and_date_forms() {
        let body = "<SignedIdentifiers>\
            <SignedIdentifier><Id>a</Id></SignedIdentifier>\
            <SignedIdentifier><Id> b </Id><AccessPolicy><Start>2024-01-01</Start>\
              <Permission/></AccessPolicy></SignedIdentifier>\
            <SignedIdentifier><AccessPolicy><Expiry>2024-01-01T10:00+02:00</Expiry>\
              <Permission>p</Permission></AccessPolicy><Id>c</Id></SignedIdentifier>\
            </SignedIdentifiers>";
        assert_eq!(
            parse_signed_identifiers(body.as_bytes()),
            Ok(vec![
                SignedIdentifier {
                    id: "a".into(),
                    start: None,
                    expiry: None,
                    permission: None
                },
                SignedIdentifier {
                    id: "b".into(),
                    start: Some(datetime!(2024-01-01 00:00 UTC)),
                    expiry: None,
                    permission: None,
                },
                SignedIdentifier {
                    id: "c".into(),
                    start: None,
                    expiry: Some(datetime!(2024-01-01 08:00 UTC)),
                    permission: Some("p".into()),
                },
            ])
        );
    }

    fn ids(n: usize) -> String {
        let items: String = (0..n)
            .map(|i| format!("<SignedIdentifier><Id>id{i}</Id></SignedIdentifier>"))
            .collect();
        format!("<SignedIdentifiers>{items}</SignedIdentifiers>")
    }

    #[test]
    fn error_paths() {
        assert_eq!(
            parse_signed_identifiers(ids(5).as_bytes()).map(|v| v.len()),
            Ok(5)
        );
        assert!(matches!(
            parse_signed_identifiers(ids(6).as_bytes()),
            Err(XmlError::Invalid(_))
        ));
        let one = |inner: &str| {
            parse_signed_identifiers(
                format!("<SignedIdentifiers><SignedIdentifier>{inner}</SignedIdentifier></SignedIdentifiers>")
                    .as_bytes(),
            )
        };
        assert_eq!(one("<AccessPolicy/>"), Err(XmlError::MissingNode("Id")));
        assert_eq!(one("<Id></Id>"), Err(XmlError::InvalidValue("Id".into())));
        assert_eq!(
            one(&format!("<Id>{}</Id>", "x".repeat(65))),
            Err(XmlError::InvalidValue("Id".into()))
        );
        assert_eq!(
            one(&format!("<Id>{}</Id>", "é".repeat(64))).map(|v| v.len()),
            Ok(1)
        );
        assert!(matches!(
            one("<Id>a</Id><AccessPolicy><Permission>rw</Permission></AccessPolicy>"),
            Err(XmlError::Invalid(_))
        ));
        assert!(matches!(
            one("<Id>a</Id><AccessPolicy><Permission>R</Permission></AccessPolicy>"),
            Err(XmlError::Invalid(_))
        ));
        assert_eq!(
            one("<Id>a</Id><AccessPolicy><Start>tomorrow</Start></AccessPolicy>"),
            Err(XmlError::InvalidValue("Start".into()))
        );
        assert_eq!(
            one("<Id>a</Id><AccessPolicy><Expiry>2024-13-01T00:00:00Z</Expiry></AccessPolicy>"),
            Err(XmlError::InvalidValue("Expiry".into()))
        );
        let dup = "<SignedIdentifiers><SignedIdentifier><Id>a</Id></SignedIdentifier>\
                   <SignedIdentifier><Id>a</Id></SignedIdentifier></SignedIdentifiers>";
        assert!(matches!(
            parse_signed_identifiers(dup.as_bytes()),
            Err(XmlError::Invalid(_))
        ));
        assert_eq!(
            parse_signed_identifiers(b"<Foo/>"),
            Err(XmlError::Malformed)
        );
        assert_eq!(
            parse_signed_identifiers(b"<SignedIdentifiers>"),
            Err(XmlError::Malformed)
        );
    }

    #[test]
    fn golden_write() {
        let partial = SignedIdentifier {
            id: "p&1".into(),
            start: None,
            expiry: Some(datetime!(2030-01-01 00:00:00.5 UTC)),
            permission: None,
        };
        let bare = SignedIdentifier {
            id: "b".into(),
            start: None,
            expiry: None,
            permission: None,
        };
        assert_eq!(
            write_signed_identifiers(&[full(), partial, bare]),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><SignedIdentifiers><SignedIdentifier>\
             <Id>MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=</Id><AccessPolicy>\
             <Start>2009-09-28T08:49:37.0000000Z</Start><Expiry>2009-09-29T08:49:37.0000000Z</Expiry>\
             <Permission>raup</Permission></AccessPolicy></SignedIdentifier>\
             <SignedIdentifier><Id>p&amp;1</Id><AccessPolicy>\
             <Expiry>2030-01-01T00:00:00.5000000Z</Expiry></AccessPolicy></SignedIdentifier>\
             <SignedIdentifier><Id>b</Id><AccessPolicy /></SignedIdentifier></SignedIdentifiers>"
        );
        assert_eq!(
            write_signed_identifiers(&[]),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><SignedIdentifiers />"
        );
    }

    #[test]
    fn round_trip() {
        let list = vec![
            full(),
            SignedIdentifier {
                id: "x".into(),
                start: None,
                expiry: None,
                permission: Some("ap".into()),
            },
        ];
        assert_eq!(
            parse_signed_identifiers(write_signed_identifiers(&list).as_bytes()),
            Ok(list)
        );
    }
}
