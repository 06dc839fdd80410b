//! Webhook delivery over [`crate::outbound`]: 2xx is delivered; 5xx, 429
//! and transport failures are worth a retry; other statuses are not.

use super::channel::DeliveryError;
use crate::outbound::Target;

/// POSTs `body` as JSON to `target`.
pub(crate) async fn post_json(target: &Target, body: Vec<u8>) -> Result<(), DeliveryError> {
    let status = target
        .post_json(body, "kailash-alerting")
        .await
        .map_err(|e| {
            if e.retry {
                DeliveryError::Retry(e.message)
            } else {
                DeliveryError::Permanent(e.message)
            }
        })?;
    match status {
        200..=299 => Ok(()),
        429 | 500..=599 => Err(DeliveryError::Retry(format!("HTTP status {status}"))),
        _ => Err(DeliveryError::Permanent(format!("HTTP status {status}"))),
    }
}
