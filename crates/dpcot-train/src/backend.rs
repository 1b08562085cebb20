//! The compiled backends, chosen at run time.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::TrainError;

/// A burn backend; which ones exist depends on the cargo features the binary was built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// burn-flex, pure-Rust CPU (feature `flex`, the default).
    Flex,
    /// burn-ndarray, CPU (feature `ndarray`; deprecated upstream).
    Ndarray,
    /// wgpu: Vulkan/Metal/DX12 GPUs or a software Vulkan driver (feature `wgpu`).
    Wgpu,
    /// CUDA GPU 0 (feature `cuda`).
    Cuda,
}

impl Backend {
    /// Every backend, compiled in or not.
    pub const ALL: [Backend; 4] = [
        Backend::Flex,
        Backend::Ndarray,
        Backend::Wgpu,
        Backend::Cuda,
    ];

    /// Whether this binary was built with the backend.
    pub fn is_compiled(self) -> bool {
        match self {
            Backend::Flex => cfg!(feature = "flex"),
            Backend::Ndarray => cfg!(feature = "ndarray"),
            Backend::Wgpu => cfg!(feature = "wgpu"),
            Backend::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// The first compiled backend, GPUs first.
    pub fn default_compiled() -> Option<Backend> {
        [
            Backend::Cuda,
            Backend::Wgpu,
            Backend::Flex,
            Backend::Ndarray,
        ]
        .into_iter()
        .find(|b| b.is_compiled())
    }

    /// The device (without autodiff) of this backend.
    pub fn device(self) -> Result<Device, TrainError> {
        let missing = || TrainError::Backend {
            name: self.to_string(),
            reason: format!("not compiled in (it needs the cargo feature `{self}`)"),
        };
        match self {
            #[cfg(feature = "flex")]
            Backend::Flex => Ok(Device::flex()),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            Backend::Ndarray => Ok(Device::ndarray()),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => Ok(Device::wgpu(Default::default())),
            #[cfg(feature = "cuda")]
            Backend::Cuda => Ok(Device::cuda(0)),
            #[allow(unreachable_patterns)]
            _ => Err(missing()),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Flex => "flex",
            Backend::Ndarray => "ndarray",
            Backend::Wgpu => "wgpu",
            Backend::Cuda => "cuda",
        })
    }
}

impl FromStr for Backend {
    type Err = TrainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Backend::ALL
            .into_iter()
            .find(|b| b.to_string() == s.to_ascii_lowercase())
            .ok_or_else(|| TrainError::Backend {
                name: s.to_string(),
                reason: "unknown; expected flex, ndarray, wgpu or cuda".to_string(),
            })
    }
}
