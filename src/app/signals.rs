//! The process's supervisor: SIGTERM/SIGINT in, systemd readiness (`sd_notify`) out.

use super::AppError;

/// Tells systemd about a state change. Failing to reach it is logged, never fatal.
pub fn notify_service_manager(state: sd_notify::NotifyState<'_>) {
    if let Err(e) = sd_notify::notify(&[state]) {
        tracing::warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
}

/// Resolves with the signal's name on SIGTERM or SIGINT. Handlers are installed before
/// returning, so a signal that arrives during start-up is not lost.
pub fn shutdown_signal() -> Result<impl std::future::Future<Output = &'static str>, AppError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(AppError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(AppError::Signals)?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    })
}
