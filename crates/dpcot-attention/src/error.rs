//! The one error type of the crate.

use thiserror::Error;

/// Everything that can go wrong when configuring or driving an attention layer.
///
/// Shape errors in the parallel forward are left to burn (it panics with the offending shapes);
/// everything reachable from a configuration file or from mixing up decoding caches is reported
/// here instead.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AttentionError {
    /// A configuration field has a value the kernels cannot work with.
    #[error("invalid attention config: `{field}` {reason}")]
    InvalidConfig {
        /// Name of the offending field, as spelled in the serialized config.
        field: &'static str,
        /// Why the value is rejected, including the value itself.
        reason: String,
    },
    /// A decoding cache built for one attention variant (or other parameters) was handed to a
    /// layer that runs another. Not a config error: both configs are valid, they just differ.
    #[error(
        "decoding cache mismatch: the layer runs {expected} but the cache was built for {found}"
    )]
    CacheMismatch {
        /// Kernel of the layer, with its parameters (the kernel's `Display`).
        expected: String,
        /// Kernel the cache was built for, with its parameters.
        found: String,
    },
    /// A tensor passed to an incremental step does not have the shape the cache was built for.
    #[error("shape mismatch in {context}: expected {expected:?}, got {found:?}")]
    ShapeMismatch {
        /// Which input is wrong (e.g. `"forward_step input"`).
        context: &'static str,
        /// The shape the cache or layer expects.
        expected: Vec<usize>,
        /// The shape that was passed.
        found: Vec<usize>,
    },
}

impl AttentionError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidConfig {
            field,
            reason: reason.into(),
        }
    }
}
