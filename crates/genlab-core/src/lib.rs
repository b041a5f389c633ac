//! genlab-core: what every other genlab crate stands on: device selection, seeded random streams,
//! errors, progress and message events, atomic file writes, safetensors I/O keyed by module field paths, and image grids.

pub mod atomic;
pub mod device;
pub mod error;
pub mod events;
pub mod files;
pub mod grid;
pub mod lock;
pub mod memory;
pub mod params;
pub mod progress;
pub mod resample;
pub mod rng;
pub mod tensors;

pub use burn;
pub use device::DeviceSpec;
pub use error::{CoreError, Result};
pub use rng::SeededRng;
