//! Email over SMTP: the message, the transport a channel's settings describe, and
//! what an SMTP answer means for a retry.

use super::{Attempt, NotifyChannel, SmtpTls};
use crate::model::error_chain;
use crate::model::rate::format_duration;
use crate::model::Secret;
use lettre::address::AddressError;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Why a message could not be put together from a channel's addresses.
#[derive(Debug, thiserror::Error)]
pub(super) enum MessageError {
    #[error("from: {0}")]
    From(#[source] AddressError),
    #[error("to: {0}")]
    To(#[source] AddressError),
    #[error("cc: {0}")]
    Cc(#[source] AddressError),
    #[error(transparent)]
    Body(#[from] lettre::error::Error),
}

/// Who a message is from and for.
pub(super) struct Addresses<'a> {
    pub from: &'a str,
    pub to: &'a [String],
    pub cc: &'a [String],
}

/// The SMTP server and how salve talks to it.
pub(super) struct Server<'a> {
    pub host: &'a str,
    pub port: u16,
    pub tls: SmtpTls,
    /// PEM of a CA to trust besides the built-in roots.
    pub ca_pem: Option<&'a [u8]>,
    pub credentials: Option<(&'a String, &'a Secret)>,
}

/// One try at sending `text` through `server`.
pub(super) async fn send(
    channel: &NotifyChannel,
    server: Server<'_>,
    addresses: Addresses<'_>,
    subject: Option<&str>,
    text: &str,
) -> Attempt {
    let message = match message(addresses, subject, text) {
        Ok(m) => m,
        Err(error) => {
            return Attempt::Permanent {
                error: format!("cannot build the message: {error}"),
                status: None,
            }
        }
    };
    let transport = match transport(channel, &server) {
        Ok(t) => t,
        Err(attempt) => return attempt,
    };
    // lettre bounds each command; this bounds the whole exchange.
    let sent =
        tokio::time::timeout(channel.timeout.saturating_mul(2), transport.send(message)).await;
    match sent {
        Err(_) => timed_out(channel, None),
        Ok(Ok(response)) => Attempt::Delivered {
            status: Some(smtp_code(&response.code().to_string())),
        },
        Ok(Err(e)) => refused(channel, &e),
    }
}

fn message(
    addresses: Addresses<'_>,
    subject: Option<&str>,
    text: &str,
) -> Result<Message, MessageError> {
    let mut builder = Message::builder()
        .from(addresses.from.parse().map_err(MessageError::From)?)
        .subject(subject.unwrap_or("salve notification"));
    for a in addresses.to {
        builder = builder.to(a.parse().map_err(MessageError::To)?);
    }
    for a in addresses.cc {
        builder = builder.cc(a.parse().map_err(MessageError::Cc)?);
    }
    Ok(builder
        .header(ContentType::TEXT_PLAIN)
        .body(text.to_string())?)
}

/// The transport, or the attempt that failed for want of one (a bad CA or TLS setup).
fn transport(
    channel: &NotifyChannel,
    server: &Server<'_>,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, Attempt> {
    let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server.host)
        .port(server.port)
        .timeout(Some(channel.timeout));
    let tls_parameters = || {
        tls_parameters(server).map_err(|e| Attempt::Permanent {
            error: format!("TLS: {e}"),
            status: None,
        })
    };
    transport = match server.tls {
        SmtpTls::None => transport.tls(Tls::None),
        SmtpTls::StartTls => transport.tls(Tls::Required(tls_parameters()?)),
        SmtpTls::Tls => transport.tls(Tls::Wrapper(tls_parameters()?)),
    };
    if let Some((user, password)) = server.credentials {
        transport = transport.credentials(Credentials::new(user.clone(), password.expose().into()));
    }
    Ok(transport.build())
}

fn tls_parameters(server: &Server<'_>) -> Result<TlsParameters, lettre::transport::smtp::Error> {
    let mut builder = TlsParameters::builder(server.host.to_string());
    if let Some(pem) = server.ca_pem {
        builder = builder.add_root_certificate(Certificate::from_pem(pem)?);
    }
    builder.build()
}

fn timed_out(channel: &NotifyChannel, status: Option<u16>) -> Attempt {
    Attempt::Permanent {
        error: format!("timed out after {}", format_duration(channel.timeout)),
        status,
    }
}

/// What the server's refusal (or the lack of an answer) means for a retry.
fn refused(channel: &NotifyChannel, e: &lettre::transport::smtp::Error) -> Attempt {
    let status = e.status().map(|c| smtp_code(&c.to_string()));
    if e.is_timeout() {
        return timed_out(channel, status);
    }
    let error = format!("SMTP: {}", error_chain(e));
    if e.is_permanent() {
        Attempt::Permanent { error, status }
    } else {
        // 4xx replies, refused or dropped connections.
        Attempt::Transient {
            error,
            status,
            retry_after: None,
        }
    }
}

fn smtp_code(text: &str) -> u16 {
    text.parse().unwrap_or(0)
}
