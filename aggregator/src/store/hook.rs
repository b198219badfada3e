//! A test hook on the store (feature `test-utils`): a callback run on the
//! calling thread at the start of every store access, so tests can see
//! where reads run or make one slow.

use std::sync::Arc;

/// The callback [`super::Store::set_access_hook`] installs.
#[derive(Clone)]
pub struct AccessHook(pub Arc<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for AccessHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessHook")
    }
}
