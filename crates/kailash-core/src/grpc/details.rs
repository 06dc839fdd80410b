//! The `google.rpc.Status` / `google.rpc.RetryInfo` messages of
//! `grpc-status-details-bin`, encoded by hand: three tiny messages do not
//! justify a protobuf runtime in the core crate.

use std::time::Duration;

use super::Code;

const RETRY_INFO_TYPE_URL: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// The encoded `google.rpc.Status { code, message, details: [RetryInfo {
/// retry_delay }] }` — the value of `grpc-status-details-bin` (before its
/// base64), as `tonic_types::StatusExt::get_details_retry_info` reads it.
pub fn retry_info_details(code: Code, message: &str, retry_delay: Duration) -> Vec<u8> {
    // google.protobuf.Duration { seconds = 1, nanos = 2 }
    let mut duration = Vec::with_capacity(16);
    varint_field(&mut duration, 1, retry_delay.as_secs());
    varint_field(&mut duration, 2, u64::from(retry_delay.subsec_nanos()));
    // google.rpc.RetryInfo { retry_delay = 1 }
    let mut retry_info = Vec::with_capacity(duration.len() + 2);
    bytes_field(&mut retry_info, 1, &duration);
    // google.protobuf.Any { type_url = 1, value = 2 }
    let mut any = Vec::with_capacity(RETRY_INFO_TYPE_URL.len() + retry_info.len() + 4);
    bytes_field(&mut any, 1, RETRY_INFO_TYPE_URL.as_bytes());
    bytes_field(&mut any, 2, &retry_info);
    // google.rpc.Status { code = 1, message = 2, details = 3 }
    let mut status = Vec::with_capacity(message.len() + any.len() + 8);
    // Codes are 0..=16: never negative, so the varint is the plain value.
    varint_field(&mut status, 1, u64::from(code.as_i32().unsigned_abs()));
    bytes_field(&mut status, 2, message.as_bytes());
    bytes_field(&mut status, 3, &any);
    status
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A varint field; zero is the default and is omitted, as protobuf does.
fn varint_field(out: &mut Vec<u8>, field: u64, value: u64) {
    if value != 0 {
        varint(out, field << 3);
        varint(out, value);
    }
}

/// A length-delimited field (wire type 2); empty is omitted.
fn bytes_field(out: &mut Vec<u8>, field: u64, value: &[u8]) {
    if !value.is_empty() {
        varint(out, (field << 3) | 2);
        varint(out, value.len() as u64);
        out.extend_from_slice(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_status_with_retry_info() {
        let bytes =
            retry_info_details(Code::ResourceExhausted, "slow", Duration::from_millis(1500));
        let mut expected = vec![0x08, 8, 0x12, 4];
        expected.extend_from_slice(b"slow");
        // Any: type_url (40 bytes) + value (RetryInfo: Duration {1 s, 500_000_000 ns}).
        let duration = [0x08, 1, 0x10, 0x80, 0xca, 0xb5, 0xee, 0x01];
        let mut any = vec![0x0a, RETRY_INFO_TYPE_URL.len() as u8];
        any.extend_from_slice(RETRY_INFO_TYPE_URL.as_bytes());
        any.extend_from_slice(&[0x12, duration.len() as u8 + 2, 0x0a, duration.len() as u8]);
        any.extend_from_slice(&duration);
        expected.push(0x1a);
        expected.push(any.len() as u8);
        expected.extend_from_slice(&any);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn long_values_use_multi_byte_varints() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        let message = "x".repeat(200);
        let bytes = retry_info_details(Code::Unavailable, &message, Duration::from_secs(1));
        assert_eq!(&bytes[..5], &[0x08, 14, 0x12, 0xc8, 0x01]);
    }
}
