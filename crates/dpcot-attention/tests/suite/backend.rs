//! Which backend the suite runs on (see `common::device`).

use crate::common::device;

/// Names the device under test in the log (`cargo test -- --show-output`) and checks that it is
/// the backend `BURN_DEVICE` asks for, so a run meant for one backend cannot pass on another.
#[test]
fn the_device_under_test_is_the_one_burn_device_names() {
    let device = device();
    let found = format!("{device:?}");
    println!("device under test: {found}");
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    if let Some(identity) = device.identity() {
        println!("adapter: {}", identity.name);
    }
    if let Ok(wanted) = std::env::var("BURN_DEVICE") {
        let variant = match wanted.to_ascii_lowercase().as_str() {
            "flex" => "Flex(",
            "ndarray" => "NdArray(",
            "wgpu" => "Wgpu(",
            "cuda" => "Cuda(",
            other => panic!("BURN_DEVICE={other}: dpcot is tested on flex, ndarray, wgpu or cuda"),
        };
        assert!(
            found.contains(variant),
            "BURN_DEVICE={wanted} but the tests run on {found}"
        );
    }
}
