//! How a run names things on the wire, so that the server's book can be matched to the attempts
//! that placed each order: user ids `<prefix><n>`, request ids `<user_id>.<seq>`, and a stable
//! 64-bit hash of order ids.

/// Who sent an attempt: the user's number in the run and the attempt's sequence number for
/// that user. Together with the run's user prefix it is the request id `PREFIXuser.seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttemptKey {
    pub user: u32,
    pub seq: u32,
}

/// The request id of attempt `key` in a run whose users are named `prefix<n>`.
pub fn request_id(user_id: &str, seq: u32) -> String {
    format!("{user_id}.{seq}")
}

/// The user number of a user id of this run (`prefix<n>`), if it is one.
pub fn parse_user(prefix: &str, user_id: &str) -> Option<u32> {
    let digits = user_id.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The attempt a request id of this run names, if it is one.
pub fn parse_request_id(prefix: &str, request_id: &str) -> Option<AttemptKey> {
    let (user_id, seq) = request_id.rsplit_once('.')?;
    if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(AttemptKey {
        user: parse_user(prefix, user_id)?,
        seq: seq.parse().ok()?,
    })
}

/// 64-bit FNV-1a: stable across processes and versions, so workers' hashes can be merged.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_round_trip() {
        let id = request_id("p-17", 3);
        assert_eq!(id, "p-17.3");
        assert_eq!(
            parse_request_id("p-", &id),
            Some(AttemptKey { user: 17, seq: 3 })
        );
        for foreign in [
            "q-17.3",
            "p-17",
            "p-.3",
            "p-17.",
            "p-1x.3",
            "p-17.-1",
            "p-99999999999.1",
        ] {
            assert_eq!(parse_request_id("p-", foreign), None, "{foreign}");
        }
        assert_eq!(parse_user("p-", "p-0"), Some(0));
        assert_eq!(parse_user("p-", "p-"), None);
    }

    #[test]
    fn fnv_is_stable() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
