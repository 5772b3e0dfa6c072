//! The probes' checks as a distributed run carries them (`RunResult.probes`): the coordinator
//! runs the probes once, before the load, and sends their checks; the client takes them as a
//! peer's word, bounded: only the probes' own names, a known status, a detail of at most
//! [`MAX_DETAIL_BYTES`] of printable text, and every probe present (one the coordinator did not
//! send is skipped, saying so).

use flashsale::pb;

use super::judge::NAMES;
use crate::audit::{Check, Status};

/// Longest detail kept from the wire, in bytes.
pub const MAX_DETAIL_BYTES: usize = 4096;

/// `checks` for `RunResult.probes`.
pub fn to_wire(checks: &[Check]) -> Vec<pb::AuditCheck> {
    checks
        .iter()
        .map(|c| pb::AuditCheck {
            name: c.name.clone(),
            status: status_name(c.status).to_string(),
            detail: bounded(&c.detail),
        })
        .collect()
}

/// The probe checks a coordinator sent, one per probe in [`NAMES`] order.
pub fn from_wire(wire: &[pb::AuditCheck]) -> Vec<Check> {
    NAMES
        .into_iter()
        .map(|id| match wire.iter().find(|c| c.name == id.name()) {
            None => Check::new(
                id,
                Status::Skipped,
                "the coordinator sent no result for this probe (an older coordinator?)".into(),
            ),
            Some(c) => match parse_status(&c.status) {
                Some(status) => Check::new(id, status, bounded(&c.detail)),
                None => Check::new(
                    id,
                    Status::Inconclusive,
                    format!(
                        "the coordinator sent an unknown status `{}`",
                        bounded(&c.status)
                    ),
                ),
            },
        })
        .collect()
}

fn status_name(status: Status) -> &'static str {
    match status {
        Status::Pass => "pass",
        Status::Fail => "fail",
        Status::Inconclusive => "inconclusive",
        Status::Skipped => "skipped",
    }
}

fn parse_status(raw: &str) -> Option<Status> {
    [
        Status::Pass,
        Status::Fail,
        Status::Inconclusive,
        Status::Skipped,
    ]
    .into_iter()
    .find(|s| status_name(*s) == raw)
}

/// At most [`MAX_DETAIL_BYTES`] of `text`, control characters replaced by `?`.
fn bounded(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_DETAIL_BYTES));
    for c in text.chars() {
        if out.len() + c.len_utf8() > MAX_DETAIL_BYTES {
            break;
        }
        out.push(if c.is_control() { '?' } else { c });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_a_peer_is_bounded() {
        let checks: Vec<Check> = NAMES
            .into_iter()
            .map(|n| Check::new(n, Status::Pass, format!("{} held", n.name())))
            .collect();
        assert_eq!(from_wire(&to_wire(&checks)), checks);

        let wire = vec![
            pb::AuditCheck {
                name: NAMES[0].name().into(),
                status: "fail".into(),
                detail: format!("{}\u{7}", "x".repeat(10_000)),
            },
            pb::AuditCheck {
                name: NAMES[1].name().into(),
                status: "great".into(),
                detail: String::new(),
            },
            pb::AuditCheck {
                name: "no_oversell".into(),
                status: "pass".into(),
                detail: String::new(),
            },
        ];
        let got = from_wire(&wire);
        assert_eq!(got.len(), NAMES.len());
        assert_eq!(got[0].status, Status::Fail);
        assert_eq!(got[0].detail.len(), MAX_DETAIL_BYTES);
        assert_eq!(got[1].status, Status::Inconclusive);
        assert!(got[2..].iter().all(|c| c.status == Status::Skipped));
        assert!(got.iter().all(|c| c.name != "no_oversell"));
    }
}
