//! Polling until a condition holds, with a deadline.

use std::future::Future;
use std::time::Duration;

use tokio::time::{sleep, timeout_at, Instant};

use crate::error::{HarnessError, Result};

/// How often a condition is checked again.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Checks `check` every 200 ms until it returns `Ok(Some(value))`, and returns that value.
///
/// Distributed state (a replica catching up, a node coming back) becomes true *eventually*,
/// so tests and the harness wait for it instead of sleeping a fixed time. `Ok(None)` and
/// errors both mean "not yet"; the last error is reported if the deadline passes. An attempt
/// that hangs (a blackholed socket) is cut short at the deadline.
pub async fn wait_for<T, F, Fut>(what: &str, within: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + within;
    let mut last_error = None;
    loop {
        match timeout_at(deadline, check()).await {
            Ok(Ok(Some(value))) => return Ok(value),
            Ok(Ok(None)) => {}
            Ok(Err(error)) => last_error = Some(error.to_string()),
            Err(_elapsed) => last_error = Some("the last check did not finish".to_string()),
        }
        if Instant::now() + POLL_INTERVAL > deadline {
            return Err(HarnessError::Timeout {
                what: what.to_string(),
                waited: within,
                last_error,
            });
        }
        sleep(POLL_INTERVAL).await;
    }
}
