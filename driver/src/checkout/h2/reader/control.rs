//! The connection's control frames: SETTINGS (the peer's limits, acknowledged) and
//! WINDOW_UPDATE (our send windows).

use tonic::Code;

use super::super::frame::{self, Head, flag, reason, setting};
use super::super::limits::MAX_PENDING_SETTINGS_ACKS;
use super::super::state::State;
use super::{ConnError, Reader, u32_at, violation};

impl Reader {
    pub(super) fn settings(
        &mut self,
        state: &mut State,
        head: Head,
        payload: &[u8],
    ) -> Result<(), ConnError> {
        if head.has(flag::ACK) {
            self.settings_acked = true;
            return match payload.is_empty() {
                true => Ok(()),
                false => Err(violation(
                    reason::FRAME_SIZE_ERROR,
                    format!("SETTINGS acknowledgement with {} bytes", payload.len()),
                )),
            };
        }
        if !payload.len().is_multiple_of(6) {
            return Err(violation(
                reason::FRAME_SIZE_ERROR,
                format!("SETTINGS of {} bytes, not 6-byte entries", payload.len()),
            ));
        }
        if !state.acks.settings() {
            return Err(violation(
                reason::ENHANCE_YOUR_CALM,
                format!(
                    "SETTINGS flood: over {MAX_PENDING_SETTINGS_ACKS} acknowledgements unsent \
                     (the target sends SETTINGS and does not read)"
                ),
            ));
        }
        for entry in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([entry[0], entry[1]]);
            let value = u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]);
            match id {
                setting::MAX_CONCURRENT_STREAMS => {
                    state.max_concurrent = usize::try_from(value).unwrap_or(usize::MAX);
                }
                setting::INITIAL_WINDOW_SIZE => {
                    let value = i64::from(value);
                    if value > frame::MAX_WINDOW {
                        return Err(violation(
                            reason::FLOW_CONTROL_ERROR,
                            format!("SETTINGS_INITIAL_WINDOW_SIZE of {value}"),
                        ));
                    }
                    let delta = value - state.peer_initial_window;
                    state.peer_initial_window = value;
                    state.adjust_stream_windows(delta)?;
                }
                setting::MAX_FRAME_SIZE => {
                    if !(frame::DEFAULT_MAX_FRAME..=frame::MAX_MAX_FRAME).contains(&value) {
                        return Err(violation(
                            reason::PROTOCOL_ERROR,
                            format!("SETTINGS_MAX_FRAME_SIZE of {value}"),
                        ));
                    }
                    state.max_frame = value as usize;
                }
                setting::ENABLE_PUSH if value > 1 => {
                    return Err(violation(
                        reason::PROTOCOL_ERROR,
                        format!("SETTINGS_ENABLE_PUSH of {value}"),
                    ));
                }
                // A request whose header list is larger is not sent (INTERNAL, as grpc-go).
                setting::MAX_HEADER_LIST_SIZE => state.peer_max_header_list = value,
                // HEADER_TABLE_SIZE: our encoder uses no dynamic table; unknown settings are
                // ignored (§6.5.2).
                _ => {}
            }
        }
        frame::put_settings_ack(&mut state.out);
        self.settings_seen = true;
        state.wake_waiters();
        state.pump();
        Ok(())
    }

    pub(super) fn window_update(
        &mut self,
        state: &mut State,
        head: Head,
        payload: &[u8],
    ) -> Result<(), ConnError> {
        let increment = i64::from(u32_at(&head, payload, 4)? & 0x7fff_ffff);
        if head.stream == 0 {
            if increment == 0 {
                return Err(violation(
                    reason::PROTOCOL_ERROR,
                    "WINDOW_UPDATE of 0 on the connection",
                ));
            }
            state.conn_send_window += increment;
            if state.conn_send_window > frame::MAX_WINDOW {
                return Err(violation(
                    reason::FLOW_CONTROL_ERROR,
                    "WINDOW_UPDATE past 2^31 - 1 on the connection",
                ));
            }
        } else if let Some((_, slot)) = state.slot_of(head.stream) {
            slot.send_window += increment;
            if increment == 0 || slot.send_window > frame::MAX_WINDOW {
                let code = if increment == 0 {
                    reason::PROTOCOL_ERROR
                } else {
                    reason::FLOW_CONTROL_ERROR
                };
                state.finish(head.stream, Err(Code::Internal), Some(code));
            }
        }
        state.pump();
        Ok(())
    }
}
