//! Compile-fail tests pinning every designed shape error, and models that must build.
//!
//! Pass and fail cases share one `TestCases`: with a pass case present trybuild runs
//! `cargo build`, which is what evaluates the post-monomorphization checks inside `forward`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui-tests/pass/*.rs");
    t.compile_fail("ui-tests/fail/*.rs");
}
