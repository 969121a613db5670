//! Compile-fail tests pinning every designed shape error, and models that must build.
//!
//! Pass and fail cases share one `TestCases`: with a pass case present trybuild runs
//! `cargo build`, which is what evaluates the post-monomorphization checks inside `forward`.

// The pinned messages come from CPU builds; a CUDA build's test run leaves them to CPU CI.
#[cfg(not(feature = "cuda"))]
#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui-tests/pass/*.rs");
    t.compile_fail("ui-tests/fail/*.rs");
}
