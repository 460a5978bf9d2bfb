//! Query parameters: case-insensitive lookup and Azure's validation answers for numbers.

use hematite_queue_protocol::query::decode_query;

use crate::error::ApiError;

/// The decoded query of one request.
#[derive(Debug, Default, Clone)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    /// Decodes a raw query string. A name given more than once (compared case-insensitively)
    /// gets its values joined with commas, as the service's parameter collection does: so
    /// `comp=acl&comp=metadata` reads as `acl,metadata`, which names no operation and is
    /// refused, rather than serving whichever came first.
    pub fn decode(raw: &str) -> Self {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in decode_query(raw, false) {
            match pairs.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(&k)) {
                Some((_, joined)) => {
                    joined.push(',');
                    joined.push_str(&v);
                }
                None => pairs.push((k, v)),
            }
        }
        Query(pairs)
    }

    /// The first value of a parameter, name compared case-insensitively (the TypeSpec spec spells
    /// some names in camelCase; the SDKs send lowercase).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// An optional integer parameter that must lie in `min..=max`.
    ///
    /// A value that is not an integer is `InvalidQueryParameterValue`; an integer outside the
    /// range is `OutOfRangeQueryParameterValue` with the bounds.
    pub fn int_in(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        let Some(raw) = self.get(name) else {
            return Ok(None);
        };
        let v = parse_int(name, raw)?;
        if v < min || v > max {
            return Err(ApiError::out_of_range_query(name, raw, min, max));
        }
        Ok(Some(v))
    }
}

pub fn parse_int(name: &str, raw: &str) -> Result<i64, ApiError> {
    raw.trim()
        .parse::<i64>()
        .map_err(|_| ApiError::invalid_query(name, raw, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hematite_queue_protocol::error::ErrorCode;

    #[test]
    fn repeated_names_are_joined() {
        let q = Query::decode("comp=acl&restype=x&COMP=metadata&a=%2F");
        assert_eq!(q.get("comp"), Some("acl,metadata"));
        assert_eq!(q.get("restype"), Some("x"));
        assert_eq!(q.get("a"), Some("/"));
        assert_eq!(q.0.len(), 3);
    }

    #[test]
    fn int_validation_answers() {
        let q = Query(vec![
            ("NumOfMessages".into(), "33".into()),
            ("visibilitytimeout".into(), "abc".into()),
            ("n".into(), "5".into()),
        ]);
        let e = q.int_in("numofmessages", 1, 32).expect_err("out of range");
        assert_eq!(e.code(), ErrorCode::OutOfRangeQueryParameterValue);
        assert_eq!(
            e.response.details,
            vec![
                ("QueryParameterName", "numofmessages".to_string()),
                ("QueryParameterValue", "33".to_string()),
                ("MinimumAllowed", "1".to_string()),
                ("MaximumAllowed", "32".to_string()),
            ]
        );
        let e = q
            .int_in("visibilitytimeout", 1, 10)
            .expect_err("not a number");
        assert_eq!(e.code(), ErrorCode::InvalidQueryParameterValue);
        assert_eq!(q.int_in("n", 1, 10).expect("ok"), Some(5));
        assert_eq!(q.int_in("absent", 1, 10).expect("ok"), None);
    }
}
