//! What genlab's own flex operations ([`crate::fused_lstm`], [`crate::gelu`]) share: where they run,
//! reading a flex tensor's values, and whether the CPU has the AVX-512 their fast paths are compiled for.

use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Device, Shape, TensorData};

/// Whether genlab's flex operations run on `device` for tensors of `dtype`: flex (with or without
/// autodiff) and f32; elsewhere callers take burn's composed path.
pub fn on_flex_f32(device: &Device, dtype: DType) -> bool {
    use burn::backend::DispatchDevice;
    #[allow(unreachable_patterns)] // other backends' variants exist with their features
    let flex = match device.as_dispatch() {
        DispatchDevice::Flex(_) => true,
        DispatchDevice::Autodiff(a) => matches!(a.clone().inner(), DispatchDevice::Flex(_)),
        _ => false,
    };
    flex && dtype == DType::F32
}

/// A contiguous f32 tensor's elements.
pub(crate) fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("genlab's flex operations read contiguous f32 tensors")
}

/// A flex tensor of `shape` holding `values`.
pub(crate) fn tensor(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// Whether the CPU has AVX-512F and FMA, the features the operations' fast loops are compiled for.
pub(crate) fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
