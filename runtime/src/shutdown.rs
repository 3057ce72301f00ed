//! One token cancelled on SIGTERM or Ctrl-C; every loop selects on it and finishes its batch.

use tokio_util::sync::CancellationToken;

pub type Shutdown = CancellationToken;

/// A token cancelled when the process receives SIGTERM or SIGINT.
pub fn on_signals() -> Shutdown {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received, stopping"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, stopping"),
        }
        t.cancel();
    });
    token
}
