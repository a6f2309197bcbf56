//! The listener's door. At most `api.max_connections` are open: past it a new
//! connection is closed as soon as it is accepted, so it neither waits in the kernel's
//! queue nor holds a file descriptor that `accept` needs for the next client. A client
//! that is slow (TLS handshake and headers past `api.header_read_timeout`) or idle (no
//! request, or no byte of its answer read, within `api.idle_timeout`) has its
//! connection closed; a slow body is the
//! body extractor's (`api.body_read_timeout`, a 408). HTTP/1.1 only, as the TLS
//! listener's ALPN says; hyper's own header timer is not used, as it also runs while a
//! kept-alive connection waits, which is the idle timeout's job.

use crate::config::ConnectionLimits;
use crate::metrics::Metrics;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::service::Service;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use parking_lot::Mutex;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::time::Instant;

/// The certificates new TLS connections are served with; a reload sends new ones.
pub type TlsConfig = watch::Receiver<Arc<rustls::ServerConfig>>;

/// What every connection is served with.
#[derive(Clone)]
struct Door {
    app: axum::Router,
    tls: Option<TlsConfig>,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
}

/// Accepts and serves until `stop` completes, then stops accepting, lets each
/// connection finish the request it is answering, and returns once all are closed.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    tls: Option<TlsConfig>,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    stop: impl Future<Output = ()>,
) {
    let door = Door {
        app,
        tls,
        limits,
        metrics,
    };
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stopping, stop_rx) = watch::channel(false);
    let mut refusals = Throttled::default();
    let mut accept_errors = Throttled::default();
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                if let Some(count) = accept_errors.tick() {
                    tracing::warn!(error = %e, count, "cannot accept connections");
                }
                // Out of file descriptors, the pending connection stays queued: trying
                // again at once would spin.
                if !is_connection_error(&e) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            door.metrics.connection_refused();
            if let Some(count) = refusals.tick() {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    count,
                    "connections refused: api.max_connections are open"
                );
            }
            continue;
        };
        let door = door.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            door.metrics.connections(1);
            door.connection(stream, peer, stop).await;
            door.metrics.connections(-1);
            drop(slot);
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    drop(stop_rx);
    // Every connection holds a receiver until it is closed.
    stopping.closed().await;
}

/// Errors of one connection that `accept` reports; the listener itself is fine.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted)
}

impl Door {
    async fn connection(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        mut stop: watch::Receiver<bool>,
    ) {
        let activity = Arc::new(Activity::new(Instant::now()));
        let Some(tls) = &self.tls else {
            return self.http(stream, peer, activity, stop).await;
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.borrow().clone());
        let deadline = activity.since() + self.limits.header_read_timeout;
        let handshake = tokio::time::timeout_at(deadline, acceptor.accept(stream));
        tokio::select! {
            done = handshake => match done {
                Ok(Ok(stream)) => self.http(stream, peer, activity, stop).await,
                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => self.metrics.connection_timed_out("tls_handshake"),
            },
            _ = stop.changed() => {}
        }
    }

    /// Serves HTTP/1.1 on `io` until the client or hyper closes it, a timeout does,
    /// or salve stops (after the request in flight is answered). Each request carries
    /// the peer's address (`ConnectInfo`), which says whether a proxy's header is believed.
    async fn http<S>(
        &self,
        io: S,
        peer: SocketAddr,
        activity: Arc<Activity>,
        mut stop: watch::Receiver<bool>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let app = TowerToHyperService::new(self.app.clone());
        let tracked = activity.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let mut in_flight = InFlight::begin(tracked.clone());
            let response = app.call(request);
            async move {
                let response = response.await?;
                in_flight.answered();
                Ok::<_, Infallible>(response.map(|body| Tracked {
                    body,
                    _in_flight: in_flight,
                }))
            }
        });
        let io = TokioIo::new(Watched {
            io,
            activity: activity.clone(),
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .header_read_timeout(None)
            .serve_connection(io, service);
        tokio::pin!(conn);
        let mut draining = false;
        loop {
            let deadline = activity.deadline(&self.limits);
            let timer = async {
                match deadline {
                    Some((at, _)) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                done = conn.as_mut() => {
                    if let Err(e) = done {
                        tracing::debug!(error = %e, "connection closed on an error");
                    }
                    return;
                }
                () = timer => match activity.deadline(&self.limits) {
                    Some((at, timeout)) if at <= Instant::now() => {
                        self.metrics.connection_timed_out(timeout);
                        return;
                    }
                    _ => {}
                },
                () = activity.changed.notified() => {}
                _ = stop.changed(), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// What a connection's timeouts are measured from, shared by the socket (bytes read),
/// the service (requests begun and answered) and the connection's task.
struct Activity {
    state: Mutex<ActivityState>,
    /// The deadline may have come nearer: a request's first byte, or its answer sent.
    changed: Notify,
}

struct ActivityState {
    /// Requests between their headers and the end of their answer's body.
    in_flight: usize,
    /// Of those, the ones whose handler has not answered yet (it may be reading the body).
    handling: usize,
    requests: u64,
    /// The connection's start, or when its last request was answered.
    waiting_since: Instant,
    /// The first byte read since then: a request's headers have begun.
    heard_at: Option<Instant>,
    /// The last bytes written: a client that stops reading its answer stalls them.
    written_at: Instant,
}

impl Activity {
    fn new(now: Instant) -> Activity {
        Activity {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                handling: 0,
                requests: 0,
                written_at: now,
                waiting_since: now,
                heard_at: None,
            }),
            changed: Notify::new(),
        }
    }

    fn since(&self) -> Instant {
        self.state.lock().waiting_since
    }

    /// When the connection is to be closed and which timeout that is; none while a
    /// handler works (reading a body has a timeout of its own).
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, &'static str)> {
        let state = self.state.lock();
        if state.handling > 0 {
            return None;
        }
        if state.in_flight > 0 {
            return Some((state.written_at + limits.idle_timeout, "idle"));
        }
        let headers = |from: Instant| (from + limits.header_read_timeout, "header_read");
        if state.requests == 0 {
            return Some(headers(state.waiting_since));
        }
        let idle = (state.waiting_since + limits.idle_timeout, "idle");
        Some(match state.heard_at.map(headers) {
            Some(headers) if headers.0 < idle.0 => headers,
            _ => idle,
        })
    }

    fn wrote(&self) {
        self.state.lock().written_at = Instant::now();
    }

    fn heard(&self) {
        let mut state = self.state.lock();
        if state.in_flight == 0 && state.heard_at.is_none() {
            state.heard_at = Some(Instant::now());
            drop(state);
            self.changed.notify_one();
        }
    }
}

/// A request between the service's call and the end of its response's body.
struct InFlight {
    activity: Arc<Activity>,
    answered: bool,
}

impl InFlight {
    fn begin(activity: Arc<Activity>) -> InFlight {
        {
            let mut state = activity.state.lock();
            state.in_flight += 1;
            state.handling += 1;
            state.requests += 1;
        }
        InFlight {
            activity,
            answered: false,
        }
    }

    /// The handler is done; what is left is writing its answer.
    fn answered(&mut self) {
        self.answered = true;
        {
            let mut state = self.activity.state.lock();
            state.handling -= 1;
            state.written_at = Instant::now();
        }
        self.activity.changed.notify_one();
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.activity.state.lock();
        state.in_flight -= 1;
        if !self.answered {
            state.handling -= 1;
        }
        if state.in_flight == 0 {
            state.waiting_since = Instant::now();
            state.heard_at = None;
            drop(state);
            self.activity.changed.notify_one();
        }
    }
}

/// A response body that ends its request's [`InFlight`] when hyper is done with it.
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket, telling [`Activity`] when bytes arrive.
struct Watched<S> {
    io: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.heard();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A warning said at most every ten seconds, with how many times it happened since.
#[derive(Default)]
struct Throttled {
    last: Option<Instant>,
    count: u64,
}

impl Throttled {
    fn tick(&mut self) -> Option<u64> {
        self.count += 1;
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now - last < Duration::from_secs(10))
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ConnectionLimits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(10),
        body_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(75),
        max_connections: 512,
    };

    /// The deadline, as seconds from now (whole: the test takes microseconds).
    fn deadline(activity: &Activity) -> Option<(u64, &'static str)> {
        let (at, timeout) = activity.deadline(&LIMITS)?;
        let left = at - Instant::now();
        Some(((left + Duration::from_millis(500)).as_secs(), timeout))
    }

    #[test]
    fn each_phase_of_a_connection_has_its_timeout() {
        let activity = Arc::new(Activity::new(Instant::now()));
        assert_eq!(deadline(&activity), Some((10, "header_read")));

        let mut request = InFlight::begin(activity.clone());
        assert_eq!(deadline(&activity), None, "the handler reads the body");
        request.answered();
        assert_eq!(deadline(&activity), Some((75, "idle")), "the client reads");
        activity.wrote();
        assert_eq!(deadline(&activity), Some((75, "idle")));

        drop(request);
        assert_eq!(deadline(&activity), Some((75, "idle")), "kept alive");
        activity.heard();
        assert_eq!(
            deadline(&activity),
            Some((10, "header_read")),
            "the next request's headers, from their first byte"
        );
        drop(InFlight::begin(activity.clone()));
        assert_eq!(deadline(&activity), Some((75, "idle")), "a handler dropped");
    }
}
