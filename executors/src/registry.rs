//! The registry: executor kind → plugin, built once at start-up.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::{Executor, ExecutorKind};

/// The plugins this server was built and configured with.
#[derive(Clone, Default)]
pub struct Registry {
    executors: BTreeMap<ExecutorKind, Arc<dyn Executor>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a plugin; a later plugin of the same kind replaces an earlier.
    pub fn register(&mut self, executor: Arc<dyn Executor>) {
        self.executors.insert(executor.kind(), executor);
    }

    pub fn get(&self, kind: ExecutorKind) -> Option<&Arc<dyn Executor>> {
        self.executors.get(&kind)
    }

    /// Every registered plugin, in kind order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Executor>> {
        self.executors.values()
    }
}
