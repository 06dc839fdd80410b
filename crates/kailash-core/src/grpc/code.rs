use http::StatusCode;

/// A gRPC status code (the `grpc-status` value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// 0: not an error.
    Ok = 0,
    /// 1: the operation was cancelled.
    Cancelled = 1,
    /// 2: an error no other code describes.
    Unknown = 2,
    /// 3: the request is malformed.
    InvalidArgument = 3,
    /// 4: the deadline passed before the operation completed.
    DeadlineExceeded = 4,
    /// 5: the entity was not found.
    NotFound = 5,
    /// 6: the entity already exists.
    AlreadyExists = 6,
    /// 7: authenticated but not allowed.
    PermissionDenied = 7,
    /// 8: a quota or rate limit is used up; retry later.
    ResourceExhausted = 8,
    /// 9: the system is not in a state the operation needs.
    FailedPrecondition = 9,
    /// 10: aborted by a concurrency conflict.
    Aborted = 10,
    /// 11: out of the valid range.
    OutOfRange = 11,
    /// 12: the method is not implemented.
    Unimplemented = 12,
    /// 13: an internal error.
    Internal = 13,
    /// 14: the service is unavailable for now; retry later.
    Unavailable = 14,
    /// 15: unrecoverable data loss.
    DataLoss = 15,
    /// 16: missing or invalid credentials.
    Unauthenticated = 16,
}

impl Code {
    /// The code for a refusal with this HTTP status.
    ///
    /// The kailash meanings, not the generic table of the gRPC spec
    /// (which maps `429` to `UNAVAILABLE` and `400` to `INTERNAL`): a
    /// rate limit, a quota, a lockout or an over-size body is a used-up
    /// resource, a malformed request an invalid argument.
    pub fn for_http(status: StatusCode) -> Self {
        match status.as_u16() {
            200..=299 => Code::Ok,
            400 | 422 => Code::InvalidArgument,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 => Code::NotFound,
            405 | 501 => Code::Unimplemented,
            408 | 504 => Code::DeadlineExceeded,
            409 => Code::Aborted,
            412 => Code::FailedPrecondition,
            413 | 423 | 429 | 431 => Code::ResourceExhausted,
            499 => Code::Cancelled,
            500 => Code::Internal,
            502 | 503 => Code::Unavailable,
            _ => Code::Unknown,
        }
    }

    /// The numeric value, as sent in `grpc-status`.
    pub fn as_i32(self) -> i32 {
        self as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_refusals_map_to_their_grpc_meaning() {
        let code = |s: u16| Code::for_http(StatusCode::from_u16(s).unwrap());
        assert_eq!(code(401), Code::Unauthenticated);
        assert_eq!(code(403), Code::PermissionDenied);
        assert_eq!(code(429), Code::ResourceExhausted);
        assert_eq!(code(423), Code::ResourceExhausted);
        assert_eq!(code(400), Code::InvalidArgument);
        assert_eq!(code(503), Code::Unavailable);
        assert_eq!(code(504), Code::DeadlineExceeded);
        assert_eq!(code(418), Code::Unknown);
        assert_eq!(Code::Unauthenticated.as_i32(), 16);
    }
}
