//! The one place that names concrete backends: `--device` → a Burn backend and device.

use std::str::FromStr;

use blt_model::backend::Backend;

/// A device as given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// The host CPU.
    Cpu,
    /// CUDA GPU N.
    Cuda(usize),
    /// WGPU (Vulkan/Metal/DX12) GPU N.
    Wgpu(usize),
}

impl FromStr for DeviceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, index) = match s.split_once(':') {
            Some((k, i)) => (
                k,
                i.parse::<usize>()
                    .map_err(|_| format!("bad device index in {s:?}"))?,
            ),
            None => (s, 0),
        };
        match kind {
            "cpu" if index == 0 => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(index)),
            "wgpu" => Ok(Self::Wgpu(index)),
            _ => Err(format!(
                "unknown device {s:?}: expected cpu, cuda[:N] or wgpu[:N]"
            )),
        }
    }
}

/// Work that runs on any backend.
pub trait BackendTask {
    /// What it returns.
    type Output;
    /// Runs on backend `B`.
    fn run<B: Backend>(self, device: B::Device) -> anyhow::Result<Self::Output>;
}

/// Runs `task` on the backend `spec` names, if this binary was built with it.
pub fn dispatch<T: BackendTask>(spec: DeviceSpec, task: T) -> anyhow::Result<T::Output> {
    match spec {
        DeviceSpec::Cpu => {
            #[cfg(feature = "cpu")]
            return task.run::<blt_model::backend::Cpu>(Default::default());
            #[cfg(not(feature = "cpu"))]
            anyhow::bail!("this blt was built without the `cpu` feature");
        }
        DeviceSpec::Cuda(index) => {
            #[cfg(feature = "cuda")]
            return task.run::<blt_model::backend::Cuda>(blt_model::backend::cuda_device(index));
            #[cfg(not(feature = "cuda"))]
            anyhow::bail!(
                "--device cuda:{index}: this blt was built without the `cuda` feature (cargo build --release --features cuda)"
            );
        }
        DeviceSpec::Wgpu(index) => {
            #[cfg(feature = "wgpu")]
            return task.run::<blt_model::backend::Wgpu>(blt_model::backend::wgpu_device(index));
            #[cfg(not(feature = "wgpu"))]
            anyhow::bail!(
                "--device wgpu:{index}: this blt was built without the `wgpu` feature (cargo build --release --features wgpu)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!("cpu".parse(), Ok(DeviceSpec::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceSpec::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceSpec::Cuda(3)));
        assert_eq!("wgpu:1".parse(), Ok(DeviceSpec::Wgpu(1)));
        assert!("tpu".parse::<DeviceSpec>().is_err());
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
    }
}
