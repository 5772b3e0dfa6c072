//! Field paths into a JSON reply: `status`, `order.id`, `items[0].qty` (a leading `reply.` is
//! allowed and ignored), parsed once when the spec is built.

use serde_json::Value;

use super::CustomError;

/// Most steps in a path.
const MAX_STEPS: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// A parsed path into a JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    raw: String,
    steps: Vec<Step>,
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.raw)
    }
}

impl FieldPath {
    pub fn parse(raw: &str) -> Result<Self, CustomError> {
        let invalid = |reason: &str| CustomError::Path {
            path: raw.to_string(),
            reason: reason.to_string(),
        };
        let body = raw.trim();
        let body = body.strip_prefix("reply.").unwrap_or(body);
        if body.is_empty() {
            return Err(invalid("it is empty"));
        }
        let mut steps = Vec::new();
        for segment in body.split('.') {
            let (key, mut indexes) = match segment.find('[') {
                Some(i) => (&segment[..i], &segment[i..]),
                None => (segment, ""),
            };
            if key.is_empty() && indexes.is_empty() {
                return Err(invalid("an empty step (`..` or a trailing `.`)"));
            }
            if !key.is_empty() {
                if !key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return Err(invalid("a field name holds letters, digits, `_` and `-`"));
                }
                steps.push(Step::Key(key.to_string()));
            }
            while !indexes.is_empty() {
                let close = indexes
                    .find(']')
                    .ok_or_else(|| invalid("a `[` is never closed"))?;
                let index = indexes[1..close]
                    .parse::<usize>()
                    .map_err(|_| invalid("an index is a number, e.g. items[0]"))?;
                steps.push(Step::Index(index));
                indexes = &indexes[close + 1..];
                if !indexes.is_empty() && !indexes.starts_with('[') {
                    return Err(invalid("text after `]`"));
                }
            }
        }
        if steps.len() > MAX_STEPS {
            return Err(invalid("too many steps"));
        }
        Ok(Self {
            raw: raw.trim().to_string(),
            steps,
        })
    }

    /// The value at this path in `value`, if there is one.
    pub fn get<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        self.steps.iter().try_fold(value, |v, step| match step {
            Step::Key(key) => v.get(key.as_str()),
            Step::Index(i) => v.get(*i),
        })
    }

    /// The integer at this path: a JSON number or a string of digits (proto3 JSON writes
    /// 64-bit integers as strings).
    pub fn get_i64(&self, value: &Value) -> Option<i64> {
        match self.get(value)? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// The value at this path as text: a string as it is, a number in decimal.
    pub fn get_text(&self, value: &Value) -> Option<String> {
        match self.get(value)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nested_fields() {
        let v: Value = serde_json::json!({
            "status": "CONFIRMED",
            "order": {"id": "o-1", "left": "41"},
            "items": [{"qty": 2}],
        });
        assert_eq!(
            FieldPath::parse("reply.status").unwrap().get(&v),
            Some(&Value::from("CONFIRMED"))
        );
        assert_eq!(
            FieldPath::parse("order.id")
                .unwrap()
                .get_text(&v)
                .as_deref(),
            Some("o-1")
        );
        assert_eq!(
            FieldPath::parse("order.left").unwrap().get_i64(&v),
            Some(41)
        );
        assert_eq!(
            FieldPath::parse("items[0].qty").unwrap().get_i64(&v),
            Some(2)
        );
        assert_eq!(FieldPath::parse("items[1].qty").unwrap().get(&v), None);
        assert_eq!(FieldPath::parse("missing.x").unwrap().get(&v), None);
    }

    #[test]
    fn refuses_malformed_paths() {
        for bad in ["", "reply.", "a..b", "a[x]", "a[0", "a b", "a[0]b"] {
            assert!(FieldPath::parse(bad).is_err(), "{bad}");
        }
    }
}
