//! Where the Azure layer reports what it is waiting for ("throttled by Azure, retrying in 8 s").
//!
//! The retry policy runs deep inside azure_core's pipeline, which carries no caller context, so
//! the current step's reporter travels in a task-local set around each action's Azure calls.

use std::future::Future;
use std::sync::Arc;

pub type Reporter = Arc<dyn Fn(String) + Send + Sync>;

tokio::task_local! {
    static REPORTER: Reporter;
}

/// Run `fut` with `reporter` receiving the Azure layer's progress messages.
pub async fn scope<F: Future>(reporter: Reporter, fut: F) -> F::Output {
    REPORTER.scope(reporter, fut).await
}

/// Report a message to the current step, if any.
pub fn report(message: String) {
    let _ = REPORTER.try_with(|r| r(message));
}
