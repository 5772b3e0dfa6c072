//! What a custom checkout's reply means: rules that classify a reply as purchased, sold out or
//! limit reached by its status (gRPC code or HTTP status) and by fields of its JSON body, and
//! where the order id and the stock left are. Parsed once when the spec is built.
//!
//! A rule is one or more conditions joined by `&&`; a condition is `code OP VALUE` (the gRPC
//! status by name or number, or the HTTP status) or `reply.PATH OP JSON` (a field of the reply,
//! compared with a JSON literal: `"CONFIRMED"`, `3`, `true`, `null`), with `==` or `!=`.
//! Examples: `reply.status == "CONFIRMED"`, `code == FAILED_PRECONDITION`,
//! `code == 409 && reply.error == "sold_out"`.

use serde_json::Value;
use tonic::Code;

use super::CustomError;
use super::path::FieldPath;
use crate::outcome::Outcome;

/// Most conditions in one rule.
const MAX_CONDITIONS: usize = 16;

/// The status a reply came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyStatus {
    Grpc(Code),
    Http(u16),
}

impl ReplyStatus {
    /// gRPC OK or an HTTP 2xx.
    pub fn is_success(self) -> bool {
        match self {
            ReplyStatus::Grpc(code) => code == Code::Ok,
            ReplyStatus::Http(status) => (200..300).contains(&status),
        }
    }

    /// The gRPC code this status is reported and audited as. HTTP statuses map so that the
    /// audit's notion of "may have been applied" holds: 500, 502 and 504 (the server or a
    /// proxy gave up, possibly after applying) are indeterminate; 503 and 4xx are refusals.
    pub fn code(self) -> Code {
        match self {
            ReplyStatus::Grpc(code) => code,
            ReplyStatus::Http(status) => match status {
                200..=299 => Code::Ok,
                400 | 422 => Code::InvalidArgument,
                401 => Code::Unauthenticated,
                403 => Code::PermissionDenied,
                404 => Code::NotFound,
                409 => Code::Aborted,
                429 => Code::ResourceExhausted,
                501 => Code::Unimplemented,
                503 => Code::Unavailable,
                504 => Code::DeadlineExceeded,
                500 => Code::Internal,
                400..=499 => Code::FailedPrecondition,
                _ => Code::Unknown,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Subject {
    Status,
    Field(FieldPath),
}

#[derive(Debug, Clone, PartialEq)]
enum Expected {
    Code(Code),
    Http(u16),
    Json(Value),
}

#[derive(Debug, Clone, PartialEq)]
struct Condition {
    subject: Subject,
    equal: bool,
    expected: Expected,
}

/// A parsed rule: all its conditions must hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    raw: String,
    conditions: Vec<Condition>,
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Rule {
    pub fn parse(what: &'static str, raw: &str) -> Result<Self, CustomError> {
        let invalid = |reason: String| CustomError::Rule {
            what,
            rule: raw.to_string(),
            reason,
        };
        let conditions = raw
            .split("&&")
            .map(|c| parse_condition(c.trim()).map_err(&invalid))
            .collect::<Result<Vec<_>, _>>()?;
        if conditions.len() > MAX_CONDITIONS {
            return Err(invalid(format!("more than {MAX_CONDITIONS} conditions")));
        }
        Ok(Self {
            raw: raw.trim().to_string(),
            conditions,
        })
    }

    /// Whether a reply with `status` and JSON body `reply` meets every condition.
    pub fn matches(&self, status: ReplyStatus, reply: Option<&Value>) -> bool {
        self.conditions.iter().all(|c| {
            let same = match (&c.subject, &c.expected) {
                (Subject::Status, Expected::Code(code)) => status.code() == *code,
                (Subject::Status, Expected::Http(want)) => match status {
                    ReplyStatus::Http(got) => got == *want,
                    ReplyStatus::Grpc(code) => code as i32 as u16 == *want,
                },
                (Subject::Field(path), Expected::Json(want)) => {
                    reply.and_then(|r| path.get(r)) == Some(want)
                }
                _ => false,
            };
            same == c.equal
        })
    }
}

fn parse_condition(raw: &str) -> Result<Condition, String> {
    let (lhs, equal, rhs) = if let Some((l, r)) = raw.split_once("==") {
        (l.trim(), true, r.trim())
    } else if let Some((l, r)) = raw.split_once("!=") {
        (l.trim(), false, r.trim())
    } else {
        return Err(format!(
            "`{raw}` is not `SUBJECT == VALUE` or `SUBJECT != VALUE`"
        ));
    };
    if rhs.is_empty() {
        return Err(format!("`{raw}` compares with nothing"));
    }
    if lhs == "code" || lhs == "status" && !rhs.starts_with('"') {
        let expected = match rhs.parse::<u16>() {
            Ok(n) if (100..=599).contains(&n) => Expected::Http(n),
            Ok(n) if n <= 16 => Expected::Code(Code::from(i32::from(n))),
            Ok(n) => {
                return Err(format!(
                    "{n} is neither a gRPC code (0-16) nor an HTTP status"
                ));
            }
            Err(_) => Expected::Code(flashsale::status::by_name(rhs).ok_or_else(|| {
                format!(
                    "`{rhs}` is not a gRPC status name such as NOT_FOUND or FAILED_PRECONDITION"
                )
            })?),
        };
        return Ok(Condition {
            subject: Subject::Status,
            equal,
            expected,
        });
    }
    let Some(field) = lhs.strip_prefix("reply.") else {
        return Err(format!(
            "`{lhs}` is neither `code` nor a reply field such as `reply.status`"
        ));
    };
    let path = FieldPath::parse(field).map_err(|e| e.to_string())?;
    let expected: Value = serde_json::from_str(rhs)
        .map_err(|_| format!("`{rhs}` is not a JSON value (quote strings: \"CONFIRMED\")"))?;
    Ok(Condition {
        subject: Subject::Field(path),
        equal,
        expected: Expected::Json(expected),
    })
}

/// How a custom checkout's replies are read.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeRules {
    /// A purchase went through [default: the call succeeded: gRPC OK or HTTP 2xx].
    pub purchased: Option<Rule>,
    /// The stock was too low for the order.
    pub sold_out: Rule,
    /// The customer reached the per-customer limit.
    pub limit_reached: Option<Rule>,
    /// Where a purchase's order id is; without it, an acknowledged purchase is identified by
    /// its request id.
    pub order_id: Option<FieldPath>,
    /// Where the stock left after the call is, if the reply says.
    pub stock_after: Option<FieldPath>,
}

impl OutcomeRules {
    /// What a reply with `status` and JSON body `reply` came to, for an attempt that asked for
    /// `quantity` units with `request_id`. Sold out and limit reached are checked first (a
    /// checkout may answer them with a success status), then purchased; a reply that meets no
    /// rule is its status when that is an error, else a reply that breaks the contract.
    pub fn classify(
        &self,
        status: ReplyStatus,
        reply: Option<&Value>,
        quantity: u32,
        request_id: &str,
    ) -> Outcome {
        let stock_after = self
            .stock_after
            .as_ref()
            .and_then(|p| reply.and_then(|r| p.get_i64(r)));
        if self.sold_out.matches(status, reply) {
            return Outcome::SoldOut { stock_after };
        }
        if self
            .limit_reached
            .as_ref()
            .is_some_and(|r| r.matches(status, reply))
        {
            return Outcome::LimitReached { stock_after };
        }
        let purchased = match &self.purchased {
            Some(rule) => rule.matches(status, reply),
            None => status.is_success(),
        };
        if purchased {
            let order_id = match &self.order_id {
                Some(path) => reply.and_then(|r| path.get_text(r)).unwrap_or_default(),
                None => request_id.to_string(),
            };
            return Outcome::Purchased {
                order_id,
                quantity,
                stock_after,
            };
        }
        if status.is_success() {
            Outcome::BadReply
        } else {
            Outcome::Status(status.code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> OutcomeRules {
        OutcomeRules {
            purchased: Some(Rule::parse("--purchased", r#"reply.status == "CONFIRMED""#).unwrap()),
            sold_out: Rule::parse("--sold-out", "code == FAILED_PRECONDITION").unwrap(),
            limit_reached: Some(
                Rule::parse(
                    "--limit-reached",
                    r#"code == OK && reply.status == "LIMIT""#,
                )
                .unwrap(),
            ),
            order_id: Some(FieldPath::parse("reply.order.id").unwrap()),
            stock_after: Some(FieldPath::parse("left").unwrap()),
        }
    }

    #[test]
    fn classifies_grpc_replies() {
        let r = rules();
        let ok = ReplyStatus::Grpc(Code::Ok);
        let reply = json!({"status": "CONFIRMED", "order": {"id": "o7"}, "left": "12"});
        assert_eq!(
            r.classify(ok, Some(&reply), 2, "rq"),
            Outcome::Purchased {
                order_id: "o7".into(),
                quantity: 2,
                stock_after: Some(12)
            }
        );
        let sold = ReplyStatus::Grpc(Code::FailedPrecondition);
        assert_eq!(
            r.classify(sold, None, 1, "rq"),
            Outcome::SoldOut { stock_after: None }
        );
        assert_eq!(
            r.classify(ok, Some(&json!({"status": "LIMIT"})), 1, "rq"),
            Outcome::LimitReached { stock_after: None }
        );
        assert_eq!(
            r.classify(ok, Some(&json!({"status": "PENDING"})), 1, "rq"),
            Outcome::BadReply
        );
        assert_eq!(
            r.classify(ReplyStatus::Grpc(Code::Unavailable), None, 1, "rq"),
            Outcome::Status(Code::Unavailable)
        );
    }

    #[test]
    fn classifies_http_replies_and_defaults() {
        let r = OutcomeRules {
            purchased: None,
            sold_out: Rule::parse("--sold-out", r#"code == 409 && reply.error == "sold_out""#)
                .unwrap(),
            limit_reached: None,
            order_id: None,
            stock_after: None,
        };
        let ok = ReplyStatus::Http(201);
        assert!(matches!(
            r.classify(ok, Some(&json!({})), 1, "rq-1"),
            Outcome::Purchased { ref order_id, .. } if order_id == "rq-1"
        ));
        let sold = json!({"error": "sold_out"});
        assert_eq!(
            r.classify(ReplyStatus::Http(409), Some(&sold), 1, "rq"),
            Outcome::SoldOut { stock_after: None }
        );
        // A 409 for another reason is a refusal, 500 and 504 are indeterminate.
        assert_eq!(
            r.classify(ReplyStatus::Http(409), Some(&json!({})), 1, "rq"),
            Outcome::Status(Code::Aborted)
        );
        assert!(
            r.classify(ReplyStatus::Http(500), None, 1, "rq")
                .is_indeterminate()
        );
        assert!(
            r.classify(ReplyStatus::Http(504), None, 1, "rq")
                .is_indeterminate()
        );
        assert!(
            !r.classify(ReplyStatus::Http(503), None, 1, "rq")
                .is_indeterminate()
        );
    }

    #[test]
    fn refuses_malformed_rules() {
        for bad in [
            "status",
            "code == NOPE",
            "code == 77",
            "reply.status == CONFIRMED",
            "customer == \"a\"",
            "reply. == 1",
            "code ==",
        ] {
            assert!(Rule::parse("--purchased", bad).is_err(), "{bad}");
        }
        assert!(Rule::parse("--sold-out", "code == 5 && reply.x != null").is_ok());
    }
}
