//! E-mail over SMTP (`lettre`, rustls with aws-lc-rs).

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::channel::{Channel, DeliveryError};
use super::rule::{AlertStatus, Notification};

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// TLS from the first byte (port 465).
    Tls,
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    StartTls,
    /// No encryption: only for a relay on the same host or network.
    None,
}

/// Where and how alert mail is sent.
#[derive(Clone)]
pub struct SmtpSettings {
    /// The SMTP server's host name (also the name its certificate is checked against).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// TLS, STARTTLS or none.
    pub security: SmtpSecurity,
    /// User name and password, when the server wants them.
    pub credentials: Option<(String, String)>,
    /// The sender (`Kailash Alerts <alerts@example.com>`).
    pub from: String,
    /// The recipients (at least one).
    pub to: Vec<String>,
    /// Bound on each SMTP command.
    pub timeout: Duration,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .field("from", &self.from)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

/// The most recipients of one alert mail.
pub const MAX_RECIPIENTS: usize = 50;

/// Sends each group of notifications as one plain-text mail to every
/// recipient.
///
/// ```
/// use std::time::Duration;
/// use kailash_monitoring::alert::{EmailChannel, SmtpSecurity, SmtpSettings};
///
/// let settings = SmtpSettings {
///     host: "smtp.example.com".into(),
///     port: 587,
///     security: SmtpSecurity::StartTls,
///     credentials: Some(("alerts".into(), "app-password".into())),
///     from: "Kailash Alerts <alerts@example.com>".into(),
///     to: vec!["oncall@example.com".into()],
///     timeout: Duration::from_secs(10),
/// };
/// assert!(!format!("{settings:?}").contains("app-password"));
/// assert!(EmailChannel::new(settings.clone()).is_ok());
/// let bad = SmtpSettings { to: vec!["not an address".into()], ..settings };
/// assert!(EmailChannel::new(bad).is_err());
/// ```
#[derive(Clone)]
pub struct EmailChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl std::fmt::Debug for EmailChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailChannel")
            .field("from", &self.from.to_string())
            .field("to", &self.to.len())
            .finish_non_exhaustive()
    }
}

impl EmailChannel {
    /// Checks the addresses and prepares the transport (connects per mail).
    pub fn new(settings: SmtpSettings) -> Result<Self, String> {
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| format!("from: not a mailbox ({e})"))?;
        if settings.to.is_empty() || settings.to.len() > MAX_RECIPIENTS {
            return Err(format!("to: 1 to {MAX_RECIPIENTS} recipients"));
        }
        let to = settings
            .to
            .iter()
            .enumerate()
            .map(|(i, t)| {
                t.parse::<Mailbox>()
                    .map_err(|e| format!("to[{i}]: not a mailbox ({e})"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if settings.host.is_empty() || settings.host.len() > 253 {
            return Err("host: 1 to 253 characters".to_owned());
        }
        let tls = |host: &str| {
            TlsParameters::new(host.to_owned()).map_err(|e| format!("TLS setup failed: {e}"))
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.as_str())
                .port(settings.port)
                .timeout(Some(settings.timeout));
        builder = match settings.security {
            SmtpSecurity::Tls => builder.tls(Tls::Wrapper(tls(&settings.host)?)),
            SmtpSecurity::StartTls => builder.tls(Tls::Required(tls(&settings.host)?)),
            SmtpSecurity::None => builder.tls(Tls::None),
        };
        if let Some((user, password)) = settings.credentials {
            builder = builder.credentials(Credentials::new(user, password));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            to,
        })
    }

    /// The subject and body for `group`.
    pub fn render(group: &[Notification]) -> (String, String) {
        let firing: Vec<&str> = group
            .iter()
            .filter(|n| n.status == AlertStatus::Firing)
            .map(|n| n.rule.as_str())
            .collect();
        let resolved: Vec<&str> = group
            .iter()
            .filter(|n| n.status == AlertStatus::Resolved)
            .map(|n| n.rule.as_str())
            .collect();
        let source = group.first().map_or("kailash", |n| n.source.as_str());
        let mut parts = Vec::new();
        if !firing.is_empty() {
            parts.push(format!("FIRING {}", firing.join(", ")));
        }
        if !resolved.is_empty() {
            parts.push(format!("RESOLVED {}", resolved.join(", ")));
        }
        let subject: String = format!("[{source}] {}", parts.join("; "))
            .chars()
            .take(200)
            .collect();
        let mut body = String::new();
        for n in group {
            body.push_str(&format!(
                "{}\n  rule:      {}\n  severity:  {}\n  condition: {}\n  value:     {}\n  since:     {}\n",
                n.status.as_str().to_uppercase(),
                n.rule,
                n.severity,
                n.condition,
                n.value_text(),
                n.starts_at
            ));
            if let Some(end) = n.ends_at {
                body.push_str(&format!("  until:     {end}\n"));
            }
            body.push_str(&format!("  summary:   {}\n\n", n.summary));
        }
        (subject, body)
    }
}

#[async_trait]
impl Channel for EmailChannel {
    fn kind(&self) -> &'static str {
        "email"
    }

    async fn deliver(&self, group: &[Notification]) -> Result<(), DeliveryError> {
        let (subject, body) = Self::render(group);
        let mut message = Message::builder().from(self.from.clone()).subject(subject);
        for to in &self.to {
            message = message.to(to.clone());
        }
        let message = message
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| DeliveryError::Permanent(format!("message: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(DeliveryError::Permanent(format!("SMTP: {e}"))),
            Err(e) => Err(DeliveryError::Retry(format!("SMTP: {e}"))),
        }
    }
}
